"""The Training page after a run is deleted: what the top panel says, what is picked, what Delete aims at.

An audit deleted a finished run: the top panel then read "Run `e`: finished" over "The training
failed: 25 epochs" for every visitor, and the picker still read the deleted name over another
run's details, with the Delete… popover still open on "Delete a", one click from deleting a run
nobody picked. Runs here are written by hand (test_training_page_stop.write_run); the job is a
stand-in that only finishes its run, so nothing trains.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from streamlit.testing.v1.element_tree import AlertBase
from test_training_page_stop import EPOCHS, finished_run, open_page, write_run

from app.runs import RUNS_DIR_ENV
from training.job_view import ended_banner
from training.jobs import Progress, TrainingJob, in_this_process, manager

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "runs"
    monkeypatch.setenv(RUNS_DIR_ENV, str(path))
    monkeypatch.setenv("FER2013_DIR", str(tmp_path / "fer2013"))
    return path


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
