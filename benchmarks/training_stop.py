"""How long a Stop takes on the Training page, in each phase of a real training job.

    python -m benchmarks.training_stop --data /root/data/fer2013 [--limit-per-class 300]

Runs real jobs through :class:`training.jobs.JobManager` (the page's own path) with the page's
default recipe (``cpu``) and presses Stop, as the page's button does, once the job's progress
reaches each phase: loading the data, the teacher's pass (the shipped model as teacher), preparing
the model (the first batch traces the graph), training (a few batches in), validating (epoch 1's
validation on PublicTest, ``--limit-per-class`` images a class) and a resume re-validating the
epoch that Stop cut. For each it prints how long until the page shows the job ended (the target
is 3 s) and until its thread let go of the CPU (a new training can start then), and what the run
folder kept. Timings depend on the machine's load, which is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from app.emotions import DEFAULT_MODEL_PATH
from app.runs import read_run
from training.config import TrainConfig
from training.jobs import JobManager, Progress, TrainingJob

POLL_S = 0.005
TIMEOUT_S = 1800


def wait_for(job: TrainingJob, reached: Callable[[Progress], bool]) -> Progress:
    """Poll the job's progress as the page does (much faster), until ``reached`` or it ended."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        progress = job.progress()
        if reached(progress) or not progress.active:
            return progress
        time.sleep(POLL_S)
    raise TimeoutError(f"job {progress.run_name} never got there: {progress}")


def press_stop(jobs: JobManager, job: TrainingJob) -> tuple[float, float, Progress]:
    """Stop ``job``; seconds until its progress showed it ended, until its thread ended, and the end."""
    pressed = time.monotonic()
    jobs.stop(job.id)
    wait_for(job, lambda progress: False)
    shown_s = time.monotonic() - pressed
    job.wait(TIMEOUT_S)
    return shown_s, time.monotonic() - pressed, job.progress()


def measure(
    jobs: JobManager, phase: str, start: Callable[[], TrainingJob], reached: Callable[[Progress], bool]
) -> None:
    job = start()
    progress = wait_for(job, reached)
    if not progress.active:
        print(f"{phase:<13} never reached: the job ended first ({progress.state}: {progress.message})")
        return
    where = f"epoch {progress.epoch}, batch {progress.batch} of {progress.batches}" if progress.epoch else ""
    shown_s, thread_s, final = press_stop(jobs, job)
    run = read_run(final.run_dir)
    kept = (
        f"{len(run.history)} epoch row(s), last.keras {(final.run_dir / 'last.keras').is_file()}"
        if run
        else "no run"
    )
    print(
        f"{phase:<13} {where:<22} page shows it ended after {shown_s:5.2f} s, thread let go after "
        f"{thread_s:6.2f} s; {final.state}: {final.message} [{kept}]",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.training_stop", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data", type=Path, default=os.environ.get("FER2013_DIR"), help="FER2013 folder")
    parser.add_argument("--limit-per-class", type=int, default=300, help="images a class, per split")
    args = parser.parse_args(argv)
    if args.data is None:
        parser.error("--data (or FER2013_DIR) is needed")
    runs = Path(tempfile.mkdtemp(prefix="training_stop_"))
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    jobs = JobManager()
    names = iter(range(1, 100))

    def config(**fields: object) -> TrainConfig:
        return TrainConfig.from_preset(
            "cpu",
            data_dir=args.data,
            run_name=f"run{next(names)}",
            runs_dir=runs,
            limit_per_class=args.limit_per_class,
            **fields,
        )

    def new() -> TrainingJob:
        return jobs.start(config())

    try:
        measure(jobs, "loading", new, lambda p: p.state == "loading")
        measure(
            jobs,
            "teacher pass",
            lambda: jobs.start(config(teacher=DEFAULT_MODEL_PATH)),
            lambda p: p.state == "distilling",
        )
        measure(jobs, "preparing", new, lambda p: p.state == "preparing")
        measure(jobs, "training", new, lambda p: p.state == "training" and p.batch >= 3)
        validating = config()
        measure(jobs, "validating", lambda: jobs.start(validating), lambda p: p.state == "validating")
        measure(
            jobs,
            "revalidating",
            lambda: jobs.resume(validating.run_dir, validating.epochs),
            lambda p: p.state == "revalidating",
        )
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
