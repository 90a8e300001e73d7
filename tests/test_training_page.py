"""The Training page: a real tiny training started from the page, in AppTest and in Chromium.

AppTest runs the page script in this process, so its job lands in the same server-wide job
registry the test can wait on; the browser test starts ``streamlit run`` and goes through what a
user does: upload a zip, press Start, watch the progress and charts, reload the page mid-run.
Runs go to a temporary runs folder (EMOJIFY_RUNS_DIR), never the repository's.
"""

from __future__ import annotations

import io
import math
import re
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_archive import claim_size, zip_entries

from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH, NUM_CLASSES
from app.runs import RUNS_DIR_ENV, active_model_path, list_runs, read_run
from pages.shared import model_choices
from training.archive import UPLOADS_DIR
from training.data import CSV_COLUMNS, load_split
from training.jobs import manager

import browser

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ROOT = Path(__file__).resolve().parent.parent
MAIN = str(ROOT / "app" / "streamlit_app.py")
TRAINING_PAGE = str(ROOT / "pages" / "training.py")
JOB_TIMEOUT_S = 600  # a tiny run; the margin is for a machine busy with other work
#: The dataset sources offered by the page (its radio's labels).
FOLDER, CSV_PATH, ZIP_UPLOAD, CSV_UPLOAD = (
    "Folder on the server",
    "fer2013.csv on the server",
    "Upload a .zip",
    "Upload fer2013.csv",
)


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh runs folder for the page (and for app.runs' active-model setting)."""
    path = tmp_path / "runs"
    monkeypatch.setenv(RUNS_DIR_ENV, str(path))
    return path


@pytest.fixture
def page(runs_dir: Path, fer2013_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    """The Training page in AppTest, with FER2013 as the default folder; waits out any job it started."""
    monkeypatch.setenv("FER2013_DIR", str(fer2013_dir))
    before = manager().current()
    assert before is None or not before.alive, "another test left a training running"
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.switch_page(TRAINING_PAGE).run()
    assert not at.exception
    yield at
    job = manager().current()
    if job is not None and job is not before:
        job.stop()
        job.wait(JOB_TIMEOUT_S)


def fill_tiny_run(at: AppTest, name: str, epochs: int) -> None:
    at.radio(key="train_preset").set_value("classic").run()  # the tutorial CNN: quickest to train
    at.number_input(key="train_epochs").set_value(epochs)
    at.selectbox(key="train_batch").set_value(16)
    at.number_input(key="train_limit").set_value(20)
    at.text_input(key="train_run_name").set_value(name)


def texts(elements: object) -> list[str]:
    return [element.value for element in elements]


def test_page_trains_resumes_and_makes_the_model_the_active_one(
    page: AppTest, runs_dir: Path, fer2013_dir: Path
) -> None:
    assert any("No runs in" in text for text in texts(page.info))
    fill_tiny_run(page, "from-page", epochs=2)

    page.button(key="train_start").click().run()

    assert not page.exception and not page.error
    job = manager().current()
    assert job.progress().run_name == "from-page" and job.alive
    assert any(text.startswith("Run `from-page`") for text in texts(page.subheader))
    # A second Start while it runs says so, and starts nothing.
    page.text_input(key="train_run_name").set_value("impatient")
    page.button(key="train_start").click().run()
    assert any("already running on this server: run 'from-page'" in text for text in texts(page.error))
    assert manager().current() is job

    assert job.wait(JOB_TIMEOUT_S).state == "finished"
    page.run()

    assert "Run `from-page`: finished" in texts(page.subheader)
    assert len(page.get("vega_lite_chart")) == 2  # loss + accuracy once, under the picked run
    assert page.selectbox(key="runs_pick").value == "from-page"
    table = page.dataframe[0].value
    row = table[table["run"] == "from-page"].iloc[0]
    # The banner's training time is the table's (the job's time with loading the data follows it).
    assert any(
        text.startswith(f"Finished: 2 epochs in {row['duration']} of training")
        for text in texts(page.success)
    )
    assert (row["status"], row["epochs"], row["architecture"]) == ("finished", "2 / 2", "classic")
    assert 0 <= float(row["best val. accuracy"].rstrip("%")) <= 100
    best = runs_dir / "from-page" / "best.keras"
    images = load_split(fer2013_dir, "private_test", limit_per_class=2)
    probabilities = keras.saving.load_model(best).predict(images.x, verbose=0)
    assert probabilities.shape == (len(images), NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    # Use it in the Photo and Live pages, then go back to the shipped model.
    page.button(key="use_from-page").click().run()
    assert active_model_path() == best.resolve()
    assert any("model is the active one" in text for text in texts(page.success))
    page.button(key="use_shipped").click().run()
    assert active_model_path() == DEFAULT_MODEL_PATH

    # Train on for one more epoch from the table.
    page.number_input(key="resume_epochs_from-page").set_value(3)
    page.button(key="resume_from-page").click().run()
    assert not page.error
    assert manager().current().wait(JOB_TIMEOUT_S).state == "finished"
    run = read_run(runs_dir / "from-page")
    assert [row["epoch"] for row in run.history] == [1, 2, 3] and run.state == "finished"
    page.run()  # which part was this job's: the run's time in all, and this job's own epochs
    (banner,) = texts(page.success)[:1]
    assert banner.startswith("Finished: the run now has 3 epochs") and "This job trained epochs 3–3" in banner


def test_page_distils_a_run_from_the_chosen_teacher(page: AppTest, runs_dir: Path) -> None:
    fill_tiny_run(page, "student", epochs=1)
    teacher = page.selectbox(key="train_teacher")
    assert teacher.value.startswith("None") and page.slider(key="train_teacher_weight").disabled
    # The shipped model is offered as the active one, or beside a run made active by another test.
    shipped = next(o for o in teacher.options if o == "Shipped default" or o.endswith("(shipped default)"))
    teacher.set_value(shipped).run()
    page.slider(key="train_teacher_weight").set_value(0.5)

    page.button(key="train_start").click().run()

    assert not page.exception and not page.error
    assert manager().current().wait(JOB_TIMEOUT_S).state == "finished"
    config = read_run(runs_dir / "student").config
    # The file behind the label (test_analysis_page leaves a copy of the shipped model behind it).
    assert (config["teacher"], config["teacher_weight"]) == (str(model_choices(runs_dir)[shipped]), 0.5)


def test_labels_choice_says_what_it_means_and_reaches_the_run(
    page: AppTest, runs_dir: Path, fer2013_mini: Path, tmp_path: Path
) -> None:
    fill_tiny_run(page, "voted", epochs=1)
    assert (
        page.radio(key="train_labels").value == "fer2013" and page.slider(key="train_votes_weight").disabled
    )
    page.radio(key="train_labels").set_value("blend").run()
    page.slider(key="train_votes_weight").set_value(0.3).run()
    assert any(
        "a share of the FER+ votes, the rest FER2013's label (30% votes)" in c for c in texts(page.caption)
    )
    assert page.selectbox(key="train_teacher").disabled  # a teacher distils into labels only
    # Votes that fit no image of the dataset: a plain message, and no run left behind.
    renamed = Path(shutil.copytree(fer2013_mini, tmp_path / "renamed"))
    for image in list(renamed.glob("train/*/*.jpg")):
        image.rename(image.with_name(f"x{image.name}"))
    server_path(page, FOLDER, "train_folder", renamed)
    page.button(key="train_start").click().run()
    assert not page.error, texts(page.error)
    assert manager().current().wait(JOB_TIMEOUT_S).state == "failed"
    page.run()
    assert any(
        text.startswith("The training failed: none of the") and "has votes in" in text
        for text in texts(page.error)
    )
    assert list_runs(runs_dir) == []

    page.text_input(key="train_folder").set_value(str(fer2013_mini))
    page.text_input(key="train_run_name").set_value("voted")  # a Start puts a fresh name in the form
    page.button(key="train_start").click().run()
    assert manager().current().wait(JOB_TIMEOUT_S).state == "finished", manager().current().progress().message
    page.run()
    assert page.dataframe[0].value.set_index("run").loc["voted", "labels"] == "blend (30% votes)"
    run = read_run(runs_dir / "voted")
    assert run.card["training"]["labels"]["source"] == "blend" and run.config["votes_weight"] == 0.3


def test_validation_is_said_on_the_page_and_privatetest_only_when_chosen(
    page: AppTest, runs_dir: Path, fer2013_mini: Path, tmp_path: Path
) -> None:
    data = Path(shutil.copytree(fer2013_mini, tmp_path / "private-only"))
    for image in data.glob("test/*/PublicTest_*"):
        image.unlink()
    fill_tiny_run(page, "private", epochs=1)
    server_path(page, FOLDER, "train_folder", data)
    page.run()
    assert any("has no PublicTest_ images" in text for text in texts(page.caption))

    page.button(key="train_start").click().run()
    assert any(text.startswith(CANT_START) and "14 PrivateTest_ images" in text for text in texts(page.error))
    assert list_runs(runs_dir) == []

    page.radio(key="train_validation").set_value("test").run()
    assert any("whole test folder, PrivateTest included" in text for text in texts(page.caption))
    page.button(key="train_start").click().run()
    assert manager().current().wait(JOB_TIMEOUT_S).state == "finished"
    assert read_run(runs_dir / "private").config["validation_split"] == "test"


def test_a_setting_the_run_cannot_have_is_named_as_the_form_names_it(page: AppTest, runs_dir: Path) -> None:
    # The CPU recipe warms up for 2 epochs; 1 epoch leaves no room for it.
    page.radio(key="train_preset").set_value("cpu").run()
    page.number_input(key="train_epochs").set_value(1)
    page.button(key="train_start").click().run()
    errors = [text for text in texts(page.error) if text.startswith(CANT_START)]
    assert errors and "*Warm-up epochs* (Advanced settings) must be" in errors[0], errors
    assert "warmup_epochs" not in errors[0]
    assert list_runs(runs_dir) == []


def server_path(at: AppTest, source: str, key: str, path: Path) -> None:
    at.radio(key="train_source").set_value(source).run()
    at.text_input(key=key).set_value(str(path))


def uploaded(source: str, key: str, name: str, data: bytes) -> Callable[[AppTest, Path, Path], None]:
    """Upload ``data`` as file ``name`` through the page's ``source`` uploader."""

    def pick(at: AppTest, mini: Path, tmp_path: Path) -> None:
        at.radio(key="train_source").set_value(source).run()
        at.file_uploader(key=key).set_value((name, data, "application/octet-stream"))

    return pick


def broken_folder(break_it: Callable[[Path], object]) -> Callable[[AppTest, Path, Path], None]:
    """Type a broken copy of the mini dataset as the server folder."""

    def pick(at: AppTest, mini: Path, tmp_path: Path) -> None:
        folder = Path(shutil.copytree(mini, tmp_path / "broken"))
        break_it(folder)
        server_path(at, FOLDER, "train_folder", folder)

    return pick


def csv_rows(*pixel_strings: str, header: str = ",".join(CSV_COLUMNS)) -> bytes:
    """A fer2013.csv with one training row (emotion 3, happy) per pixel string."""
    rows = [f"3,{pixels},Training" for pixels in pixel_strings]
    return "\n".join([header, *rows, ""]).encode()


GOOD_PIXELS = " ".join(["128"] * 48 * 48)


def csv_file(data: bytes) -> Callable[[AppTest, Path, Path], None]:
    """Type the path of a CSV holding ``data`` as the server's fer2013.csv."""

    def pick(at: AppTest, mini: Path, tmp_path: Path) -> None:
        path = tmp_path / "fer2013.csv"
        path.write_bytes(data)
        server_path(at, CSV_PATH, "train_csv", path)

    return pick


def for_each(pattern: str, change: Callable[[Path], object]) -> Callable[[Path], None]:
    """A dataset breaker that applies ``change`` to every file matching ``pattern``."""

    def apply(root: Path) -> None:
        for path in list(root.glob(pattern)):
            change(path)

    return apply


CANT_START = "Can't start:"
#: Found only when every image is decoded, which the job does before its first epoch.
FAILED = "The training failed: the dataset can't be used, nothing was trained:"


BAD_DATASETS = [
    pytest.param(
        broken_folder(lambda root: shutil.rmtree(root / "train" / "disgust")),
        CANT_START,
        "is missing class folder(s): disgust",
        id="missing-class",
    ),
    pytest.param(
        broken_folder(lambda root: shutil.copytree(root / "test" / "sad", root / "test" / "contempt")),
        CANT_START,
        "has unknown class folder(s): contempt",
        id="extra-class",
    ),
    pytest.param(
        broken_folder(for_each("train/fear/*", Path.unlink)),
        CANT_START,
        "split train has no images of class(es): fear",
        id="empty-class",
    ),
    pytest.param(
        broken_folder(for_each("train/fear/*", lambda path: path.rename(path.with_suffix(".txt")))),
        CANT_START,
        "(found only non-image files, e.g. fear/Training_",
        id="non-image-files",
    ),
    pytest.param(
        broken_folder(for_each("train/sad/*", lambda path: path.write_bytes(b"not a jpeg"))),
        FAILED,
        "split train has no readable images of class(es): sad",
        id="unreadable-images",
    ),
    pytest.param(
        uploaded(ZIP_UPLOAD, "train_zip_upload", "evil.zip", zip_entries(("../../escaped.txt", b"gotcha"))),
        CANT_START,
        "points outside the folder it unpacks into",
        id="zip-dotdot",
    ),
    pytest.param(
        uploaded(
            ZIP_UPLOAD,
            "train_zip_upload",
            "bomb.zip",
            claim_size(zip_entries(("train/happy/a.jpg", b"x")), 3_000_000_000),
        ),
        CANT_START,
        "would unpack to 3.0 GB",
        id="zip-bomb",
    ),
    pytest.param(
        uploaded(
            CSV_UPLOAD, "train_csv_upload", "fer2013.csv", csv_rows(GOOD_PIXELS, header="emotion,pixel,Usage")
        ),
        CANT_START,
        "lacks column(s) pixels",
        id="csv-columns",
    ),
    pytest.param(
        csv_file(csv_rows("12;34;56")),
        CANT_START,
        "line 2: pixels must be space-separated integers",
        id="csv-pixels",
    ),
    pytest.param(
        csv_file(csv_rows(GOOD_PIXELS, GOOD_PIXELS[:-4])),
        FAILED,
        "line 3: expected 2304 pixels, got 2303",
        id="csv-pixels-later",
    ),
]


@pytest.mark.parametrize(("pick", "where", "message"), BAD_DATASETS)
def test_each_bad_dataset_is_named_and_nothing_trains(
    page: AppTest,
    runs_dir: Path,
    fer2013_mini: Path,
    tmp_path: Path,
    pick: Callable[[AppTest, Path, Path], None],
    where: str,
    message: str,
) -> None:
    before = manager().current()
    pick(page, fer2013_mini, tmp_path)

    page.button(key="train_start").click().run()
    job = manager().current()
    if job is not before:  # the job found the problem while decoding: its panel says so
        assert job.wait(JOB_TIMEOUT_S).state == "failed"
        page.run()

    assert not page.exception
    assert any(text.startswith(where) and message in text for text in texts(page.error)), texts(page.error)
    assert list_runs(runs_dir) == []  # no run folder made
    assert not Path("/tmp/escaped.txt").exists() and not (runs_dir.parent / "escaped.txt").exists()


def test_public_deployment_without_password_offers_no_training(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMOJIFY_PUBLIC", "1")
    monkeypatch.delenv("EMOJIFY_OWNER_PASSWORD", raising=False)
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()

    at.switch_page(TRAINING_PAGE).run()

    assert not at.exception
    assert any("Training is switched off" in text for text in texts(at.info))
    assert not start_buttons(at)


@pytest.mark.parametrize("public", [True, 1, "enabled"])
def test_public_mode_from_typed_secrets_locks_training(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch, public: object
) -> None:
    """The README's secrets file: TOML's ``true`` is a bool, and an unknown spelling fails closed."""
    monkeypatch.delenv("EMOJIFY_PUBLIC", raising=False)
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.secrets["EMOJIFY_PUBLIC"] = public
    at.secrets["EMOJIFY_OWNER_PASSWORD"] = "long-random-secret"
    at.run()
    at.switch_page(TRAINING_PAGE).run()

    assert not at.exception
    assert any("Training is for the owner" in text for text in texts(at.info))
    assert not start_buttons(at)
    problems = [text for text in texts(at.error) if "EMOJIFY_PUBLIC" in text]
    assert bool(problems) == (public == "enabled"), problems


def start_buttons(at: AppTest) -> list[object]:
    return [button for button in at.button if button.key == "train_start"]


def test_public_deployment_asks_the_owner_password_and_keeps_typed_paths_in_the_data_root(
    runs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_root = tmp_path / "data"
    (data_root / "faces" / "train" / "happy").mkdir(parents=True)
    monkeypatch.setenv("EMOJIFY_PUBLIC", "1")
    monkeypatch.setenv("EMOJIFY_OWNER_PASSWORD", "owner-secret")
    monkeypatch.setenv("EMOJIFY_DATA_ROOT", str(data_root))
    monkeypatch.delenv("FER2013_DIR", raising=False)
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.switch_page(TRAINING_PAGE).run()

    assert any("Training is for the owner" in text for text in texts(at.info))
    assert not start_buttons(at) and not at.get("vega_lite_chart")
    at.text_input(key="owner_password").set_value("guess").run()
    assert "Wrong password." in texts(at.error) and not start_buttons(at)
    at.text_input(key="owner_password").set_value("owner-secret").run()
    assert start_buttons(at) and "Wrong password." not in texts(at.error)

    before = manager().current()
    for typed, message in [
        ("/etc", "/etc is outside the data folder"),
        ("faces/../..", "faces/../.. is outside the data folder"),
        # A relative path is taken from the data root: this one reaches the dataset check.
        ("faces", f"{data_root / 'faces' / 'train'} is missing class folder(s): angry"),
    ]:
        at.text_input(key="train_folder").set_value(typed)
        at.button(key="train_start").click().run()
        assert any(text.startswith(CANT_START) and message in text for text in texts(at.error)), typed
    assert manager().current() is before
    assert not runs_dir.exists()


# --- in a real browser -----------------------------------------------------------------------------


#: Images per class in the browser test's zip, and its batches an epoch at the Tutorial CNN's batch of 64.
PER_CLASS = 20
BATCHES = math.ceil(NUM_CLASSES * PER_CLASS / 64)


def zip_of_a_small_fer2013(fer2013_dir: Path, per_class: int) -> bytes:
    """The first ``per_class`` train and PublicTest images of each class, zipped in the Kaggle layout."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in CLASS_NAMES:
            for folder, pattern in (("train", "Training_*.jpg"), ("test", "PublicTest_*.jpg")):
                for image in sorted((fer2013_dir / folder / name).glob(pattern))[:per_class]:
                    archive.write(image, f"fer2013/{folder}/{name}/{image.name}")
    return buffer.getvalue()


@pytest.mark.browser
@pytest.mark.skipif(browser.missing_browser() is not None, reason=str(browser.missing_browser()))
def test_browser_trains_an_uploaded_zip_survives_a_reload_and_stops(
    fer2013_dir: Path, tmp_path: Path, chromium: Browser
) -> None:
    from playwright.sync_api import expect

    runs_dir = tmp_path / "runs"
    upload = tmp_path / "small-fer2013.zip"
    upload.write_bytes(zip_of_a_small_fer2013(fer2013_dir, per_class=PER_CLASS))
    with browser.streamlit_server(env={RUNS_DIR_ENV: str(runs_dir)}) as url:
        context = chromium.new_context(viewport={"width": 1400, "height": 1200})
        page = context.new_page()
        page.goto(f"{url}/training")
        expect(page.get_by_role("heading", name="Training", level=1)).to_be_visible(timeout=90_000)
        browser.wait_until_idle(page)

        page.get_by_text("Tutorial CNN").click()  # the quickest recipe, named classic-…
        # Its rerun must have filled the form (batch 64) before the next click: on a busy machine
        # the idle marker of the previous run can still be showing right after the click.
        expect(page.get_by_text("The CNN of the FER2013 tutorials")).to_be_visible(timeout=60_000)
        browser.wait_until_idle(page)
        page.get_by_text("Upload a .zip").click()
        expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=30_000)
        browser.upload(page, upload)
        # Received by the server, not only listed by the browser: a Start pressed while the upload
        # is still on its way finds no dataset.
        expect(page.get_by_text("Received by the server")).to_be_visible(timeout=60_000)
        # Far more epochs than the test waits for: it stops the run itself. No Enter and no wait
        # in between: the click's blur commits the value and the click's rerun carries both,
        # while a click landing in the rerun that an Enter starts was dropped on a busy machine.
        page.get_by_label("Epochs", exact=True).fill("50")
        page.get_by_role("button", name="Start training").click()

        progress = page.get_by_test_id("stProgress").first  # the top panel's; the picked run has one too
        # The first batch traces the graph ("Preparing the model…"): minutes on a busy 2-core machine.
        expect(progress).to_contain_text(
            re.compile(rf"Epoch \d+ of 50: batch \d+ of {BATCHES}"), timeout=300_000
        )
        heading = page.get_by_role("heading", name=re.compile(r"^Run classic-\d{8}-\d{6}"))
        run_name = re.search(r"classic-\d{8}-\d{6}", heading.first.inner_text()).group(0)

        page.reload()  # a new session: the job must still be there, still running
        expect(
            page.get_by_role("heading", name=re.compile(f"^Run {run_name}: (training|validating)"))
        ).to_be_visible(timeout=60_000)
        expect(progress).to_contain_text(re.compile(r"Epoch \d+ of 50"), timeout=60_000)
        expect(page.get_by_test_id("stVegaLiteChart").first).to_be_visible(timeout=120_000)  # epoch 1 done
        expect(page.get_by_test_id("stMetric").filter(has_text="Time left")).not_to_contain_text("–")

        # The page's top Stop: the picked run has one too, and Streamlit's toolbar shows a Stop of its
        # own (for the script run) whenever a run is under way, most of the time on a busy machine.
        page.get_by_role("main").get_by_role("button", name="Stop").first.click()
        expect(page.get_by_role("heading", name=f"Run {run_name}: stopped")).to_be_visible(timeout=120_000)
        expect(page.get_by_test_id("stAlertContentWarning").first).to_contain_text("Resume it")
        # The charts come with the rerun after the heading's: wait for them, don't count at once.
        expect(page.get_by_test_id("stVegaLiteChart").nth(1)).to_be_visible(timeout=60_000)
        expect(page.locator("body")).not_to_contain_text("Traceback")
        context.close()

        # The page said stopped at once; the thread lets go after TensorFlow's step under way. Wait
        # for it while the server lives: once it is gone, a run it never marked reads "interrupted".
        run = read_run(runs_dir / run_name)
        deadline = time.monotonic() + 120
        while run.state == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            run = read_run(runs_dir / run_name)
    epochs_done = len(run.history)
    # (a Stop that lands while an epoch validates also says that its validation was cut)
    assert run.state == "stopped" and run.message.startswith(f"stopped after epoch {epochs_done} of 50")
    assert [row["epoch"] for row in run.history] == list(range(1, epochs_done + 1))
    assert run.resumable
    data_dir = Path(run.config["data_dir"])
    assert data_dir.is_relative_to(runs_dir / UPLOADS_DIR) and data_dir.name == "fer2013"
    assert run.card["training"]["dataset"]["train"]["n"] == NUM_CLASSES * PER_CLASS
