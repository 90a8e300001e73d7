"""A training process killed without warning (SIGKILL: out of memory, a server restart) resumes.

Nothing in the trainer runs on SIGKILL, so this checks what the disk holds at any moment: an
epoch's history row and checkpoint are written atomically as its validation begins (the row again
with its validation numbers when it ends), the run reads as ``interrupted`` once its process is
gone, and ``--resume`` finishes it with a history that has no gap and no repeat, measuring first
a validation the kill cut short.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras

from app.emotions import REPO_ROOT
from app.runs import read_run

EPOCHS = 3


def _train(*args: str) -> list[str]:
    return [sys.executable, "-m", "training.train", *args]


def test_a_run_killed_after_an_epoch_resumes_to_a_continuous_history(fer2013_dir: Path, tmp_path: Path):
    run_dir = tmp_path / "killed"
    process = subprocess.Popen(
        _train(
            *("--data", str(fer2013_dir), "--arch", "classic", "--epochs", str(EPOCHS)),
            *("--limit-per-class", "20", "--batch-size", "16", "--patience", "0"),
            *("--runs-dir", str(tmp_path), "--run-name", "killed"),
        ),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 900  # a busy 2-core machine took over 240 s
        while not (run_dir / "last.keras").is_file():  # epoch 1's checkpoint is on disk: kill now
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no epoch finished in time"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        process.stderr.close()

    killed = read_run(run_dir)
    assert killed.state == "interrupted" and killed.resumable
    # A restarted server (PID 1 in a container) may get the dead trainer's pid: still interrupted.
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "pid": os.getpid()}))
    assert read_run(run_dir).state == "interrupted"
    done = [row["epoch"] for row in killed.history]
    assert done == list(range(1, len(done) + 1)) and 1 <= len(done) < EPOCHS
    kept = killed.history  # (the kill may land before or after the next epoch's row)

    resumed = subprocess.run(_train("--resume", str(run_dir)), cwd=REPO_ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    finished = read_run(run_dir)
    assert finished.state == "finished"
    assert [row["epoch"] for row in finished.history] == list(range(1, EPOCHS + 1))
    for before, after in zip(kept, finished.history, strict=False):  # kept as they were, ...
        measured = {name: value for name, value in before.items() if not math.isnan(value)}
        assert {name: after[name] for name in measured} == measured
    assert not any(math.isnan(row["val_accuracy"]) for row in finished.history)  # ... and measured
    assert keras.saving.load_model(run_dir / "best.keras").output_shape == (None, 7)
