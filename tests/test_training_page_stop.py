"""The Training page around a running job: Stop, the progress bar, the banner, the run picker, presets.

The job here is a stand-in (no Keras, no dataset): a real TrainingJob in the server's job registry
whose work is to write a run folder and wait for Stop, while the test moves its progress channel by
hand. So each test can put the page in the exact moment a user saw go wrong, in a second or two.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from app.emotions import DEFAULT_MODEL_PATH, REPO_ROOT
from app.runs import (
    RUNS_DIR_ENV,
    active_model_path,
    format_duration,
    read_run,
    set_active_model,
    write_status,
)
from training.config import PRESETS, TrainConfig
from training.job_view import ENDED, LETTING_GO, WORKING, ended_banner, page_phase, run_status
from training.jobs import JobManager, Progress, TrainingJob, in_this_process, manager
from training.train import TrainingStopped

MAIN = str(REPO_ROOT / "app" / "streamlit_app.py")
TRAINING_PAGE = str(REPO_ROOT / "pages" / "training.py")
EPOCHS, BATCHES = 3, 6
#: Seconds of training the stand-in's history.csv records: the table of runs shows this.
EPOCH_SECONDS = (30.0, 47.0)


def write_run(
    run_dir: Path, epochs_done: int, state: str, message: str = "", val_accuracy: float = 0.35
) -> None:
    """A run folder as training.train leaves it: config, status and ``epochs_done`` history rows."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(data_dir=Path("x"), run_name=run_dir.name, epochs=EPOCHS, runs_dir=run_dir.parent)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    with (run_dir / "history.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"])
        for epoch in range(1, epochs_done + 1):
            writer.writerow([epoch, 1.8, 0.3, 1.7, val_accuracy, 0.001, EPOCH_SECONDS[epoch - 1]])
    if epochs_done:
        (run_dir / "last.keras").write_bytes(b"checkpoint")  # what Resume needs; never loaded here
    write_status(run_dir, state, message, epochs=EPOCHS)


class StandIn:
    """A job that writes its run folder, then waits for Stop (and for ``release``) and ends stopped."""

    def __init__(self, runs_dir: Path, name: str) -> None:
        self.run_dir = runs_dir / name
        self.release = threading.Event()
        self.job = TrainingJob(name, self.run_dir, "train", EPOCHS, in_this_process(self._work))

    def _work(self, callbacks: Any, stop: threading.Event, on_teacher: Any) -> Path:
        write_run(self.run_dir, 0, "running")
        self.job.channel.update(
            state="training", epochs=EPOCHS, batches=BATCHES, epoch=1, first_epoch=1, batch=2
        )
        stop.wait(60)
        self.release.wait(60)
        done = len(EPOCH_SECONDS)
        write_run(self.run_dir, done, "stopped", f"stopped after epoch {done} of {EPOCHS}")
        raise TrainingStopped(f"stopped after epoch {done} of {EPOCHS}")

    def launch(self) -> TrainingJob:
        """Start it as the server's current job (as JobManager.start does, without the checks)."""
        manager()._launch(self.job, lambda: None)
        return self.job


@pytest.fixture
def stand_in(runs_dir: Path) -> Iterator[StandIn]:
    """A running stand-in job; stopped and released at the end whatever the test did."""
    before = manager().current()
    assert before is None or not before.alive, "another test left a training running"
    job = StandIn(runs_dir, "newer")
    job.launch()
    yield job
    job.job.stop()
    job.release.set()
    job.job.wait(30)


def open_page() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=60)
    at.run()
    at.switch_page(TRAINING_PAGE).run()
    assert not at.exception
    return at


def heading(at: AppTest) -> str:
    return next(text.value for text in at.subheader if text.value.startswith("Run `"))


def wait_for_folder(stand_in: StandIn) -> None:
    """Until the stand-in wrote its run folder (it does at once, in its own thread)."""
    for _ in range(200):
        if (stand_in.run_dir / "status.json").is_file():
            return
        time.sleep(0.05)
    raise AssertionError("the stand-in job wrote no run folder")


# --- 1. Stop ----------------------------------------------------------------------------------------


