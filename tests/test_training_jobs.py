"""training.jobs: real trainings in a child process each, one at a time, watched through the progress channel.

Each test gets its own JobManager, so they neither see nor block the server-wide one the Training
page uses. The runs are real and tiny (40 FER2013 images per class, batch 16: 18 steps an epoch).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import keras
import pytest
from test_train_resume import STEPS_PER_EPOCH as STEPS
from test_train_resume import tiny_config

from app.runs import read_run
from training.data import DatasetError
from training.jobs import (
    JobBusy,
    JobError,
    JobManager,
    Progress,
    ProgressChannel,
    TrainingJob,
    in_this_process,
)
from training.outcomes import NOTHING_KEPT
from training.validation import ValidationError

JOB_TIMEOUT_S = 240


def watch(job: TrainingJob) -> list[Progress]:
    """Every distinct progress snapshot until the job ends, as the page's polling would see them.

    Like Streamlit after each script run, it calls ``keras.backend.clear_session()`` after each
    look: without app.keras_env's guard that wipes the worker's Keras state mid-build.
    """
    seen: list[Progress] = []
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job.alive and time.monotonic() < deadline:
        progress = job.progress()
        if not seen or progress != seen[-1]:
            seen.append(progress)
        keras.backend.clear_session()
        time.sleep(0.01)
    assert not job.alive, f"job still running after {JOB_TIMEOUT_S} s"
    seen.append(job.progress())
    return seen


def test_job_trains_in_a_child_process_and_reports_every_batch(fer2013_dir: Path, tmp_path: Path) -> None:
    """In a child, because what a training leaves in a process stays there (issue 23, item 20)."""
    jobs = JobManager()
    job = jobs.start(tiny_config(fer2013_dir, tmp_path, "watched", epochs=2))
    assert job.thread.daemon and job.thread is not threading.current_thread()

    seen = watch(job)

    trainer = read_run(tmp_path / "watched").status["pid"]
    assert trainer != os.getpid(), "the training ran in the server's own process"
    with pytest.raises(ProcessLookupError):
        os.kill(trainer, 0)  # and that process is gone with what it held

    final = seen[-1]
    assert (final.state, final.message) == ("finished", "2 epochs")
    assert final.epochs_done == final.epochs == 2 and final.batches == STEPS
    assert len(final.epoch_seconds) == 2 and final.ended is not None
    assert final.eta_s() is None and final.elapsed_s() >= sum(final.epoch_seconds)
    states = [p.state for p in seen]
    assert states[0] in ("starting", "loading") and "training" in states and "validating" in states
    training = [p for p in seen if p.state == "training" and p.batch]
    assert {p.epoch for p in training} == {1, 2}
    assert max(p.batch for p in training) <= STEPS
    assert any(p.eta_s() is not None and p.eta_s() > 0 for p in training)  # an ETA while it ran
    assert all(0 <= p.epoch_fraction <= 1 for p in seen)
    run = read_run(tmp_path / "watched")
    assert run.state == "finished" and [row["epoch"] for row in run.history] == [1, 2]
    assert jobs.current() is job and jobs.running() is None


def test_second_start_is_refused_then_stop_keeps_only_finished_epochs(
    fer2013_dir: Path, tmp_path: Path
) -> None:
    jobs = JobManager()
    job = jobs.start(tiny_config(fer2013_dir, tmp_path, "long", epochs=50))

    with pytest.raises(
        JobBusy, match=r"already running on this server: run 'long'.*one training runs at a time"
    ):
        jobs.start(tiny_config(fer2013_dir, tmp_path, "second", epochs=1))
    with pytest.raises(JobBusy):
        jobs.resume(tmp_path / "long", 60)
    assert not (tmp_path / "second").exists()

    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (job.progress().epoch, job.progress().batch) < (2, 3) and time.monotonic() < deadline:
        time.sleep(0.02)
    job.stop()
    now = job.progress()  # at once: the batch under way can't be cut, but nothing waits for it
    assert (now.state, now.active) == ("stopped", False)
    final = job.wait(JOB_TIMEOUT_S)

    assert final.state == "stopped"
    run = read_run(tmp_path / "long")
    done = len(run.history)
    assert 1 <= done < 50
    assert now.message == final.message == run.message == f"stopped after epoch {done} of 50"
    assert [row["epoch"] for row in run.history] == list(range(1, done + 1))
    assert run.resumable
    # Now another may start; a finished-epoch count that isn't more is refused before starting.
    with pytest.raises(JobError, match=f"has run {done} epochs already"):
        jobs.resume(tmp_path / "long", done)
    assert jobs.running() is None


def test_stop_while_the_model_is_prepared_takes_effect_at_once_and_keeps_no_run(
    fer2013_dir: Path, tmp_path: Path
) -> None:
    """The first batch traces the graph (~20 s on a CPU) and can't be cut short: Stop must not
    wait for it, and a run with no finished epoch must not be left behind."""
    jobs = JobManager()
    job = jobs.start(tiny_config(fer2013_dir, tmp_path, "early", epochs=3))
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job.progress().state != "preparing" and job.alive and time.monotonic() < deadline:
        time.sleep(0.005)
    assert job.progress().state == "preparing", job.progress()

    job.stop()

    now = job.progress()
    assert (now.state, now.active) == ("stopped", False)
    assert "nothing was trained, so no run was kept" in now.message
    final = job.wait(JOB_TIMEOUT_S)
    assert (final.state, final.message) == (now.state, now.message)
    assert not (tmp_path / "early").exists()


def test_stop_while_the_model_is_prepared_interrupts_the_trace_rather_than_waiting_for_it(
    fer2013_dir: Path, tmp_path: Path
) -> None:
    """The resnet's first batch traces for seconds (3.5 s on a quiet CPU, 7-11 s on a busy one),
    and until the training process has let go a new Start is refused: Stop cuts the trace short."""
    jobs = JobManager()
    config = dataclasses.replace(tiny_config(fer2013_dir, tmp_path, "cut-trace", epochs=3), arch="resnet")
    job = jobs.start(config)
    wait_for(job, lambda progress: progress.state == "preparing")

    job.stop()
    pressed = time.monotonic()
    final = job.wait(JOB_TIMEOUT_S)

    let_go = time.monotonic() - pressed
    assert let_go < 2.0, f"the training process took {let_go:.1f} s to let go"
    assert (final.state, final.message) == ("stopped", NOTHING_KEPT)
    assert not (tmp_path / "cut-trace").exists()
    assert jobs.running() is None


class StopWhileValidating(keras.callbacks.Callback):
    """Presses Stop through the job, as the page does, once validation batch ``at`` of epoch 1 has
    ended; then counts the validation batches that still end."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.job: TrainingJob | None = None
        self.epoch = 0
        self.pressed: Progress | None = None  # the job's progress right after the press
        self.batches_after = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, object] | None = None) -> None:
        self.epoch = epoch + 1

    def on_test_batch_end(self, batch: int, logs: dict[str, object] | None = None) -> None:
        if self.pressed is not None:
            self.batches_after += 1
        elif (self.epoch, batch + 1) == (1, self.at):
            self.job.stop()
            self.pressed = self.job.progress()


