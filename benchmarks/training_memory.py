"""How much memory does a training take while it runs? The Training page's training process, sampled.

    python -m benchmarks.training_memory --fer2013 DIR [--preset cpu] [--seconds 240]

Starts a training as the Training page does (training.jobs: a child process of the server, here
of this command) on the whole dataset with the preset's settings, samples the training process's
resident memory (RSS) and proportional set size (PSS: the library pages it shares with the server
count by their share) every second for ``--seconds``, then stops it and prints the peaks and how
far the training got. The server's own memory is benchmarks.memory_walk's; while a training runs
the machine needs both.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.server_memory import children, memory_mb, proportional_mb
from training.config import PRESETS, TrainConfig
from training.jobs import JobManager

#: Enough epochs that the training is still running when the sampling ends.
EPOCHS = 40


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.training_memory", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--fer2013", type=Path, default=os.environ.get("FER2013_DIR"), help="FER2013 folder ($FER2013_DIR)"
    )
    parser.add_argument("--preset", choices=list(PRESETS), default="cpu", help="preset (default cpu)")
    parser.add_argument("--seconds", type=float, default=240.0, help="how long to sample (default 240)")
    args = parser.parse_args(argv)
    if args.fer2013 is None:
        parser.error("--fer2013 DIR (or FER2013_DIR) is needed")
    print(f"cpu cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    with tempfile.TemporaryDirectory(prefix="emojify-training-memory-") as tmp:
        config = TrainConfig.from_preset(
            args.preset, data_dir=args.fer2013, run_name="memory", runs_dir=Path(tmp), epochs=EPOCHS
        )
        job = JobManager().start(config)
        started, peak_rss, peak_pss = time.monotonic(), 0.0, 0.0
        while time.monotonic() - started < args.seconds and job.alive:
            for pid in children(os.getpid()):
                try:
                    rss, pss = memory_mb(pid)[0], proportional_mb(pid)
                except (OSError, KeyError):  # it has just exited
                    continue
                peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(1.0)
        progress = job.progress()
        job.stop()
        job.wait()
    print(
        f"after {time.monotonic() - started:.0f} s ({progress.state}, epoch {progress.epoch} of "
        f"{progress.epochs}, batch {progress.batch} of {progress.batches}): training process peak "
        f"RSS {peak_rss:.0f} MB, PSS {peak_pss:.0f} MB; load average {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