def test_stop_while_training_shows_stopped_at_once_and_the_job_ends(stand_in: StandIn) -> None:
    """The batch under way can't be cut (one took 40 s on a busy machine): the page doesn't wait for it."""
    at = open_page()
    job = stand_in.job
    assert heading(at) == "Run `newer`: training"

    at.button(key=f"stop_{job.id}").click().run()

    assert job.stop_event.is_set()
    assert heading(at) == "Run `newer`: stopped"
    (banner,) = at.warning
    assert banner.value == "Stopped before the first epoch finished: nothing was trained, so no run was kept."
    assert not [button for button in at.button if button.key == f"stop_{job.id}"]  # nothing left to stop
    stand_in.release.set()
    assert job.wait(30).state == "stopped"


def test_stop_while_validating_is_stopped_at_once_and_says_the_epochs_score_is_not_measured(
    stand_in: StandIn,
) -> None:
    """An epoch's training is on disk (its row, validation NaN, and last.keras) once it validates:
    Stop then waited for the whole validation (seconds to minutes); now it ends the job at once."""
    wait_for_folder(stand_in)
    write_run(stand_in.run_dir, 1, "running", val_accuracy=math.nan)
    stand_in.job.channel.update(state="validating", batch=BATCHES)
    at = open_page()
    metrics = {metric.label: metric.value for metric in at.metric}
    assert (metrics["Epochs done"], metrics["Best val. accuracy"]) == ("0 / 3", "–")  # not done yet

    at.button(key=f"stop_{stand_in.job.id}").click().run()

    assert not at.exception
    assert heading(at) == "Run `newer`: stopped"
    (banner,) = at.warning
    assert banner.value.startswith("Stopped after epoch 1 of 3: every epoch whose training finished is kept")
    assert "The Stop cut epoch 1's validation short, so its score is not measured yet" in banner.value
    # Its thread still finishes the validation batch under way: the run says so, and offers no Resume yet.
    statuses = [text.value for text in at.caption if text.value.startswith("Status")]
    assert statuses == [
        "Status: stopped; TensorFlow finishes the step under way, which it can't interrupt (seconds, "
        "or minutes if it was preparing the model on a busy machine), then it can be resumed."
    ]
    assert not [button for button in at.button if button.key == "resume_newer"]
    assert at.dataframe[0].value.set_index("run").loc["newer", "best val. accuracy"] == "–"


