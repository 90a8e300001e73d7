"""The Training page after a run is deleted: what the top panel says, what is picked, what Delete aims at.

An audit deleted a finished run: the top panel then read "Run `e`: finished" over "The training
failed: 25 epochs" for every visitor, and the picker still read the deleted name over another
run's details, with the Delete… popover still open on "Delete a", one click from deleting a run
nobody picked. Runs here are written by hand (test_training_page_stop.write_run); the job is a
stand-in that only finishes its run, so nothing trains.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from streamlit.testing.v1.element_tree import AlertBase
from test_training_page_stop import EPOCHS, finished_run, open_page, write_run

from app.runs import RUNS_DIR_ENV
from training.job_view import ended_banner
from training.jobs import Progress, TrainingJob, in_this_process, manager

import browser

if TYPE_CHECKING:
    from playwright.sync_api import Browser
    from streamlit.testing.v1 import AppTest


def finishing(run_dir: Path) -> Callable[[Any, threading.Event, Any], Path]:
    """A job's work that writes ``run_dir`` as a finished run at once, as training.train leaves it."""

    def work(callbacks: Any, stop: threading.Event, on_teacher: Any) -> Path:
        write_run(run_dir, 2, "finished", "2 epochs")
        return run_dir

    return work


@pytest.fixture
def finished_job(runs_dir: Path) -> Iterator[TrainingJob]:
    """The server's current job: it trained run ``e``, which finished."""
    before = manager().current()
    assert before is None or not before.alive, "another test left a training running"
    job = TrainingJob("e", runs_dir / "e", "train", EPOCHS, in_this_process(finishing(runs_dir / "e")))
    manager()._launch(job, lambda: None)
    assert job.wait(60).state == "finished"
    yield job


def banner(at: AppTest) -> tuple[str, str]:
    """The top panel's alert, the page's first: (kind, text)."""
    alert = next(node for node in at.main if isinstance(node, AlertBase))
    return alert.type, alert.value


# --- 1. the banner of a job whose run was deleted ---------------------------------------------------


@pytest.mark.parametrize(
    ("state", "message", "ending"),
    [
        ("finished", "25 epochs", "The run finished (25 epochs)"),
        ("stopped", "stopped after epoch 3 of 25", "The run was stopped"),
        ("failed", "the disk is full. Every epoch that finished before is kept.", "The run failed"),
    ],
)
def test_an_ended_jobs_deleted_run_is_said_to_be_deleted_not_failed(
    tmp_path: Path, state: str, message: str, ending: str
) -> None:
    progress = Progress("e", tmp_path / "e", "train", state, message, epochs=25, epochs_done=3)

    kind, text = ended_banner(progress, None)

    assert (kind, text) == ("info", f"{ending} and has been deleted since: its files are gone.")


def test_a_new_run_stopped_before_its_first_epoch_kept_no_folder_and_is_not_called_deleted(
    tmp_path: Path,
) -> None:
    progress = Progress("e", tmp_path / "e", "train", "stopped", "stopped before the first epoch finished")

    assert ended_banner(progress, None) == ("warning", "Stopped before the first epoch finished.")


def test_after_its_finished_run_is_deleted_the_top_panel_says_so_for_every_visitor(
    finished_job: TrainingJob, runs_dir: Path
) -> None:
    finished_run(runs_dir, "a", 0.5)
    at = open_page()
    assert banner(at)[0] == "success"

    at.selectbox(key="runs_pick").set_value("e").run()
    at.button(key="delete_e").click().run()

    assert not at.exception and not (runs_dir / "e").exists()
    for visitor in (at, open_page()):  # this one, and a new visitor (a reload)
        assert "Run `e`: finished" in [header.value for header in visitor.subheader]
        assert banner(visitor) == (
            "info",
            "The run finished (2 epochs) and has been deleted since: its files are gone.",
        )
        assert not visitor.error


# --- 2. the picker and the Delete… popover after a delete ---------------------------------------------


def test_a_delete_picks_a_run_that_exists_and_says_what_went(runs_dir: Path) -> None:
    for name in ("a", "e", "m"):
        finished_run(runs_dir, name, 0.5)
    at = open_page()
    names = at.selectbox(key="runs_pick").options
    picked = names[1]

    at.selectbox(key="runs_pick").set_value(picked).run()
    at.button(key=f"delete_{picked}").click().run()

    assert not at.exception
    left = [name for name in names if name != picked]
    assert at.selectbox(key="runs_pick").options == left
    assert at.selectbox(key="runs_pick").value == names[2]  # the run now in its place
    assert [alert.value for alert in at.success] == [f"Run **{picked}** deleted."]
    assert [button.key for button in at.button if button.key.startswith("delete_")] == [f"delete_{names[2]}"]
    at.run()
    assert not at.success  # said once


def test_browser_after_a_delete_the_picker_shows_an_existing_run_and_the_popover_closes(
    tmp_path: Path, chromium: Browser
) -> None:
    """The picker must read the run whose details it shows, and no "Delete a" may wait under the
    cursor: the old page popped the pick (the box kept reading "e") and left the popover open."""
    if (reason := browser.missing_browser()) is not None:
        pytest.skip(reason)
    from playwright.sync_api import expect

    runs_dir = tmp_path / "runs"
    for file in finished_run(runs_dir, "a", 0.5).iterdir():
        os.utime(file, (time.time() - 3600,) * 2)
    write_run(runs_dir / "e", 1, "finished", "1 epoch")  # the newest run: the one picked
    with browser.streamlit_server(env={RUNS_DIR_ENV: str(runs_dir)}) as url:
        context = chromium.new_context(viewport={"width": 1400, "height": 1200})
        page = context.new_page()
        page.goto(f"{url}/training")
        picker = page.get_by_role("combobox", name="Run", exact=True)
        expect(picker).to_have_value("e", timeout=90_000)
        expect(page.get_by_text("Status: finished: 1 epoch", exact=True)).to_be_visible()
        browser.wait_until_idle(page)

        page.get_by_role("main").get_by_role("button", name="Delete…").click()
        page.get_by_role("button", name="Delete e").click()

        expect(page.get_by_text("Status: finished: 2 epochs", exact=True)).to_be_visible(timeout=30_000)
        browser.wait_until_idle(page)
        expect(picker).to_have_value("a")
        expect(page.get_by_role("button", name="Delete a")).to_have_count(0)
        expect(page.get_by_text("Delete run a and")).to_have_count(0)
        expect(page.get_by_text("Run e deleted.")).to_be_visible()
        context.close()
    assert not (runs_dir / "e").exists() and (runs_dir / "a").is_dir()
