"""A training job in a child process: the server's side (:func:`run_child`) and the child's (``main``).

Why a child, see :mod:`training.jobs`. The two talk over the child's standard streams, a line of
JSON at a time:

- to the child: the task first (``{"action": "train", "config": {...}}`` or ``{"action":
  "resume", "run_dir": ..., "epochs": ...}``, with the job's name, folder and planned epochs
  under ``"job"``), later ``stop`` when the user presses Stop. The end
  of its input (the server gone, however it went) stops the training too, so a training never
  outlives its server.
- from the child: ``{"progress": {...}}`` after every change of its :class:`~training.jobs.Progress`
  and ``{"end": [state, message]}`` once, last. Times are ``time.monotonic()`` seconds, a
  clock that all processes of a machine share.

The child's standard error is the server's, so its tracebacks and TensorFlow's warnings reach the
server log; anything else it prints is sent there too, never into the channel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from app.emotions import REPO_ROOT
from training.jobs import ProgressChannel, Run, TeacherProgress, in_this_process

#: What a child sends of its progress: everything but the job's identity and its start and end,
#: which the server's channel keeps (a Stop is shown as ended the moment it is pressed).
SENT = ("state", "message", "epochs", "epoch", "epochs_done", "first_epoch", "batch", "batches",
        "epoch_started", "epoch_seconds")  # fmt: skip
#: How often the server looks for a Stop while the child runs, in seconds.
STOP_POLL_S = 0.1
#: Phases a Stop interrupts at once, rather than after the step under way: the first batch
#: traces the training graph, seconds of Python (3.5 s for the resnet on a quiet CPU, 7-11 s on
#: a busy one) during which nothing is written. The KeyboardInterrupt it raises ends the fit as
#: a Stop does (training.train); the run's files are written only at an epoch's end, far from it.
INTERRUPTIBLE = ("preparing",)


def spawn() -> subprocess.Popen[str]:
    """A training process, waiting for its task on its standard input."""
    return subprocess.Popen(
        [sys.executable, "-m", "training.job_process"],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def run_child(task: dict[str, Any], channel: ProgressChannel, stop: threading.Event) -> None:
    """Run ``task`` in a child process, relaying its reports to ``channel`` and a Stop to it, until
    it exits; a child that ends without its account (killed, out of memory) ends the job as failed."""
    child = spawn()
    assert child.stdin is not None and child.stdout is not None
    job = channel.snapshot()
    header = {"run_name": job.run_name, "run_dir": str(job.run_dir), "action": job.action}
    child.stdin.write(json.dumps({**task, "job": {**header, "epochs": job.epochs}}) + "\n")
    child.stdin.flush()
    stopper = threading.Thread(target=_pass_stop, args=(child, stop), name="training-stop", daemon=True)
    stopper.start()
    ended = False
    try:
        for line in child.stdout:
            ended = _relay(line, channel) or ended
        status = child.wait()
    finally:
        if child.poll() is None:  # this thread failed: the training must not go on unwatched
            child.kill()
            status = child.wait()
        stopper.join()
        child.stdin.close()
    if not ended:
        channel.end(
            "failed",
            f"the training process ended unexpectedly (exit status {status}); "
            "every epoch that finished before is kept",
        )


def _relay(line: str, channel: ProgressChannel) -> bool:
    """Pass one line of the child's reports on to ``channel``; whether it was the job's end."""
    try:
        report = json.loads(line)
    except ValueError:  # not a report: a library wrote to the channel before main() moved it
        sys.stderr.write(line)
        return False
    if "progress" in report:
        fields = report["progress"]
        channel.update(**{**fields, "epoch_seconds": tuple(fields["epoch_seconds"])})
    elif "end" in report:
        channel.end(*report["end"])
        return True
    return False


def _pass_stop(child: subprocess.Popen[str], stop: threading.Event) -> None:
    while child.poll() is None:
        if stop.wait(STOP_POLL_S):
            try:
                assert child.stdin is not None
                child.stdin.write("stop\n")
                child.stdin.flush()
            except OSError:  # it has just exited
                pass
            return


class ReportingChannel(ProgressChannel):
    """The child's channel: every change is also sent to the server, a JSON line at a time."""

    def __init__(self, out: IO[str], run_name: str, run_dir: Path, action: str, epochs: int) -> None:
        super().__init__(run_name, run_dir, action, epochs)
        self._out = out
        self._sending = threading.Lock()

    def _send(self, report: dict[str, Any]) -> None:
        with self._sending:
            self._out.write(json.dumps(report) + "\n")
            self._out.flush()

    def _send_progress(self) -> None:
        progress = self.snapshot()
        self._send({"progress": {name: getattr(progress, name) for name in SENT}})

    def update(self, **changes: Any) -> None:
        super().update(**changes)
        self._send_progress()

    def finish_epoch(self, epoch: int) -> None:
        super().finish_epoch(epoch)
        self._send_progress()

    def end(self, state: str, message: str) -> None:
        super().end(state, message)
        self._send({"end": [state, message]})


def _listen(stop: threading.Event, channel: ProgressChannel) -> None:
    """Set ``stop`` when the server says so or is gone; while the model is prepared, also
    interrupt it (see :data:`INTERRUPTIBLE`)."""
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop.set()
    if channel.snapshot().state in INTERRUPTIBLE:
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def _task_run(task: dict[str, Any]) -> Run:
    """What the task asks for, as the CLI does it."""
    if task["action"] == "train":
        from training.config import TrainConfig

        config = TrainConfig.from_dict(task["config"])

        def train(callbacks: Sequence[Any], stop: threading.Event, on_teacher: TeacherProgress) -> Path:
            from training.train import train

            return train(config, callbacks, stop=stop, verbose=0, on_teacher=on_teacher)

        return train
    run_dir, epochs = Path(task["run_dir"]), task["epochs"]

    def resume(callbacks: Sequence[Any], stop: threading.Event, on_teacher: TeacherProgress) -> Path:
        from training.train import resume

        return resume(run_dir, epochs, callbacks, stop=stop, verbose=0, on_teacher=on_teacher)

    return resume


def main() -> None:
    """The child: read the task, run it, report; then exit at once (TensorFlow's teardown is slow)."""
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever else writes to standard output goes to the log, not the channel
    task = json.loads(sys.stdin.readline())
    job = task["job"]
    channel = ReportingChannel(out, job["run_name"], Path(job["run_dir"]), job["action"], job["epochs"])
    stop = threading.Event()
    threading.Thread(target=_listen, args=(stop, channel), name="stop-listener", daemon=True).start()
    in_this_process(_task_run(task))(channel, stop)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