def test_stop_is_not_lost_when_a_rerun_interrupts_the_run_carrying_the_click(
    stand_in: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lost click: the script run that carried it was cut short by a rerun before it reached
    the button. Here the page's first look at the job manager triggers that rerun."""
    at = open_page()
    job = stand_in.job
    current = JobManager.current
    interrupt = [True]

    def interrupted(self: JobManager) -> TrainingJob | None:
        if interrupt:
            interrupt.clear()
            st.rerun()
        return current(self)

    monkeypatch.setattr(JobManager, "current", interrupted)

    at.button(key=f"stop_{job.id}").click().run()

    assert not interrupt, "the page never looked at the job"
    assert job.stop_event.is_set(), "the Stop click was lost"
    stand_in.release.set()
    assert job.wait(30).state == "stopped"


def test_page_phase_follows_the_job_until_its_thread_has_let_go(stand_in: StandIn) -> None:
    """The layout the page's fragment compares with the one its page run drew."""
    job = stand_in.job
    assert page_phase(None) is None
    assert page_phase(job) == (job.id, WORKING)
    job.stop()
    assert page_phase(job) == (job.id, LETTING_GO)  # its thread still finishes the step under way
    stand_in.release.set()
    job.wait(30)
    assert page_phase(job) == (job.id, ENDED)


def test_stop_of_an_older_job_never_stops_the_one_running_now(stand_in: StandIn) -> None:
    assert not manager().stop(stand_in.job.id + 1000)
    assert not stand_in.job.stop_event.is_set()
    assert manager().stop(stand_in.job.id) and stand_in.job.stop_event.is_set()


# --- 2. the progress bar ------------------------------------------------------------------------------


def test_progress_bar_never_goes_back_across_an_epoch_boundary(stand_in: StandIn) -> None:
    at = open_page()
    channel = stand_in.job.channel
    values = []
    for changes in (
        {"epoch": 1, "batch": 5},
        {"batch": 6},
        {"state": "validating"},
        {"epochs_done": 1},
        {"state": "training", "epoch": 2, "batch": 0},
        {"batch": 1},
        {"batch": 2},
    ):
        channel.update(**changes)
        at.run()
        bar, *under_the_run = at.get("progress")  # the top panel's, and the picked run's the same
        assert all(other.proto.text == bar.proto.text for other in under_the_run)
        values.append(bar.proto.value)
        assert f"batch {channel.snapshot().batch} of {BATCHES}" in bar.proto.text

    assert values == sorted(values), values
    assert values[-1] == round(100 * (1 + 2 / BATCHES) / EPOCHS)


# --- 3. the banner's time and the charts, 4. the run picker ---------------------------------------------


def test_after_a_stop_the_picker_shows_the_stopped_run_once_with_the_tables_duration(
    stand_in: StandIn, runs_dir: Path
) -> None:
    write_run(runs_dir / "older", 2, "finished", "2 epochs")
    wait_for_folder(stand_in)
    at = open_page()
    assert at.selectbox(key="runs_pick").value == "newer"  # the job's run, picked when it started
    at.selectbox(key="runs_pick").set_value("older").run()  # the user looks at another one
    assert at.selectbox(key="runs_pick").value == "older"

    at.button(key=f"stop_{stand_in.job.id}").click().run()
    stand_in.release.set()
    assert stand_in.job.wait(30).state == "stopped"
    at.run()

    assert not at.exception
    assert heading(at) == "Run `newer`: stopped"
    assert at.selectbox(key="runs_pick").value == "newer"  # where the banner says to resume it
    (banner,) = at.warning
    assert "Resume it from the table of runs below" in banner.value
    table = at.dataframe[0].value
    duration = table.set_index("run").loc["newer", "duration"]
    assert duration == format_duration(sum(EPOCH_SECONDS)) == "1 min 17 s"
    assert f"({duration} of training in this job)" in banner.value
    assert len(at.get("vega_lite_chart")) == 2  # loss and accuracy once, under the picked run

    at.selectbox(key="runs_pick").set_value("older").run()  # and the user may look elsewhere again
    assert at.selectbox(key="runs_pick").value == "older"


def test_a_running_jobs_curves_are_drawn_once(stand_in: StandIn) -> None:
    wait_for_folder(stand_in)
    write_run(stand_in.run_dir, 1, "running")  # its first epoch is done
    at = open_page()

    assert at.selectbox(key="runs_pick").value == "newer"
    assert len(at.get("vega_lite_chart")) == 2


# --- presets and the form ----------------------------------------------------------------------------


def test_each_preset_fills_the_form_and_the_user_can_still_change_it(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[TrainConfig] = []

    def capture(self: JobManager, config: TrainConfig) -> TrainingJob:
        started.append(config)
        raise ValueError("captured")

    monkeypatch.setattr(JobManager, "start", capture)
    at = open_page()
    preset = at.radio(key="train_preset")
    assert preset.value == "cpu"
    assert at.text_input(key="train_run_name").value.startswith("resnet-")
    assert preset.options == ["Best on a CPU", "Best on a GPU", "Tutorial CNN"]
    for name in ("gpu", "classic", "cpu"):
        at.radio(key="train_preset").set_value(name).run()
        assert any(PRESETS[name].description in caption.value for caption in at.caption)
        wanted = TrainConfig.from_preset(name, data_dir=Path(), run_name="x")
        assert at.selectbox(key="train_arch").value == wanted.arch
        assert at.number_input(key="train_epochs").value == wanted.epochs
        assert at.selectbox(key="train_optimizer").value == wanted.optimizer
        assert at.number_input(key="train_weight_decay").value == pytest.approx(wanted.weight_decay)
        assert at.slider(key="train_erasing").value == pytest.approx(wanted.random_erasing)
        assert at.toggle(key="train_mixed_precision").value == wanted.mixed_precision
        assert at.text_input(key="train_run_name").value.startswith(f"{wanted.arch}-")  # a kept suggestion

    at.number_input(key="train_epochs").set_value(7)
    at.number_input(key="train_warmup").set_value(1)
    at.text_input(key="train_run_name").set_value("mine")
    at.button(key="train_start").click().run()

    assert any("Can't start: captured" in error.value for error in at.error)
    (config,) = started
    expected = TrainConfig.from_preset(
        "cpu", data_dir=config.data_dir, run_name="mine", runs_dir=runs_dir, epochs=7, warmup_epochs=1
    )
    assert config == expected


def test_dropdown_options_are_short_enough_to_read_whole(runs_dir: Path) -> None:
    at = open_page()
    for key in ("train_arch", "train_schedule", "train_optimizer", "train_batch"):
        assert all(len(option) <= 20 for option in at.selectbox(key=key).options), key


# --- the table of runs: what it shows, a weak model, delete -------------------------------------------


def finished_run(runs_dir: Path, name: str, val_accuracy: float) -> Path:
    """A finished 2-epoch run with a best model whose card says ``val_accuracy``."""
    run_dir = runs_dir / name
    write_run(run_dir, 2, "finished", "2 epochs", val_accuracy)
    (run_dir / "best.keras").write_bytes(b"model")  # never loaded by these pages
    card = {"architecture": "classic", "training": {"best_val_accuracy": val_accuracy, "epochs_run": 2}}
    (run_dir / "best.json").write_text(json.dumps(card))
    return run_dir


def test_a_weak_run_becomes_the_model_only_after_a_warning_and_home_still_describes_it(
    runs_dir: Path,
) -> None:
    finished_run(runs_dir, "weak", 0.15)
    at = open_page()
    at.selectbox(key="runs_pick").set_value("weak").run()

    assert any("near chance" in warning.value for warning in at.warning)
    assert at.button(key="use_weak").label == "Use it anyway"
    at.button(key="use_weak").click().run()
    assert active_model_path(runs_dir) == (runs_dir / "weak" / "best.keras").resolve()

    at.switch_page(str(REPO_ROOT / "pages" / "home.py")).run()
    assert not at.exception
    assert "The model" in [header.value for header in at.subheader]
    assert any("run weak's model" in text.value for text in at.markdown)
    assert [metric.value for metric in at.metric] == ["15.0%"]
    assert any("near chance" in warning.value for warning in at.warning)


def test_runs_table_says_what_each_run_has_and_a_run_is_deleted_after_confirming(runs_dir: Path) -> None:
    write_run(runs_dir / "empty", 0, "stopped", "stopped after epoch 0 of 3")
    finished_run(runs_dir, "mine", 0.6)
    set_active_model(runs_dir / "mine" / "best.keras", runs_dir)
    at = open_page()

    table = at.dataframe[0].value.set_index("run")
    assert (
        table.loc["empty", "best val. accuracy"] == "–" and table.loc["mine", "best val. accuracy"] == "60.0%"
    )
    assert (table.loc["mine", "labels"], table.loc["mine", "data"]) == ("FER2013 labels", "x")

    at.selectbox(key="runs_pick").set_value("mine").run()
    assert any("Its model is the active one" in text.value for text in at.markdown)  # said before deleting
    at.button(key="delete_mine").click().run()

    assert not at.exception
    assert not (runs_dir / "mine").exists() and active_model_path(runs_dir) == DEFAULT_MODEL_PATH
    assert list(at.dataframe[0].value["run"]) == ["empty"]


def test_the_run_being_trained_shows_its_progress_where_it_is_picked_and_cannot_be_deleted(
    stand_in: StandIn, runs_dir: Path
) -> None:
    """Resume and Train on are at the bottom of the page: the progress must be there too, and the
    picked run must not read "finished" while it trains."""
    wait_for_folder(stand_in)
    write_status(stand_in.run_dir, "finished", "3 epochs", epochs=EPOCHS)  # a resume still loading
    at = open_page()

    assert at.selectbox(key="runs_pick").value == "newer"
    assert len(at.get("progress")) == 2  # at the top, and under the picked run
    assert any(text.value.startswith("Status: training now") for text in at.caption)
    assert not any("finished" in text.value for text in at.caption if text.value.startswith("Status"))
    assert not [button for button in at.button if button.key == "delete_newer"]
    assert at.button(key=f"stop_run_{stand_in.job.id}")  # Stop is there as well


def run_row(at: AppTest, name: str) -> dict[str, str]:
    """Run ``name``'s row of the table of runs."""
    return dict(at.dataframe[0].value.set_index("run").loc[name])


def test_the_table_reads_the_run_being_trained_as_its_job_is_not_as_its_status_json_was(
    stand_in: StandIn, runs_dir: Path
) -> None:
    """The table is drawn when the page runs, and the page run after Train on read status.json
    before the training process rewrote it: the row said "finished | 2 / 3" while it trained on."""
    wait_for_folder(stand_in)
    finished_run(runs_dir, "newer", 0.6)
    stand_in.job.channel.update(epochs=4, epoch=3, epochs_done=2, first_epoch=3, batch=1)  # on to 4
    at = open_page()

    row = run_row(at, "newer")
    assert (row["status"], row["epochs"], row["best val. accuracy"]) == ("training", "2 / 4", "60.0%")
    # Not made the app's model while it trains: a better epoch may still replace it.
    assert not [button for button in at.button if button.key == "use_newer"]
    assert any(
        text.value.startswith("Its model can be used in Photo and Live once it") for text in at.caption
    )

    stand_in.job.channel.update(state="validating", batch=BATCHES)
    at.run()
    assert (run_row(at, "newer")["status"], run_row(at, "newer")["epochs"]) == (
        "training (validating)",
        "2 / 4",
    )

    at.button(key=f"stop_{stand_in.job.id}").click().run()  # stopped; its work still lets go
    assert run_row(at, "newer")["status"] == "stopped"


def test_a_new_run_is_in_the_table_while_it_trains_before_its_folder_exists(
    stand_in: StandIn, runs_dir: Path
) -> None:
    """The page run after Start comes before the training process makes the run's folder: the
    table said "No runs … yet" for the whole job, even once epochs were saved."""
    wait_for_folder(stand_in)
    shutil.rmtree(stand_in.run_dir)  # as just after Start
    at = open_page()

    assert not at.info
    assert [dict(row) for _, row in at.dataframe[0].value.iterrows()] == [
        {"run": "newer", "status": "training", "epochs": "0 / 3"}  # all the job knows
    ]
    assert at.selectbox(key="runs_pick").value == "newer"
    assert at.button(key=f"stop_run_{stand_in.job.id}")
    assert any(text.value.startswith("Status: training now") for text in at.caption)

    write_run(stand_in.run_dir, 1, "running")  # its folder, and its first epoch
    stand_in.job.channel.update(epoch=2, epochs_done=1, batch=0)
    at.run()
    row = run_row(at, "newer")
    assert (row["status"], row["epochs"], row["architecture"]) == ("training", "1 / 3", "classic")


def test_start_shows_the_new_jobs_stop_and_progress_where_it_was_pressed(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start is at the bottom of the form; the job's panel is at the top of the page, out of view."""
    started: list[StandIn] = []

    def start(self: JobManager, config: TrainConfig) -> TrainingJob:
        started.append(StandIn(config.runs_dir, config.run_name))
        return started[-1].launch()

    monkeypatch.setattr(JobManager, "start", start)
    at = open_page()
    try:
        at.text_input(key="train_run_name").set_value("fresh")
        at.button(key="train_start").click().run()

        assert not at.exception
        (stand,) = started
        keys = [button.key for button in at.button]
        assert keys.index(f"stop_start_{stand.job.id}") == keys.index("train_start") - 1  # just above
        assert any(re.match(r"Run `fresh`: .* now", text.value) for text in at.caption)
        assert len(at.get("progress")) == 3  # at the top, by Start, and by the run in the table
    finally:
        for stand in started:
            stand.job.stop()
            stand.release.set()
            stand.job.wait(30)


# --- in a real browser: Stop in each phase, and a resume followed where it was started -----------------


def validation_heavy_dataset(fer2013_dir: Path, root: Path) -> Path:
    """FER2013 in the Kaggle layout with few training images and many PublicTest ones: an epoch
    trains in a moment and validates for seconds, so a Stop can land while it validates."""
    from app.emotions import CLASS_NAMES

    for name in CLASS_NAMES:
        for folder, pattern, count in (("train", "Training_*", 12), ("test", "PublicTest_*", 250)):
            target = root / folder / name
            target.mkdir(parents=True)
            for image in sorted((fer2013_dir / folder / name).glob(pattern))[:count]:
                (target / image.name).symlink_to(image)
    return root


#: The file that, while it exists, holds the served app's full page runs at their fragment clean-up
#: (tests/held_page_runs/sitecustomize.py); in the ``served`` fixture's folder.
HOLD_NAME = "hold-fragment-cleanup"


@pytest.fixture(scope="module")
def served(
    fer2013_dir: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Any, str, Path]]:
    """The real app with its own runs folder and the validation-heavy dataset as the default folder;
    yields a Chromium page on the Training page and the runs folder. Its page runs can be held at
    their fragment clean-up (HOLD_NAME beside the runs folder), which does nothing until a test
    creates that file."""
    import browser

    if browser.missing_browser():
        pytest.skip(browser.missing_browser())
    root = tmp_path_factory.mktemp("served")
    data = validation_heavy_dataset(fer2013_dir, root / "data")
    env = {
        RUNS_DIR_ENV: str(root / "runs"),
        "FER2013_DIR": str(data),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO_ROOT / "tests" / "held_page_runs"), os.environ.get("PYTHONPATH")])
        ),
        "EMOJIFY_HOLD_FRAGMENT_CLEANUP": str(root / HOLD_NAME),
    }
    chromium = request.getfixturevalue("chromium")  # only once the browser is known to be there
    with browser.streamlit_server(env=env) as url:
        context = chromium.new_context(viewport={"width": 1400, "height": 1400})
        yield context.new_page(), url, root / "runs"
        context.close()


