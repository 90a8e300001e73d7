"""Trainings started from the app: one at a time per server, each in a child process, watched by a channel.

A Streamlit script run lasts a moment and is thrown away on every click, rerun or page switch, so
a training cannot live in it. :class:`JobManager` runs :func:`training.train.train` or
:func:`~training.train.resume` (the very code of the CLI) in a child process
(:mod:`training.job_process`), watched by a daemon thread of the server, and keeps the job in a
module-level registry (:func:`manager`): every session of the server, a reloaded browser tab
included, finds the same job there. A child, because what a training leaves behind in a process
stays there: TensorFlow's allocator keeps the memory of the largest batch its kernels ran, and
its traced step graphs hang on in process-wide registries. In the server that was hundreds of
megabytes a training, for good (``python -m benchmarks.memory_walk``); a child takes it all with
it when it exits. :func:`in_this_process` runs the same work in a thread of this process instead,
which is what the child does and what tests use to reach into a job.

The work reports through a :class:`ProgressChannel`, whose state is read by the page as an
immutable :class:`Progress` snapshot (epoch, batch, phase, timings) under a lock, so a reader
never sees half an update; a child's channel sends every change to the server's. Per-epoch
numbers are not copied into it: they are in the run's ``history.csv`` the moment an epoch ends,
which the page reads like any other run's.

Stop takes effect at once in every phase: what it keeps is decided the moment it is pressed, so
the job reports itself stopped, saying what was kept, and the work lets go after the step under
way, which TensorFlow can't interrupt (the first batch traces the graph: ~20 s on a CPU; a batch
on a busy machine took 40 s). While the data loads, the teacher labels it or the model is
prepared nothing new can be kept: no run folder is left behind (a resumed run is left as it
was). During an epoch's training batches the unfinished epoch writes nothing; every epoch before
it is on disk. Once its training batches are done the epoch is on disk before its validation
starts (training.train), so a Stop while validating keeps it, and its validation, cut after the
batch under way, is recorded as not measured (a resume measures it first: ``revalidating``).
Until the work has let go, a new start is refused with a message that says so.

Only one training runs at a time, because two would share (and halve) the CPU or GPU and make
both slow; a second start raises :class:`JobBusy` saying which run is in the way. Everything that
can be checked quickly (the config, the run name, the dataset's layout, whether a run can be
resumed) is checked before the work starts, so the page can answer Start with the problem at
once; what needs the images decoded fails inside the job and ends up in its ``message``.

Keras is imported only by the work (in the child, or by :func:`in_this_process`), so importing
this module stays cheap and the server never loads TensorFlow for a training.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.keras_env import import_keras
from app.runs import read_run
from training import outcomes
from training.config import TrainConfig
from training.data import DatasetError, check_dataset
from training.validation import ValidationError, check_validation
from training.votes import VotesError, find_votes

#: ``(done, total)``: how far the teacher has labelled the training images (see training.distill).
TeacherProgress = Callable[[int, int], None]
#: A training as the CLI runs it: ``(callbacks, stop, on_teacher) -> run folder``, raising the
#: training module's errors (see :func:`in_this_process`).
Run = Callable[[Sequence[Any], threading.Event, TeacherProgress], Path]
#: Phases of a job while its thread lives.
ACTIVE_STATES = (
    "starting",
    "loading",
    "distilling",
    "revalidating",
    "preparing",
    "training",
    "validating",
)
#: How a job ended.
FINAL_STATES = ("finished", "stopped", "failed")


class JobBusy(RuntimeError):
    """A training is already running in this server; the message names it."""


class JobError(ValueError):
    """A job cannot be started as asked (e.g. the run cannot be resumed); the message says why."""


@dataclass(frozen=True)
class Progress:
    """What a job is doing, as of one moment; times are ``time.monotonic()`` seconds.

    ``epoch`` is the epoch under way (1-based, counting a resumed run's earlier epochs too),
    ``epochs_done`` the last one finished, ``batch`` of ``batches`` the steps of the current one.
    ``epoch_seconds`` holds the epochs this job finished (not a resumed run's earlier ones).
    """

    run_name: str
    run_dir: Path
    action: str
    state: str = "starting"
    message: str = ""
    epochs: int = 0
    epoch: int = 0
    epochs_done: int = 0
    first_epoch: int = 0
    batch: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    epoch_started: float | None = None
    ended: float | None = None
    epoch_seconds: tuple[float, ...] = ()

    @property
    def active(self) -> bool:
        """Whether the job's thread is still at work."""
        return self.state in ACTIVE_STATES

    @property
    def epoch_fraction(self) -> float:
        """How much of the current epoch's training steps are done, 0..1."""
        return min(1.0, self.batch / self.batches) if self.batches else 0.0

    @property
    def run_fraction(self) -> float:
        """How much of the planned epochs is done, 0..1, never going back while the job runs.

        A bar of ``epoch_fraction`` falls from full to empty at every new epoch, and the browser
        animates that fall, so users saw it run backwards; this one only grows.
        """
        if not self.epochs:
            return 0.0
        under_way = self.epoch > self.epochs_done
        done = self.epoch - 1 + self.epoch_fraction if under_way else self.epochs_done
        return min(1.0, max(0.0, done / self.epochs))

    def elapsed_s(self, now: float | None = None) -> float:
        """Seconds since the job started (to its end once it has ended)."""
        end = self.ended if self.ended is not None else (time.monotonic() if now is None else now)
        return max(0.0, end - self.started)

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds until the last planned epoch ends, or None before there is anything to go by.

        From the mean time of the epochs this job finished, or during its first epoch from the
        pace of its batches (which leaves out validation, so it is a little optimistic). Early
        stopping can end a run sooner.
        """
        if not self.active:
            return None
        now = time.monotonic() if now is None else now
        in_epoch = now - self.epoch_started if self.epoch_started is not None else 0.0
        if self.epoch_seconds:
            per_epoch = sum(self.epoch_seconds) / len(self.epoch_seconds)
        elif self.batch and self.batches and self.epoch_started is not None:
            per_epoch = in_epoch / self.epoch_fraction
        else:
            return None
        remaining_epochs = self.epochs - self.epochs_done
        if self.epoch > self.epochs_done:  # the current epoch is partly done
            return max(0.0, remaining_epochs * per_epoch - in_epoch)
        return remaining_epochs * per_epoch


class ProgressChannel:
    """The thread-safe mailbox between a job's work (writer) and the pages (readers)."""

    def __init__(self, run_name: str, run_dir: Path, action: str, epochs: int) -> None:
        self._lock = threading.Lock()
        self._progress = Progress(run_name, run_dir, action, epochs=epochs)

    def snapshot(self) -> Progress:
        """The latest state; immutable, so it can be read at leisure."""
        with self._lock:
            return self._progress

    def update(self, **changes: Any) -> None:
        """Replace some fields at once; once ended (a Stop ends a job at once), no phase replaces
        that, nor the message that says what the Stop kept."""
        with self._lock:
            settled = self._progress.state in FINAL_STATES
            if settled and changes.get("state") in ACTIVE_STATES:
                del changes["state"]
                changes.pop("message", None)
            self._progress = dataclasses.replace(self._progress, **changes)

    def end(self, state: str, message: str) -> None:
        """The work's own account is the truth, even after a quick stop already showed one; the
        end time stays the moment the page first showed the job ended."""
        with self._lock:
            progress = self._progress
            ended = progress.ended if progress.ended is not None else time.monotonic()
            self._progress = dataclasses.replace(progress, state=state, message=message, ended=ended)

    def finish_epoch(self, epoch: int) -> None:
        """Record that epoch ``epoch`` (1-based) ended now."""
        with self._lock:
            progress = self._progress
            started = progress.epoch_started if progress.epoch_started is not None else time.monotonic()
            self._progress = dataclasses.replace(
                progress,
                epochs_done=epoch,
                epoch_seconds=(*progress.epoch_seconds, time.monotonic() - started),
            )

    def teacher_progress(self, done: int, total: int) -> None:
        """How far the teacher has labelled the training images (a distillation's first step)."""
        self.update(state="distilling", message=f"{done:,} of {total:,} images")

    def keras_callback(self) -> Any:
        """A Keras callback feeding this channel (Keras is imported here, not with this module).

        Until the job's first batch ends the phase is ``preparing``: that batch traces the
        training graph, ~20 s on a CPU with the bar at "batch 0", which looked frozen. A
        validation before fit begins is a resume measuring the one a Stop cut (``revalidating``).
        """
        import keras

        channel = self

        class _Report(keras.callbacks.Callback):
            prepared = False
            fitting = False

            def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
                self.fitting = True
                channel.update(
                    state="preparing",
                    epochs=int(self.params.get("epochs") or 0),
                    batches=int(self.params.get("steps") or 0),
                )

            def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                changes: dict[str, Any] = {}
                if channel.snapshot().first_epoch == 0:
                    changes["first_epoch"] = epoch + 1
                channel.update(
                    state="training" if self.prepared else "preparing",
                    epoch=epoch + 1,
                    epochs_done=epoch,
                    batch=0,
                    epoch_started=time.monotonic(),
                    **changes,
                )

            def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
                self.prepared = True
                channel.update(state="training", batch=batch + 1)

            def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
                channel.update(state="validating" if self.fitting else "revalidating")

            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                channel.finish_epoch(epoch + 1)

        return _Report()


#: A job's work: does the training, reports on the channel, ends it there (``end``) whatever
#: happens, and lets go soon after the event is set (see the module docstring).
Work = Callable[[ProgressChannel, threading.Event], None]


def in_this_process(run: Run) -> Work:
    """Work that calls ``run`` in the job's own thread: what the child process does
    (:mod:`training.job_process`), and what tests use to reach into a training."""
    return functools.partial(_run_here, run)


def _run_here(run: Run, channel: ProgressChannel, stop: threading.Event) -> None:
    from training.distill import TeacherError
    from training.warm_start import WarmStartError

    import_keras()  # Keras' global state kept from Streamlit's clean-up (app.keras_env)
    channel.update(state="loading")
    try:
        run_dir = run([channel.keras_callback()], stop, channel.teacher_progress)
    except outcomes.TrainingStopped as err:
        channel.end("stopped", str(err) or "stopped")
    except DatasetError as err:  # found only by decoding every image: after the quick check
        channel.end("failed", f"the dataset can't be used, nothing was trained: {err}")
    except (
        FileExistsError,
        outcomes.ResumeError,
        TeacherError,
        VotesError,
        ValidationError,
        WarmStartError,
    ) as err:
        channel.end("failed", str(err))
    except OSError as err:  # a full disk above all; last.keras is written atomically, so it holds
        channel.end("failed", f"{outcomes.disk_message(err)}. Every epoch that finished before is kept.")
    except Exception as err:  # a job must always end with a state the page can show
        traceback.print_exc()
        channel.end("failed", f"{type(err).__name__}: {err}")
    else:
        found = read_run(run_dir)
        state = found.state if found is not None and found.state in FINAL_STATES else "failed"
        channel.end(state, found.message if found is not None else "the run folder is unreadable")


def in_a_child_process(task: dict[str, Any]) -> Work:
    """Work that runs ``task`` (see :mod:`training.job_process`) in a child process of its own."""
    from training.job_process import run_child

    return functools.partial(run_child, task)


class TrainingJob:
    """One training or resume, watched by a thread of its own; ``progress()`` says how it goes."""

    _ids = itertools.count(1)

    def __init__(self, run_name: str, run_dir: Path, action: str, epochs: int, work: Work) -> None:
        self.id = next(self._ids)
        self.stop_event = threading.Event()
        self.channel = ProgressChannel(run_name, run_dir, action, epochs)
        self._work = work
        self.thread = threading.Thread(target=self._watch, name=f"training-{run_name}", daemon=True)

    def progress(self) -> Progress:
        """Where the job stands now (see :class:`Progress`)."""
        return self.channel.snapshot()

    @property
    def alive(self) -> bool:
        """Whether the work still runs: a Stop or a failure takes it a moment to end."""
        return self.thread.is_alive()

    def stop(self) -> None:
        """End the job now, keeping every epoch whose training is done, and say what it kept.

        What is kept is on disk already, so the job reads as stopped at once; the work lets go
        after the step under way (see the module docstring), and its own account, when it ends,
        is the final word.
        """
        if not self.alive:
            return
        self.stop_event.set()
        progress = self.progress()
        if not progress.active:
            return
        if progress.state == "validating":  # the epoch is kept, its validation cut
            message = outcomes.stopped_message(progress.epoch, progress.epochs, validation_cut=True)
        elif progress.state == "training" and progress.first_epoch <= progress.epochs_done:
            message = outcomes.stopped_message(progress.epochs_done, progress.epochs, validation_cut=False)
        else:  # nothing this job trained has been kept yet
            message = self._nothing_kept()
        self.channel.update(state="stopped", message=message, ended=time.monotonic())

    def _nothing_kept(self) -> str:
        if self.progress().action == "train":
            return outcomes.NOTHING_KEPT
        run = read_run(self.channel.snapshot().run_dir)
        rows = run.history if run is not None else []
        return outcomes.nothing_new(rows, run.epochs_planned if run is not None else 0)

    def wait(self, timeout: float | None = None) -> Progress:
        """Block until the job ends (or ``timeout`` passes); the progress then."""
        self.thread.join(timeout)
        return self.progress()

    def start(self) -> None:
        """Start the work."""
        self.thread.start()

    def _watch(self) -> None:
        try:
            self._work(self.channel, self.stop_event)
        except Exception as err:  # a job must always end with a state the page can show
            traceback.print_exc()
            self.channel.end("failed", f"{type(err).__name__}: {err}")


class JobManager:
    """Starts jobs, at most one at a time, and remembers the latest one (running or ended)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: TrainingJob | None = None

    def current(self) -> TrainingJob | None:
        """The job started last, whether it still runs or not; None before the first."""
        return self._job

    def stop(self, job_id: int) -> bool:
        """Stop job ``job_id`` if it is still the current one and runs; whether it was asked to.

        By id, not by a job object a page kept: a page drawn before a new job started must not
        stop that new one, and one drawn for this job must reach it whatever ran in between.
        """
        job = self._job
        if job is None or job.id != job_id or not job.alive:
            return False
        job.stop()
        return True

    def running(self) -> TrainingJob | None:
        """The job whose thread is at work, if any."""
        job = self._job
        return job if job is not None and job.alive else None

    def start(self, config: TrainConfig) -> TrainingJob:
        """Start a new run; JobBusy while another runs, FileExistsError or DatasetError at once."""

        def check() -> None:
            if config.run_dir.exists():
                name, where = config.run_name, config.runs_dir
                raise FileExistsError(f"a run named {name!r} already exists in {where}; pick another name")
            check_dataset(config.data_dir, ("train", config.validation_split))
            check_validation(config.data_dir, config.validation_split)
            if config.labels != "fer2013":
                find_votes(config.votes, config.data_dir)

        work = in_a_child_process({"action": "train", "config": config.to_dict()})
        return self._launch(TrainingJob(config.run_name, config.run_dir, "train", config.epochs, work), check)

    def resume(self, run_dir: Path, epochs: int | None = None) -> TrainingJob:
        """Continue a run from its last checkpoint, optionally to ``epochs`` in all; JobError if it can't."""
        found = read_run(run_dir)
        planned = epochs if epochs is not None else (found.epochs_planned if found else 0)

        def check() -> None:
            if found is None:
                raise JobError(f"{run_dir} is not a training run (no readable config.json)")
            if found.state == "running":
                pid = found.status.get("pid")
                raise JobError(f"run {found.name!r} is still being trained (by process {pid})")
            if not (run_dir / "last.keras").is_file():
                raise JobError(f"run {found.name!r} has no checkpoint yet: no epoch finished")
            try:
                outcomes.check_checkpoint(run_dir / "last.keras")
            except outcomes.ResumeError as err:
                raise JobError(str(err)) from err
            if planned <= found.epochs_run:
                raise JobError(
                    f"run {found.name!r} has run {found.epochs_run} epochs already; "
                    f"ask for more than {found.epochs_run}"
                )
            data_dir = found.config.get("data_dir")
            if data_dir:
                check_dataset(data_dir, ("train", found.config.get("validation_split", "public_test")))

        work = in_a_child_process({"action": "resume", "run_dir": str(run_dir), "epochs": epochs})
        return self._launch(TrainingJob(run_dir.name, run_dir, "resume", planned, work), check)

    def _launch(self, job: TrainingJob, check: Callable[[], None]) -> TrainingJob:
        with self._lock:
            busy = self.running()
            if busy is not None:
                progress = busy.progress()
                if not progress.active:
                    raise JobBusy(
                        f"the run you stopped ({progress.run_name!r}) is still letting go of the CPU: "
                        "TensorFlow finishes a step it can't interrupt (a batch, or preparing the model: "
                        "about 20 s on an idle CPU, longer on a busy one). Try again in a moment."
                    )
                where = f"epoch {progress.epoch} of {progress.epochs}" if progress.epoch else progress.state
                raise JobBusy(
                    f"a training is already running on this server: run {progress.run_name!r} "
                    f"({where}). Stop it or wait for it to end; only one training runs at a time."
                )
            check()
            self._job = job
            job.start()
            return job


_MANAGER = JobManager()


def manager() -> JobManager:
    """The server's job manager, shared by every session and page (module state outlives reruns)."""
    return _MANAGER
