"""The Analysis page: numbers from a model card, a small real evaluation, bad input, comparison.

AppTest runs the page script in this process, so a test can point the shipped default at a copy
with a known card (monkeypatching ``DEFAULT_MODEL_PATH``) and read the table, metrics and chart
data the page produced. The browser tests at the end run the real server in headless Chromium:
evaluating with a progress bar, clicking a cell of the heatmap, downloading the CSV.

Every expected number comes from :mod:`training.analysis` run directly on the same model and
images (or from a hand-built card), never from the page itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from app.classifier import EmotionClassifier
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH, NUM_CLASSES, REPO_ROOT
from app.model_card import read_card, write_card
from training.analysis import (
    compare_frame,
    load_folder,
    per_class_csv,
    per_class_frame,
    predict_dataset,
    score,
)
from training.data import load_split
from training.ground_truth import (
    ANNOTATORS,
    LABEL,
    MAJORITY_KEY,
    TRUTHS,
    as_truth,
    both_truths,
    card_caption,
    disagreements,
    majority_line,
    with_votes,
)
from training.votes import SHIPPED_VOTES, read_votes

import browser

MAIN = str(REPO_ROOT / "app" / "streamlit_app.py")
PAGE = str(REPO_ROOT / "pages" / "analysis.py")
TIMEOUT_S = 180

#: A card result with known counts (rows = true, columns = predicted): 19 of 28 right.
CARD_CONFUSION = [
    [3, 0, 1, 0, 0, 0, 0],
    [1, 1, 0, 0, 0, 0, 0],
    [0, 0, 2, 0, 0, 2, 0],
    [0, 0, 0, 6, 0, 0, 0],
    [0, 0, 0, 1, 2, 1, 0],
    [0, 0, 1, 0, 1, 2, 0],
    [0, 0, 1, 0, 0, 0, 3],
]


def result_from(confusion: list[list[int]]) -> dict[str, Any]:
    """score() of predictions that reproduce ``confusion`` exactly."""
    y_true = [t for t, row in enumerate(confusion) for p, count in enumerate(row) for _ in range(count)]
    y_pred = [p for t, row in enumerate(confusion) for p, count in enumerate(row) for _ in range(count)]
    return score(np.array(y_true), np.eye(NUM_CLASSES)[y_pred])


CARD_RESULT = result_from(CARD_CONFUSION)


def model_with_card(folder: Path, evaluation: dict[str, Any] | None, name: str = "emotion_cnn.keras") -> Path:
    """A copy of the shipped model in ``folder`` whose card holds ``evaluation`` (or no evaluation)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / name
    shutil.copy2(DEFAULT_MODEL_PATH, model)
    card = read_card(DEFAULT_MODEL_PATH) or {}
    card.pop("evaluation", None)
    if evaluation is not None:
        card["evaluation"] = evaluation
    write_card(model, card)
    return model


def fake_run(runs_dir: Path, name: str, evaluation: dict[str, Any]) -> Path:
    """A finished run folder as training.train leaves it: config, history, best.keras and its card."""
    run = runs_dir / name
    model_with_card(run, evaluation, name="best.keras")
    (run / "config.json").write_text(json.dumps({"epochs": 3, "arch": "classic"}))
    (run / "history.csv").write_text(
        "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n"
        "1,1.8,0.25,1.7,0.30,0.001,10\n2,1.6,0.35,1.55,0.40,0.001,10\n3,1.5,0.40,1.5,0.42,0.001,10\n"
    )
    return run


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No runs, no FER2013 folder: only what a test sets up. Returns the (empty) runs folder."""
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("EMOJIFY_RUNS_DIR", str(runs))
    monkeypatch.delenv("FER2013_DIR", raising=False)
    return runs


@pytest.fixture
def default_with_card(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, isolated: Path) -> Path:
    """The shipped default, swapped for a copy whose card holds CARD_RESULT for PrivateTest."""
    model = model_with_card(tmp_path / "model", {"private_test": CARD_RESULT})
    # app.emotions last: a module that binds the path on import, imported by one of these patches
    # after it, would take the copy for its original and keep it for every later test.
    for module in ("app.runs", "pages.shared", "app.emotions"):
        monkeypatch.setattr(f"{module}.DEFAULT_MODEL_PATH", model)
    return model


def open_page() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT_S)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def chart_data(at: AppTest, key: str | None = None, title: str | None = None) -> pd.DataFrame:
    """The data behind the one Vega-Lite chart with widget ``key`` (only selectable charts have
    one) or whose title starts with ``title``; Streamlit ships the data as Arrow."""

    def wanted(chart) -> bool:
        if key is not None:
            return chart.proto.id.endswith(f"-{key}")
        return str(json.loads(chart.proto.spec).get("title", "")).startswith(title or "")

    (chart,) = [chart for chart in at.get("vega_lite_chart") if wanted(chart)]
    return pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_pandas()


def matrix_of(data: pd.DataFrame) -> list[list[int]]:
    """The 7×7 counts in a heatmap's data, rows = true class."""
    counts = data.set_index(["true", "predicted"])["count"]
    return [[int(counts[(t, p)]) for p in CLASS_NAMES] for t in CLASS_NAMES]