def start_run(page: Any, url: str, name: str) -> None:
    """Open the Training page and start a 2-epoch Tutorial CNN run called ``name`` (each epoch
    validates 1,750 images: two are enough for a Stop in epoch 1 and a resume that trains on)."""
    from playwright.sync_api import expect

    import browser

    page.goto(f"{url}/training")
    expect(page.get_by_role("heading", name="Training", level=1)).to_be_visible(timeout=90_000)
    browser.wait_until_idle(page)
    page.get_by_text("Tutorial CNN").click()
    expect(page.get_by_text("The CNN of the FER2013 tutorials")).to_be_visible(timeout=60_000)
    browser.wait_until_idle(page)
    page.get_by_label("Epochs", exact=True).fill("2")
    page.get_by_role("textbox", name="Run name").fill(name)
    heading = page.get_by_role("heading", name=re.compile(f"^Run {name}: "))
    letting_go = page.get_by_text("still letting go of the CPU")
    start = page.get_by_role("button", name="Start training")
    for _ in range(20):  # a stopped run's thread may still be letting go of the CPU: "try again"
        start.evaluate("button => button.scrollIntoView({block: 'end'})")  # as a user scrolls to it
        start.click()
        # "Checking the dataset…" alone took over 10 s on a busy machine: wait for the answer.
        expect(heading.or_(letting_go).first).to_be_visible(timeout=120_000)
        if heading.count():
            return
        time.sleep(2)
    raise AssertionError(f"run {name} never started")