def test_stop_while_validating_ends_it_within_a_batch_keeps_the_epoch_and_a_resume_measures_it(
    fer2013_dir: Path, tmp_path: Path
) -> None:
    """PublicTest takes seconds to validate on a CPU: Stop must not wait for it, nor drop the epoch's
    training, nor let a score measured on part of the set pass for the epoch's (or pick it as best)."""
    from training.train import train

    config = tiny_config(fer2013_dir, tmp_path, "cut", epochs=3)
    presser = StopWhileValidating(at=2)  # of 18 validation batches (280 images, batch 16)

    def run(callbacks: object, stop: threading.Event, on_teacher: object) -> Path:
        return train(config, [*callbacks, presser], stop=stop, verbose=0, on_teacher=on_teacher)

    jobs = JobManager()
    presser.job = job = TrainingJob("cut", config.run_dir, "train", 3, in_this_process(run))
    jobs._launch(job, lambda: None)
    final = job.wait(JOB_TIMEOUT_S)

    said = "stopped after epoch 1 of 3; the Stop cut epoch 1's validation short, so its score is not measured"
    assert (presser.pressed.state, presser.pressed.active) == ("stopped", False)  # at once
    assert presser.pressed.message.startswith(said)
    assert presser.batches_after <= 1
    assert final.state == "stopped" and final.message.startswith(said)
    run_dir = tmp_path / "cut"
    stopped = read_run(run_dir)
    assert stopped.message.startswith(said) and stopped.resumable
    [row] = stopped.history
    assert row["epoch"] == 1 and 0 < row["loss"] < 10 and 0 <= row["accuracy"] <= 1  # its training
    assert math.isnan(row["val_accuracy"]) and math.isnan(row["val_loss"])  # not measured
    assert stopped.best_val_accuracy is None and not (run_dir / "best.keras").exists()
    assert (run_dir / "last.keras").is_file()

    resumed = jobs.resume(run_dir, 2)
    states = [progress.state for progress in watch(resumed)]

    assert states[-1] == "finished" and "revalidating" in states
    assert states.index("revalidating") < states.index("training")
    run = read_run(run_dir)
    assert [row["epoch"] for row in run.history] == [1, 2]
    assert run.history[0]["loss"] == row["loss"]  # epoch 1 is the one trained before the Stop
    accuracies = [row["val_accuracy"] for row in run.history]
    assert all(0 < accuracy <= 1 for accuracy in accuracies)  # epoch 1 measured by the resume
    card = run.card["training"]
    assert card["best_epoch"] == accuracies.index(max(accuracies)) + 1
    assert card["best_val_accuracy"] == pytest.approx(max(accuracies))