def errors(at: AppTest) -> list[str]:
    return [error.value for error in at.error]


# --- AppTest -----------------------------------------------------------------------------------------


def test_default_model_shows_its_card_without_the_dataset(default_with_card: Path) -> None:
    at = open_page()

    assert at.selectbox(key="model").value.startswith("Shipped default")
    assert at.selectbox(key="split").value == "PrivateTest"
    assert at.text_input(key="fer2013_dir").value == ""  # no dataset anywhere
    assert metrics(at) == {
        "Accuracy": f"{19 / 28:.1%}",
        "Macro-F1": f"{CARD_RESULT['macro_f1']:.3f}",
        "Balanced accuracy": f"{CARD_RESULT['balanced_accuracy']:.1%}",
        "Images": "28",
    }
    pd.testing.assert_frame_equal(at.dataframe[0].value, per_class_frame(CARD_RESULT))
    assert matrix_of(chart_data(at, "matrix")) == CARD_CONFUSION
    assert any("from the model card" in caption.value for caption in at.caption)
    assert not errors(at) and not at.info  # no "evaluate it" prompt: the card had the split
    assert "Evaluate on PrivateTest to see the images" in [button.label for button in at.button]
    # The shipped model is two models averaged: its card's own training is the first one's alone.
    training = next(caption.value for caption in at.caption if "Its card says" in caption.value)
    assert "2 models averaged" in training and "`scv2`" in training and "`ftv1`" in training
    assert "against the FER+ annotators' majority" in training

    at.toggle(key="normalised").set_value(True).run()
    shares = chart_data(at, "matrix").set_index(["true", "predicted"])["value"]
    assert shares[("fear", "sad")] == pytest.approx(2 / 4)
    assert shares[("happy", "happy")] == 1.0


def test_card_without_the_split_asks_for_an_evaluation_and_explains_a_missing_dataset(
    default_with_card: Path, tmp_path: Path
) -> None:
    at = open_page()
    at.selectbox(key="split").set_value("PublicTest").run()

    assert "no results for **PublicTest**" in at.info[0].value
    assert not at.metric

    at.button(key="evaluate_main").click().run()

    assert not at.exception
    assert "no FER2013 folder given" in errors(at)[0]
    # Still usable: type a folder and try again.
    at.text_input(key="fer2013_dir").input(str(tmp_path / "nowhere")).run()
    at.button(key="evaluate_main").click().run()
    assert not at.exception
    assert errors(at) == [f"The images can't be used: dataset path does not exist: {tmp_path / 'nowhere'}"]


def flat(block: Any) -> Iterator[Any]:
    """Every element of an AppTest tree in page order."""
    yield block
    for child in getattr(block, "children", {}).values():
        yield from flat(child)