#: How many of the elements are wholly in the window.
IN_VIEW_JS = """els => els.filter((e) => {
    const r = e.getBoundingClientRect();
    return r.height && r.top >= 0 && r.bottom <= innerHeight;
}).length"""


def expect_in_view(locator: Any, timeout_s: float = 30) -> None:
    """Until one of ``locator``'s elements is wholly in the browser's window (not just on the page)."""
    deadline = time.monotonic() + timeout_s
    while not locator.evaluate_all(IN_VIEW_JS):
        assert time.monotonic() < deadline, f"none of {locator} is in view"
        time.sleep(0.2)


def table_row(page: Any, name: str) -> list[str]:
    """Run ``name``'s row of the table of runs, its cells' texts; [] when it has none."""
    for row in page.get_by_test_id("stDataFrame").locator("tbody tr").all():
        cells = row.locator("td").all_text_contents()
        if cells and cells[0] == name:
            return cells
    return []


def expect_row(page: Any, name: str, status: str, epochs: str = "", timeout_s: float = 120) -> None:
    """Until run ``name``'s row of the table has a status matching ``status`` (a pattern) and, if
    given, ``epochs``; the table is redrawn every second while a job works."""
    deadline = time.monotonic() + timeout_s
    row = table_row(page, name)
    while not (row and re.fullmatch(status, row[1]) and (not epochs or epochs in row)):
        assert time.monotonic() < deadline, f"run {name}'s row is {row}, not {status} with {epochs!r}"
        time.sleep(0.2)
        row = table_row(page, name)