def test_a_test_folder_without_publictest_is_refused_unless_the_whole_folder_is_chosen(
    fer2013_mini: Path, tmp_path: Path
) -> None:
    data = Path(shutil.copytree(fer2013_mini, tmp_path / "data"))
    for image in data.glob("test/*/PublicTest_*"):
        image.unlink()
    jobs = JobManager()

    with pytest.raises(
        ValidationError, match=r"no PublicTest_ images to validate on \(it has 14 PrivateTest_"
    ):
        jobs.start(tiny_config(data, tmp_path / "runs", "private", epochs=1))
    assert jobs.current() is None

    chosen = dataclasses.replace(
        tiny_config(data, tmp_path / "runs", "private", epochs=1), validation_split="test"
    )
    final = jobs.start(chosen).wait(JOB_TIMEOUT_S)
    assert final.state == "finished", final.message
    card = read_run(tmp_path / "runs" / "private").card["training"]
    assert card["dataset"]["validation"]["split"] == "test"


def test_bad_dataset_is_refused_before_a_thread_starts(fer2013_mini: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    for split in ("train", "test"):
        (broken / split / "happy").mkdir(parents=True)
    jobs = JobManager()

    with pytest.raises(DatasetError, match="missing class folder"):
        jobs.start(tiny_config(broken, tmp_path / "runs", "x", epochs=1))
    with pytest.raises(DatasetError, match="dataset path does not exist"):
        jobs.start(tiny_config(tmp_path / "nowhere", tmp_path / "runs", "x", epochs=1))

    assert jobs.current() is None
    assert not (tmp_path / "runs").exists()


def test_existing_run_name_and_unresumable_runs_are_refused_at_once(
    fer2013_mini: Path, tmp_path: Path
) -> None:
    (tmp_path / "taken").mkdir()
    jobs = JobManager()

    with pytest.raises(FileExistsError, match="a run named 'taken' already exists"):
        jobs.start(tiny_config(fer2013_mini, tmp_path, "taken", epochs=1))
    with pytest.raises(JobError, match="is not a training run"):
        jobs.resume(tmp_path / "taken")
    assert jobs.current() is None


def test_job_that_fails_while_loading_says_why(fer2013_mini: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(fer2013_mini, data)
    for image in (data / "train" / "sad").iterdir():  # passes the quick check, fails decoding
        image.write_bytes(b"not a jpeg")
    jobs = JobManager()

    final = jobs.start(tiny_config(data, tmp_path / "runs", "doomed", epochs=1)).wait(JOB_TIMEOUT_S)

    assert final.state == "failed"
    assert "no readable images of class(es): sad" in final.message
    assert not (tmp_path / "runs" / "doomed").exists()


# --- the channel and the ETA, without training -------------------------------------------------------


def ten_epochs(**fields: object) -> Progress:
    """A 10-epoch run's progress, started at t = 1000 s, with ``fields`` set."""
    return Progress("r", Path("r"), "train", epochs=10, started=1000.0, **fields)


def test_eta_comes_from_finished_epochs_or_the_pace_of_the_first() -> None:
    first = ten_epochs(state="training", epoch=1, batch=25, batches=100, epoch_started=1005.0)
    assert first.epoch_fraction == 0.25
    assert first.eta_s(now=1015.0) == pytest.approx(10 * 40 - 10)  # 10 s for a quarter epoch
    later = ten_epochs(
        state="training",
        epoch=4,
        epochs_done=3,
        batch=50,
        batches=100,
        epoch_started=1100.0,
        epoch_seconds=(30.0, 30.0, 30.0),
    )
    assert later.eta_s(now=1110.0) == pytest.approx(7 * 30 - 10)
    assert later.elapsed_s(now=1110.0) == 110
    assert ten_epochs(state="loading").eta_s(1001.0) is None
    assert ten_epochs(state="finished").eta_s() is None
    assert ten_epochs(state="stopped", epoch=2, epoch_seconds=(30.0,)).eta_s() is None


def test_a_stop_is_not_overwritten_by_a_late_batch_report() -> None:
    channel = ProgressChannel("r", Path("r"), "train", epochs=3)
    channel.update(state="stopped")

    channel.update(state="validating", batch=7)

    assert (channel.snapshot().state, channel.snapshot().batch) == ("stopped", 7)
    channel.update(state="failed")  # the worker's own account still is the last word
    assert channel.snapshot().state == "failed"


def test_a_full_disk_ends_the_job_with_a_plain_message() -> None:
    def run(callbacks: object, stop: threading.Event, on_teacher: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/r/.last.123.tmp.keras")

    job = TrainingJob("r", Path("r"), "train", 3, in_this_process(run))
    job.start()

    final = job.wait(JOB_TIMEOUT_S)

    assert final.state == "failed"
    assert final.message.startswith("the disk is full (/runs/r/.last.123.tmp.keras)")
    assert "Every epoch that finished before is kept" in final.message


def test_run_fraction_only_grows_through_epochs_and_validation() -> None:
    """The page's bar: it used to show the batch share of the epoch and fell to 0 at each epoch."""
    steps = [
        ten_epochs(state="loading"),
        ten_epochs(state="training", epoch=1, batch=0, batches=4),
        ten_epochs(state="training", epoch=1, batch=4, batches=4),
        ten_epochs(state="validating", epoch=1, batch=4, batches=4),
        ten_epochs(state="validating", epoch=1, epochs_done=1, batch=4, batches=4),
        ten_epochs(state="training", epoch=2, epochs_done=1, batch=0, batches=4),
        ten_epochs(state="training", epoch=2, epochs_done=1, batch=1, batches=4),
    ]

    fractions = [step.run_fraction for step in steps]

    assert fractions == sorted(fractions)
    assert fractions[-1] == pytest.approx(1.25 / 10)


def test_the_teachers_pass_shows_as_a_step_of_its_own_and_a_stop_stays_a_stop() -> None:
    channel = ProgressChannel("student", Path("student"), "train", 3)

    channel.teacher_progress(256, 1000)
    progress = channel.snapshot()
    assert (progress.state, progress.message, progress.active) == ("distilling", "256 of 1,000 images", True)

    channel.update(state="stopped")
    channel.teacher_progress(512, 1000)
    assert channel.snapshot().state == "stopped"


def test_delete_refuses_a_run_in_training_and_anything_that_is_not_a_run(tmp_path: Path) -> None:
    from app.emotions import DEFAULT_MODEL_PATH
    from app.runs import RunBusy, delete_run, hold_run, write_status

    run_dir = tmp_path / "busy"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    write_status(run_dir, "running")
    (run_dir / "notes.txt").write_text("mine")  # not a run file: it stays, and so does the folder

    with hold_run(run_dir):
        assert read_run(run_dir).state == "running"
        with pytest.raises(RunBusy):
            delete_run(run_dir, tmp_path)
    assert read_run(run_dir).state == "interrupted"  # the lock went with its holder
    with pytest.raises(ValueError, match="is not a run in"):
        delete_run(DEFAULT_MODEL_PATH.parent, DEFAULT_MODEL_PATH.parent.parent)

    assert delete_run(run_dir, tmp_path) is False
    assert [path.name for path in run_dir.iterdir()] == ["notes.txt"]


def wait_for(job: TrainingJob, ready: Callable[[Progress], bool]) -> Progress:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not ready(progress := job.progress()) and job.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ready(progress), progress
    return progress


def test_a_training_process_that_dies_ends_the_job_as_failed_and_keeps_its_finished_epochs(
    fer2013_dir: Path, tmp_path: Path
) -> None:
    """Killed (out of memory, by hand): the page must not show a training that runs for ever."""
    jobs = JobManager()
    job = jobs.start(tiny_config(fer2013_dir, tmp_path, "killed", epochs=3))
    wait_for(job, lambda progress: progress.epochs_done >= 1)

    os.kill(read_run(tmp_path / "killed").status["pid"], signal.SIGKILL)

    final = job.wait(JOB_TIMEOUT_S)
    assert not job.alive and final.state == "failed"
    assert final.message.startswith("the training process ended unexpectedly (exit status -9)")
    run = read_run(tmp_path / "killed")
    assert run.state == "interrupted" and run.history[0]["epoch"] == 1 and run.resumable
    assert jobs.running() is None  # another training may start


def test_a_training_stops_when_its_server_is_gone(fer2013_dir: Path, tmp_path: Path) -> None:
    """The child's input ends with the server, however the server ends: it stops like a Stop."""
    config = tiny_config(fer2013_dir, tmp_path, "orphan", epochs=3)
    job = {"run_name": "orphan", "run_dir": str(config.run_dir), "action": "train", "epochs": 3}
    from training.job_process import spawn

    child = spawn()
    child.stdin.write(json.dumps({"action": "train", "config": config.to_dict(), "job": job}) + "\n")
    child.stdin.flush()
    for line in child.stdout:
        report = json.loads(line)
        if report.get("progress", {}).get("epochs_done") == 1:
            break

    child.stdin.close()

    *_, last = [json.loads(line) for line in child.stdout]
    assert child.wait(JOB_TIMEOUT_S) == 0
    assert last["end"][0] == "stopped" and last["end"][1].startswith("stopped after epoch 1 of 3")
    assert [row["epoch"] for row in read_run(config.run_dir).history] == [1]


def test_a_line_from_the_training_process_that_is_not_a_report_goes_to_the_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from training.job_process import _relay

    channel = ProgressChannel("r", Path("r"), "train", 3)

    assert not _relay("Using TensorFlow backend\n", channel)
    assert "Using TensorFlow backend" in capsys.readouterr().err
    assert channel.snapshot().state == "starting"
    assert _relay(json.dumps({"end": ["finished", "3 epochs"]}) + "\n", channel)
    assert (channel.snapshot().state, channel.snapshot().message) == ("finished", "3 epochs")