def test_evaluating_for_the_images_shows_its_progress_by_the_button_and_then_the_faces(
    default_with_card: Path, fer2013_mini: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "Evaluate on PrivateTest to see the images" button sits low on the page: its progress
    bar must appear there, not at the top after a rerun of the whole page."""
    import streamlit as st

    from training.evaluation_jobs import describe

    def marked(status: Any) -> str:
        st.caption("MARK: evaluating here")  # drawn where the progress bar is
        return describe(status)

    monkeypatch.setattr("training.evaluation_jobs.describe", marked)
    # The page redraws itself from the cached evaluation once it is done (so the numbers at the
    # top are the evaluation's: test_browser_evaluates_… checks that); held here, to see this run.
    reruns: list[bool] = []
    monkeypatch.setattr(st, "rerun", lambda *args, **kwargs: reruns.append(True))
    at = open_page()
    at.text_input(key="fer2013_dir").input(str(fer2013_mini)).run()

    at.button(key="evaluate_images").click().run()

    assert not at.exception and not errors(at)
    assert reruns == [True]
    order = [value for element in flat(at.main) if isinstance(value := getattr(element, "value", None), str)]
    mark = order.index("MARK: evaluating here")
    assert mark > order.index("The faces behind a cell"), "the progress was drawn above, out of sight"
    assert at.get("image"), "the faces show right after the evaluation"
    assert "evaluate_images" not in [button.key for button in at.button]


def evaluate_folder(folder: Path) -> AppTest:
    """A fresh session of the page that evaluates the shipped model on ``folder`` (or finds that
    the server has evaluated it already)."""
    at = open_page()
    at.selectbox(key="split").set_value("A folder on the server").run()
    at.text_input(key="split_folder").input(str(folder)).run()
    evaluate_if_offered(at)
    return at


def evaluate_if_offered(at: AppTest) -> None:
    """Click *Evaluate* when the page offers it: an earlier test may have had the server evaluate
    the same model and images, and the page then shows that evaluation at once."""
    if [button for button in at.button if button.key == "evaluate_main"]:
        at.button(key="evaluate_main").click().run()


def test_small_real_evaluation_of_a_folder_matches_the_library(
    isolated: Path, fer2013_mini: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "faces"  # a folder no earlier test evaluated, so the cache starts empty for it
    shutil.copytree(fer2013_mini / "test", folder)
    expected = predict_dataset(EmotionClassifier.load(DEFAULT_MODEL_PATH), load_folder(folder)).result()
    runs: list[int] = []

    def counting(*args, **kwargs):
        runs.append(1)
        return predict_dataset(*args, **kwargs)

    monkeypatch.setattr("training.analysis.predict_dataset", counting)

    at = evaluate_folder(folder)

    assert not at.exception and not errors(at)
    assert runs == [1]
    assert not at.get("progress")  # the bar goes once the evaluation is done
    assert metrics(at)["Images"] == "28"
    assert metrics(at)["Accuracy"] == f"{expected['accuracy']:.1%}"
    pd.testing.assert_frame_equal(at.dataframe[0].value, per_class_frame(expected))
    assert matrix_of(chart_data(at, "matrix")) == expected["confusion"]
    assert at.get("download_button")[0].label.endswith("(CSV)")

    # The faces behind one cell: the busiest mistake, most confident first.
    confusion = np.array(expected["confusion"])
    np.fill_diagonal(confusion, -1)
    true, predicted = np.unravel_index(confusion.argmax(), confusion.shape)
    at.selectbox(key="cell_true").set_value(CLASS_NAMES[true]).run()
    at.selectbox(key="cell_predicted").set_value(CLASS_NAMES[predicted]).run()

    heading = f"**True {CLASS_NAMES[true]} → predicted {CLASS_NAMES[predicted]}**: {confusion.max()} mistakes"
    assert any(markdown.value.startswith(heading) for markdown in at.markdown)
    (gallery,) = at.get("image")
    confidences = [float(re.search(r"(\d+)%$", image.caption).group(1)) for image in gallery.proto.imgs]
    assert len(confidences) == confusion.max()
    assert confidences == sorted(confidences, reverse=True)
    assert all(
        image.caption.startswith(f"{CLASS_NAMES[true]} → {CLASS_NAMES[predicted]} ")
        for image in gallery.proto.imgs
    )

    # Another session asking for the same model and folder gets the server's result at once: no
    # second run and no button to press.
    again = open_page()
    again.selectbox(key="split").set_value("A folder on the server").run()
    again.text_input(key="split_folder").input(str(folder)).run()
    assert "evaluate_main" not in [button.key for button in again.button]
    assert metrics(again) == metrics(at) and runs == [1]


def _text_file_as_model(tmp_path: Path) -> Path:
    path = tmp_path / "broken.keras"
    path.write_text("not a model")
    return path


def _five_class_model(tmp_path: Path) -> Path:
    import keras

    model = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(5)])
    path = tmp_path / "five.keras"
    model.save(path)
    return path


def _faces_with_a_cats_folder(fer2013_mini: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "faces"
    shutil.copytree(fer2013_mini / "test", folder)
    shutil.copytree(folder / "happy", folder / "cats")
    return folder


def _class_folders_without_images(fer2013_mini: Path, tmp_path: Path) -> Path:
    for name in CLASS_NAMES:
        (tmp_path / "empty" / name).mkdir(parents=True)
    return tmp_path / "empty"


@pytest.mark.parametrize(
    ("make_model", "make_folder", "message"),
    [
        (_text_file_as_model, None, "The model can't be used: broken.keras is not a readable Keras model"),
        (
            _five_class_model,
            None,
            r"The model can't be used: the model takes \(48, 48, 1\) and returns \(5,\); Emojify needs",
        ),
        (None, _faces_with_a_cats_folder, "The images can't be used: .*unknown class folder\\(s\\): cats"),
        (None, _class_folders_without_images, "The images can't be used: no images .*empty"),
    ],
    ids=["not-keras", "breaks-contract", "unknown-class", "no-images"],
)
def test_bad_model_or_folder_gives_a_clear_error_and_the_page_stays_usable(
    isolated: Path, fer2013_mini: Path, tmp_path: Path, make_model, make_folder, message: str
) -> None:
    at = open_page()
    if make_model:
        at.selectbox(key="model").set_value("Another .keras file on the server…").run()
        at.text_input(key="model_path").input(str(make_model(tmp_path))).run()
    at.selectbox(key="split").set_value("A folder on the server").run()
    folder = make_folder(fer2013_mini, tmp_path) if make_folder else fer2013_mini / "test"
    at.text_input(key="split_folder").input(str(folder)).run()
    at.button(key="evaluate_main").click().run()

    assert not at.exception
    assert len(errors(at)) == 1 and re.match(message, errors(at)[0]), errors(at)
    assert not at.metric
    # Still usable: back to the shipped model and a good folder, and the evaluation runs.
    at.selectbox(key="model").set_value(at.selectbox(key="model").options[0]).run()
    at.text_input(key="split_folder").input(str(fer2013_mini / "test")).run()
    evaluate_if_offered(at)
    assert not errors(at) and metrics(at)["Images"] == "28"


def test_public_mode_offers_visitors_no_server_paths_until_the_owner_unlocks(
    default_with_card: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EMOJIFY_PUBLIC", "1")
    monkeypatch.setenv("EMOJIFY_OWNER_PASSWORD", "owner-secret")
    monkeypatch.setenv("EMOJIFY_DATA_ROOT", str(tmp_path / "data"))
    at = open_page()
    assert "Another .keras file on the server…" not in at.selectbox(key="model").options
    assert "A folder on the server" not in at.selectbox(key="split").options
    assert not [field for field in at.text_input if field.key == "fer2013_dir"]
    assert metrics(at)["Images"] == "28"  # the card's numbers still show

    at.session_state["owner_unlocked"] = True
    at.run()
    at.selectbox(key="split").set_value("A folder on the server").run()
    at.text_input(key="split_folder").input("/etc").run()
    assert any("outside the data folder" in error for error in errors(at)), errors(at)
    assert not at.exception


def test_comparison_shows_both_matrices_and_the_per_class_change(
    default_with_card: Path, isolated: Path
) -> None:
    changed = [row[:] for row in CARD_CONFUSION]
    changed[2] = [0, 0, 4, 0, 0, 0, 0]  # the new run gets every fear face right
    run_result = result_from(changed)
    fake_run(isolated, "better", {"private_test": run_result})

    at = open_page()
    run_label = next(
        option for option in at.selectbox(key="compare_model").options if option.startswith("Run better")
    )
    at.selectbox(key="compare_model").set_value(run_label).run()

    assert not at.exception and not errors(at)
    assert matrix_of(chart_data(at, title="A: ")) == CARD_CONFUSION
    assert matrix_of(chart_data(at, title="B: ")) == changed
    table = at.dataframe[-1].value
    pd.testing.assert_frame_equal(table, compare_frame(CARD_RESULT, run_result))
    assert table.set_index("class").loc["fear", "Δ recall"] == pytest.approx(1 - 2 / 4)
    accuracy_b = [metric for metric in at.metric if metric.label == "Accuracy"][-1]
    assert accuracy_b.value == f"{21 / 28:.1%}" and accuracy_b.delta == f"{2 / 28 * 100:+.1f} pts"
    # A's figures stand beside B's in the comparison (not only at the top of the page).
    top, accuracy_a, _ = [metric for metric in at.metric if metric.label == "Accuracy"]
    assert accuracy_a.value == top.value == f"{19 / 28:.1%}" and not accuracy_a.delta
    # The change table is coloured: green where B does better, nothing where nothing changed.
    styles = at.dataframe[-1].proto.arrow_data.styler.styles
    assert "rgba(34, 197, 94" in styles and "rgba(239, 68, 68" not in styles
    coloured = {(int(row), int(col)) for row, col in re.findall(r"_row(\d+)_col(\d+)", styles)}
    changed = {
        (row, col)
        for col, name in enumerate(table.columns)
        if name.startswith("Δ")
        for row in range(len(table))
        if abs(table[name].iloc[row]) >= 5e-4
    }
    assert coloured == changed and changed

    # The run as the main model: its training curves from history.csv.
    at.selectbox(key="model").set_value(run_label).run()
    curves = chart_data(at, title="Loss and accuracy per epoch")
    assert sorted(curves["epoch"].unique().tolist()) == [1, 2, 3]
    validation_accuracy = curves[(curves["metric"] == "accuracy") & (curves["set"] == "validation")]
    assert validation_accuracy["value"].tolist() == pytest.approx([0.30, 0.40, 0.42])


# --- the real app in a browser -----------------------------------------------------------------------

browser_only = pytest.mark.skipif(
    browser.missing_browser() is not None, reason=str(browser.missing_browser())
)


@pytest.fixture(scope="module")
def browser_setup(fer2013_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real server with FER2013_DIR = the mini dataset and one finished run with a card."""
    runs = tmp_path_factory.mktemp("browser_runs")
    fake_run(runs, "carded", {"private_test": CARD_RESULT})
    saved = {key: os.environ.get(key) for key in ("FER2013_DIR", "EMOJIFY_RUNS_DIR")}
    os.environ.update(FER2013_DIR=str(fer2013_mini), EMOJIFY_RUNS_DIR=str(runs))
    try:
        with browser.streamlit_server() as url:
            yield url, runs
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def analysis_page(browser_setup, chromium):
    from playwright.sync_api import expect

    url, _ = browser_setup
    context = chromium.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    page.goto(f"{url}/analysis")
    expect(page.get_by_role("heading", name="Analysis", level=1)).to_be_visible(timeout=90_000)
    browser.wait_until_idle(page)
    try:
        yield page
    finally:
        context.close()


def heatmap_cell(page, true: str, predicted: str):
    """The rect of one heatmap cell; Vega labels each mark with its tooltip fields."""
    chart = page.get_by_test_id("stVegaLiteChart").first
    return chart.locator(f'g.mark-rect path[aria-label^="predicted: {predicted}; true: {true};"]')


def expect_result_shown(page, result: dict[str, Any]) -> None:
    """The page's image count, accuracy and every heatmap cell's count are those of ``result``."""
    from playwright.sync_api import expect

    images_metric = page.get_by_test_id("stMetric").filter(has_text="Images")
    # While a rerun replaces one result by another, the old one's metrics are still on the page for
    # a moment (a strict-mode error, not retried); wait for the one result the page settles on.
    expect(images_metric).to_have_count(1, timeout=90_000)
    expect(images_metric).to_contain_text(f"{result['n']:,}", timeout=90_000)
    browser.wait_until_idle(page)
    expect(page.get_by_test_id("stMetric").filter(has_text="Accuracy").first).to_contain_text(
        f"{result['accuracy']:.1%}"
    )
    for t, p in np.ndindex((NUM_CLASSES, NUM_CLASSES)):
        label = heatmap_cell(page, CLASS_NAMES[t], CLASS_NAMES[p])
        expect(label).to_have_attribute("aria-label", re.compile(f"images: {result['confusion'][t][p]};"))


@browser_only
@pytest.mark.browser
def test_browser_evaluates_the_shipped_model_and_shows_the_faces_of_a_clicked_cell(
    analysis_page, fer2013_mini: Path
) -> None:
    from playwright.sync_api import expect

    page = analysis_page
    expected = predict_dataset(
        EmotionClassifier.load(DEFAULT_MODEL_PATH), load_split(fer2013_mini, "private_test")
    ).result()
    # Whatever the shipped card holds, one button evaluates PrivateTest on the images.
    page.get_by_role("button", name=re.compile(r"^Evaluate on PrivateTest")).click()
    assert expected["n"] == 14
    expect_result_shown(page, expected)
    expect(page.get_by_text("The faces behind a cell")).to_be_visible()

    confusion = np.array(expected["confusion"])
    np.fill_diagonal(confusion, -1)
    t, p = np.unravel_index(confusion.argmax(), confusion.shape)
    heatmap_cell(page, CLASS_NAMES[t], CLASS_NAMES[p]).click()

    heading = f"True {CLASS_NAMES[t]} → predicted {CLASS_NAMES[p]}: {confusion.max()} mistakes"
    expect(page.get_by_text(heading)).to_be_visible(timeout=60_000)
    captions = page.get_by_test_id("stImageCaption").filter(has_text=f"{CLASS_NAMES[t]} → {CLASS_NAMES[p]} ")
    expect(captions).to_have_count(int(confusion.max()))
    expect(page.get_by_test_id("stException")).to_have_count(0)


@browser_only
@pytest.mark.browser
def test_browser_run_results_come_from_its_card_and_download_as_csv(analysis_page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = analysis_page
    page.get_by_role("combobox", name="Model", exact=True).click()
    page.get_by_role("option", name=re.compile(r"^Run carded")).click()

    expect(page.get_by_text("from the model card of")).to_be_visible(timeout=60_000)
    expect_result_shown(page, CARD_RESULT)
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Run carded: finished, 3 of 3 epochs"))).to_be_visible()

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the table (CSV)").click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    assert saved.name == "best_private_test_per_class.csv"
    assert saved.read_text() == per_class_csv(CARD_RESULT)


@browser_only
@pytest.mark.browser
def test_browser_evaluates_an_uploaded_zip(analysis_page, fer2013_mini: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page = analysis_page
    archive = Path(shutil.make_archive(str(tmp_path / "faces"), "zip", fer2013_mini, "test"))
    expected = predict_dataset(
        EmotionClassifier.load(DEFAULT_MODEL_PATH), load_folder(fer2013_mini / "test")
    ).result()

    page.get_by_role("combobox", name="Images").click()
    page.get_by_role("option", name="An uploaded .zip").click()
    browser.upload(page, archive)
    page.get_by_role("button", name="Evaluate on faces.zip").click()

    assert expected["n"] == 28
    expect_result_shown(page, expected)
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_a_mistake_can_be_explained_for_the_wrong_verdict_and_the_true_class(
    isolated: Path, fer2013_mini: Path
) -> None:
    """The explanation toggle under the gallery: the picked face under its heatmap, first for what
    the model said, then for the class it should have said."""
    folder = fer2013_mini / "test"
    at = evaluate_folder(folder)
    assert not at.exception and not errors(at)
    at.toggle(key="analysis_gradcam").set_value(True).run()
    assert not at.exception

    # The gallery shows mistakes by default: the shipped model gets about 4 in 10 of FER2013 wrong.
    first = at.selectbox(key="analysis_gradcam_face").options[0]
    true, predicted = re.match(r"1\. (\w+) → (\w+) \d+%$", first).groups()
    assert true != predicted

    def heatmap_caption() -> str:
        return at.get("image")[-1].proto.imgs[0].caption

    assert heatmap_caption() == f"Grad-CAM: {predicted}"
    at.selectbox(key="analysis_gradcam_class").set_value(true).run()
    assert not at.exception
    assert heatmap_caption() == f"Grad-CAM: {true}"


# --- two truths: the FER2013 label and the FER+ annotators' majority ----------------------------------


def test_ground_truth_switch_and_the_disagreements_with_their_votes(
    isolated: Path, fer2013_mini: Path
) -> None:
    """28 real test images whose paths are the votes file's: every number, the matrix and its
    faces follow the switch, and the images where label and annotators disagree show their votes."""
    evaluation, _ = with_votes(
        predict_dataset(EmotionClassifier.load(DEFAULT_MODEL_PATH), load_folder(fer2013_mini)),
        read_votes(SHIPPED_VOTES),
        fer2013_mini,
    )
    expected = both_truths(evaluation)
    against = expected[MAJORITY_KEY]

    at = evaluate_folder(fer2013_mini)

    assert not at.exception and not errors(at)
    assert at.radio(key="truth").value == LABEL
    assert metrics(at)["Images"] == "28" and metrics(at)["Accuracy"] == f"{expected['accuracy']:.1%}"

    at.radio(key="truth").set_value(ANNOTATORS).run()

    assert not at.exception
    assert metrics(at) == {
        "Accuracy": f"{against['accuracy']:.1%}",
        "Macro-F1": f"{against['macro_f1']:.3f}",
        "Balanced accuracy": f"{against['balanced_accuracy']:.1%}",
        "Images": f"{against['n']:,}",
    }
    assert matrix_of(chart_data(at, "matrix")) == against["confusion"]
    pd.testing.assert_frame_equal(at.dataframe[0].value, per_class_frame(against))
    assert any(majority_line(against) in caption.value for caption in at.caption)
    # The gallery's "true" class is now the annotators' majority.
    mistakes = as_truth(evaluation, ANNOTATORS)
    wrong = int((mistakes.y_true != mistakes.y_pred).sum())
    assert any(
        markdown.value.startswith(f"**Every class, predicted as another**: {wrong} ")
        for markdown in at.markdown
    )

    # The disagreements: each card's caption names the label, the annotators' majority and the model.
    found = disagreements(evaluation)
    assert len(found) > 0
    assert any(subheader.value == "Where the label and the annotators disagree" for subheader in at.subheader)
    cards = at.get("image")[-1].proto.imgs
    assert [card.caption for card in cards] == [card_caption(evaluation, i) for i in found]
    at.selectbox(key="disagree_label").set_value(CLASS_NAMES[evaluation.y_true[found[0]]]).run()
    narrowed = disagreements(evaluation, label=int(evaluation.y_true[found[0]]))
    assert [c.caption for c in at.get("image")[-1].proto.imgs] == [
        card_caption(evaluation, i) for i in narrowed
    ]


def test_no_switch_where_the_images_have_no_votes(isolated: Path, fer2013_mini: Path, tmp_path: Path) -> None:
    folder = tmp_path / "faces"  # one split's class folders: paths the votes file does not know
    shutil.copytree(fer2013_mini / "test", folder)

    at = evaluate_folder(folder)

    assert not at.exception and metrics(at)["Images"] == "28"
    assert not [radio for radio in at.radio if radio.key == "truth"]
    assert "Where the label and the annotators disagree" not in [s.value for s in at.subheader]


def test_comparison_matrices_share_one_colour_scale(default_with_card: Path, isolated: Path) -> None:
    """Issue 23, item 18: each matrix used to scale its colours to its own largest count."""
    busier = [row[:] for row in CARD_CONFUSION]
    busier[3] = [0, 0, 0, 12, 0, 0, 0]  # B's happy row: 12 where A's largest count is 6
    fake_run(isolated, "busier", {"private_test": result_from(busier)})
    at = open_page()
    label = next(o for o in at.selectbox(key="compare_model").options if o.startswith("Run busier"))

    at.selectbox(key="compare_model").set_value(label).run()

    def domain(title: str) -> list[float]:
        (chart,) = [
            c
            for c in at.get("vega_lite_chart")
            if json.loads(c.proto.spec).get("title", "").startswith(title)
        ]
        return json.loads(chart.proto.spec)["layer"][0]["encoding"]["color"]["scale"]["domain"]

    assert domain("A: ") == domain("B: ") == [0, 12]


def test_a_reload_keeps_the_choices_and_finds_the_evaluation(
    isolated: Path, fer2013_mini: Path, tmp_path: Path
) -> None:
    """Issue 23, item 17: a reloaded page (a new session with the URL's query parameters) comes
    back with every choice, and to the server's evaluation instead of an offer to start again."""
    folder = tmp_path / "faces"
    shutil.copytree(fer2013_mini, folder)
    first = evaluate_folder(folder)
    assert metrics(first)["Images"] == "28"

    reloaded = AppTest.from_file(MAIN, default_timeout=TIMEOUT_S)
    reloaded.run()
    for key, value in {
        "split": "A folder on the server",
        "split_folder": str(folder),
        "normalised": "true",
        "truth": TRUTHS[ANNOTATORS],
    }.items():
        reloaded.query_params[key] = value
    reloaded.switch_page(PAGE).run()

    assert not reloaded.exception and not errors(reloaded)
    assert reloaded.selectbox(key="split").value == "A folder on the server"
    assert reloaded.text_input(key="split_folder").value == str(folder)
    assert reloaded.toggle(key="normalised").value is True
    assert reloaded.radio(key="truth").value == ANNOTATORS
    assert "evaluate_main" not in [button.key for button in reloaded.button]
    assert metrics(reloaded)["Images"] != "28"  # the annotators' majority: the images with a clear one
    assert reloaded.get("image"), "the faces of the evaluation are there"


@browser_only
@pytest.mark.browser
def test_browser_a_reload_during_an_evaluation_keeps_the_choices_and_the_work(
    analysis_page, fer2013_dir: Path
) -> None:
    """Issue 23, item 17: reloading in the middle of evaluating the real PrivateTest (3,589 faces)
    used to reset every choice and throw the work away. Now the URL keeps the choices, and the
    reloaded page finds the evaluation where it was (never back at the start) and shows its faces."""
    from playwright.sync_api import expect

    page = analysis_page
    folder = page.get_by_label("FER2013 folder (for a new evaluation)", exact=True)
    folder.fill(str(fer2013_dir), timeout=120_000)  # a busy machine draws the page slowly
    folder.press("Enter")
    browser.switch_on(page.get_by_role("switch", name="Row-normalised"), timeout_ms=60_000)
    browser.wait_until_idle(page)
    page.get_by_role("button", name="Evaluate on PrivateTest to see the images").click(timeout=120_000)
    progress = page.get_by_test_id("stProgress")
    under_way = re.compile(r"Classifying PrivateTest: ([\d,]+) of 3,589 images")
    expect(progress).to_contain_text(under_way, timeout=180_000)
    done_before = int(under_way.search(progress.inner_text()).group(1).replace(",", ""))
    assert "fer2013_dir=" in page.url and "normalised=true" in page.url

    page.reload()

    finished = page.get_by_text("evaluated on the images of PrivateTest")
    expect(progress.or_(finished).first).to_be_visible(timeout=90_000)
    try:
        text = progress.inner_text(timeout=2_000)
    except Exception:  # already done: no progress to read
        text = ""
    if text:
        assert not text.startswith(("Loading", "Reading")), text  # not started again
        match = under_way.search(text)
        assert match is None or int(match.group(1).replace(",", "")) >= done_before, (text, done_before)
    expect(finished).to_be_visible(timeout=300_000)
    expect(page.get_by_label("FER2013 folder (for a new evaluation)", exact=True)).to_have_value(
        str(fer2013_dir)
    )
    expect(page.get_by_role("switch", name="Row-normalised")).to_be_checked()
    expect(page.get_by_role("button", name=re.compile("^Evaluate"))).to_have_count(0)
    expect(page.get_by_test_id("stMetric").filter(has_text="Images").first).to_contain_text("3,589")
    expect(page.get_by_text("Where the label and the annotators disagree")).to_be_visible()
    browser.wait_until_idle(page)
    page.get_by_test_id("stRadio").get_by_text("Annotators' majority").click()
    expect(page.get_by_test_id("stMetric").filter(has_text="Images").first).to_contain_text(
        "3,344", timeout=60_000
    )
    expect(page.get_by_test_id("stException")).to_have_count(0)