def press_stop(page: Any) -> None:
    """The page's Stop; while a script runs, Streamlit's toolbar shows a Stop button of its own (it
    stops that script run, not the training), and on a busy machine one runs most of the time."""
    page.get_by_role("main").get_by_role("button", name="Stop").first.click()


@pytest.mark.browser
def test_browser_stop_while_the_model_is_prepared_ends_at_once_and_says_nothing_was_kept(served) -> None:
    from playwright.sync_api import expect

    page, url, runs_dir = served
    size = page.viewport_size
    page.set_viewport_size(
        {"width": size["width"], "height": 900}
    )  # the audit's window, not as tall as the form
    start_run(page, url, "early")
    # Where Start was pressed, at the bottom of the window: the job's panel is at the top, out of view.
    main = page.get_by_role("main")
    expect_in_view(main.get_by_role("button", name="Stop"))
    expect_in_view(main.get_by_test_id("stProgress"))
    page.set_viewport_size(size)
    # Listed, though the page ran before its folder; whichever phase comes first, so that the Stop
    # below still lands while the model is prepared.
    expect_row(page, "early", r"training \((starting|loading|preparing)\)")
    progress = page.get_by_test_id("stProgress").first
    expect(progress).to_contain_text("Preparing the model", timeout=120_000)  # not a frozen "batch 0"

    press_stop(page)

    # At once (the 3 s the page allows itself, plus a busy machine's round trip).
    expect(page.get_by_role("heading", name="Run early: stopped")).to_be_visible(timeout=6_000)
    banner = page.get_by_test_id("stAlertContentWarning").first
    expect(banner).to_contain_text(
        "Stopped before the first epoch finished: nothing was trained, so no run was kept"
    )
    expect(banner).not_to_contain_text("Resume")
    expect(page.locator("body")).not_to_contain_text("Traceback")
    deadline = time.monotonic() + 120
    while (runs_dir / "early").exists() and time.monotonic() < deadline:  # its thread lets go
        time.sleep(0.5)
    assert not (runs_dir / "early").exists()


@pytest.mark.browser
def test_browser_stop_while_validating_keeps_the_epoch_and_a_resume_shows_its_progress_by_the_run(
    served,
) -> None:
    """Validating 1,750 images takes a while on a CPU: Stop ends it at once, keeping the epoch's
    training, and the resume measures the validation the Stop cut before it trains on."""
    from playwright.sync_api import expect

    page, url, runs_dir = served
    start_run(page, url, "kept")
    progress = page.get_by_test_id("stProgress").first
    expect(progress).to_contain_text("Epoch 1 of 2: batch 2 of 2, validating", timeout=180_000)

    press_stop(page)

    # At once, as in every other phase (it used to wait for the whole validation).
    expect(page.get_by_role("heading", name="Run kept: stopped")).to_be_visible(timeout=6_000)
    banner = page.get_by_test_id("stAlertContentWarning").first
    expect(banner).to_contain_text("Stopped after epoch 1 of 2: every epoch whose training finished is kept")
    expect(banner).to_contain_text("The Stop cut epoch 1's validation short, so its score is not measured")
    expect(banner).to_contain_text("Resume it from the table of runs below")
    # Once its thread has let go (one validation batch), Resume appears without a click.
    expect(page.get_by_role("button", name="Resume")).to_be_visible(timeout=120_000)
    run = read_run(runs_dir / "kept")
    assert [row["epoch"] for row in run.history] == [1] and run.resumable
    assert math.isnan(run.history[0]["val_accuracy"])

    # Resume at the bottom of the page: the progress shows there, and the run doesn't read "stopped".
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_test_id("stProgress")).to_have_count(2, timeout=60_000)
    expect(page.get_by_text(re.compile(r"^Status: .* now"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Status: stopped"))).to_have_count(0)
    expect_row(
        page, "kept", r"training( \(.*\))?", "1 / 2", timeout_s=300
    )  # not "stopped", its status.json's
    expect(page.get_by_role("heading", name="Run kept: finished")).to_be_visible(timeout=300_000)
    success = page.get_by_test_id("stAlertContentSuccess").first
    expect(success).to_contain_text(re.compile(r"the run now has 2 epochs .*This job trained epochs 2–2 in"))
    run = read_run(runs_dir / "kept")
    assert all(0 < row["val_accuracy"] <= 1 for row in run.history)  # epoch 1's measured by the resume
    expect(page.locator("body")).not_to_contain_text("Traceback")


@pytest.mark.browser
def test_browser_resume_comes_after_a_stop_though_a_late_page_run_cleans_up_its_fragments(served) -> None:
    """A busy machine (load 20-35) once left a stopped run without Resume for 10 minutes. A page run
    of the training's layout, paused after drawing it, cleans up the fragments it did not draw once
    it goes on, even after Stop's page run has drawn the stopped layout and its poll: that poll was
    dropped while the browser kept asking for it ("fragment ... does not exist anymore"), and
    nothing redrew the page when the job let go. The pause is forced here (HOLD_NAME)."""
    from playwright.sync_api import expect

    page, url, runs_dir = served
    hold = runs_dir.parent / HOLD_NAME
    waiting = hold.with_name(hold.name + ".waiting")
    start_run(page, url, "late")
    progress = page.get_by_test_id("stProgress").first
    expect(progress).to_contain_text(re.compile("Epoch 1 of 2: .*validating|Epoch 2 of 2"), timeout=180_000)

    def held_runs(count: int) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if waiting.is_file() and len(waiting.read_text().splitlines()) >= count:
                return
            time.sleep(0.1)
        raise AssertionError(f"{count} page run(s) never reached their fragment clean-up")

    hold.touch()
    try:
        name = page.get_by_role("textbox", name="Run name")
        name.fill("next")
        name.press("Enter")  # a page run of the training's layout, held once drawn
        held_runs(1)
        press_stop(page)
        expect(page.get_by_role("heading", name="Run late: stopped")).to_be_visible(timeout=60_000)
        held_runs(2)  # Stop's page run has drawn the stopped layout, its poll included
    finally:
        hold.unlink(missing_ok=True)  # both runs go on: the late one cleans up after Stop's

    # Once the job's thread lets go (one validation or training batch), Resume comes without a click.
    expect(page.get_by_role("button", name="Resume")).to_be_visible(timeout=180_000)
    expect(page.get_by_text(re.compile(r"^Status: stopped; TensorFlow finishes"))).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("Traceback")


def test_a_run_that_early_stopping_ended_says_so_in_its_banner_and_status(runs_dir: Path) -> None:
    """A 25-epoch run ended at 11 by early stopping read "Finished: 11 epochs…" and "Status:
    finished: 11 epochs" with no word why (only the Time left tooltip mentioned early stopping)."""
    run_dir = runs_dir / "early"
    write_run(run_dir, 2, "finished", "2 epochs")
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "early_stopping_patience": 1}))
    run = read_run(run_dir)
    assert run is not None and run.epochs_run < run.epochs_planned
    progress = Progress("early", run_dir, "train", state="finished", epochs=EPOCHS, epochs_done=2, ended=1.0)

    _, text = ended_banner(progress, run)
    expected = f"Early stopping ended it 2 of {EPOCHS} epochs in: validation accuracy had not improved"
    assert expected in text
    assert expected in run_status(run, None)
