"""The training engine on real FER2013 images: Stop in the middle of an epoch, resume, and devices.

A stopped run must keep exactly its finished epochs (the partial one writes nothing), and a resume
must carry on from there, so the finished run's history reads 1..N with no gap and no repeat and
its model still honours the model contract.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from app.emotions import NUM_CLASSES, REPO_ROOT
from app.model_card import read_card
from app.runs import read_run
from training.config import TrainConfig
from training.data import load_split
from training.train import TrainingStopped, resume, train

IMAGES_PER_CLASS = 20  # 9 batches an epoch: a Stop after batch 5 is mid-epoch
BATCH = 16
STEPS_PER_EPOCH = math.ceil(NUM_CLASSES * IMAGES_PER_CLASS / BATCH)


class StopAt(keras.callbacks.Callback):
    """Presses Stop after ``batch`` batches of epoch ``epoch`` (1-based), like a user would."""

    def __init__(self, event: threading.Event, epoch: int, batch: int) -> None:
        super().__init__()
        self.event, self.epoch, self.batch = event, epoch, batch
        self.current = 0
        self.batches_seen: list[tuple[int, int]] = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.current = epoch + 1

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.batches_seen.append((self.current, batch + 1))
        if (self.current, batch + 1) == (self.epoch, self.batch):
            self.event.set()


def tiny_config(fer2013_dir: Path, runs_dir: Path, name: str, epochs: int) -> TrainConfig:
    return TrainConfig(
        data_dir=fer2013_dir,
        run_name=name,
        epochs=epochs,
        batch_size=BATCH,
        limit_per_class=IMAGES_PER_CLASS,
        runs_dir=runs_dir,
        early_stopping_patience=0,
    )


def test_stop_mid_epoch_then_resume_finishes_with_a_continuous_history(fer2013_dir: Path, tmp_path: Path):
    config = tiny_config(fer2013_dir, tmp_path, "stop-resume", epochs=3)
    stop = threading.Event()
    presser = StopAt(stop, epoch=2, batch=5)

    run_dir = train(config, [presser], stop=stop, verbose=0)

    # Stopped one batch after the press, in the middle of epoch 2: only epoch 1 was recorded.
    assert presser.batches_seen[-1] == (2, 5)
    stopped = read_run(run_dir)
    assert (stopped.state, stopped.message) == ("stopped", "stopped after epoch 1 of 3")
    assert [row["epoch"] for row in stopped.history] == [1]
    assert stopped.resumable
    first_epoch = stopped.history[0]
    checkpoint = keras.saving.load_model(run_dir / "last.keras")
    assert int(checkpoint.optimizer.iterations) == STEPS_PER_EPOCH  # not the 5 batches of epoch 2

    resumed_presser = StopAt(threading.Event(), epoch=0, batch=0)  # only watches
    assert resume(run_dir, callbacks=[resumed_presser], verbose=0) == run_dir

    finished = read_run(run_dir)
    assert finished.state == "finished"
    assert [row["epoch"] for row in finished.history] == [1, 2, 3]
    assert finished.history[0] == first_epoch  # the stopped run's epoch is kept as it was
    assert {epoch for epoch, _ in resumed_presser.batches_seen} == {2, 3}  # epoch 1 not trained again
    assert all(0 <= row["val_accuracy"] <= 1 and row["seconds"] > 0 for row in finished.history)
    last = keras.saving.load_model(run_dir / "last.keras")
    assert int(last.optimizer.iterations) == 3 * STEPS_PER_EPOCH

    card = read_card(run_dir / "best.keras")["training"]
    assert card["epochs_run"] == 3
    assert card["best_val_accuracy"] == pytest.approx(finished.best_val_accuracy)
    images = load_split(fer2013_dir, "private_test", limit_per_class=2)
    probabilities = keras.saving.load_model(run_dir / "best.keras").predict(images.x, verbose=0)
    assert probabilities.shape == (len(images), NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


class StopWhileValidating(keras.callbacks.Callback):
    """Presses Stop during epoch ``epoch``'s validation, after its training batches are done."""

    def __init__(self, event: threading.Event, epoch: int) -> None:
        super().__init__()
        self.event, self.epoch, self.current = event, epoch, 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.current = epoch + 1

    def on_test_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.current == self.epoch:
            self.event.set()


def test_stop_pressed_while_validating_keeps_that_epoch(fer2013_dir: Path, tmp_path: Path):
    """A Stop while validating used to throw the epoch's training away, then to wait for the whole
    validation; now it keeps the training and cuts the validation, whose numbers are not kept."""
    config = tiny_config(fer2013_dir, tmp_path, "validating", epochs=3)
    stop = threading.Event()

    run_dir = train(config, [StopWhileValidating(stop, epoch=2)], stop=stop, verbose=0)

    run = read_run(run_dir)
    assert (run.state, run.message) == (
        "stopped",
        "stopped after epoch 2 of 3; the Stop cut epoch 2's validation short, so its score is not "
        "measured (a resume measures it first)",
    )
    assert [row["epoch"] for row in run.history] == [1, 2] and run.resumable
    assert [math.isnan(row["val_accuracy"]) for row in run.history] == [False, True]
    assert int(keras.saving.load_model(run_dir / "last.keras").optimizer.iterations) == 2 * STEPS_PER_EPOCH


def test_a_resumed_history_keeps_whole_epoch_numbers_and_the_first_of_tied_bests(tmp_path: Path):
    from training.train import Checkpointer, HistoryWriter

    rows = [
        {
            "epoch": float(epoch),
            "loss": 1.0,
            "accuracy": 0.5,
            "val_loss": 1.0,
            "val_accuracy": 0.4,
            "lr": 0.001,
            "seconds": 1.0,
        }
        for epoch in (1, 2)
    ]  # as read back from history.csv: floats, and epochs 1 and 2 tied
    (tmp_path / "best.keras").write_bytes(b"epoch 1")  # a later epoch replaces it only when better
    history = HistoryWriter(tmp_path / "history.csv", rows)
    history._lr = 0.001  # what on_epoch_begin reads from a model this test does not need
    history.on_epoch_end(2, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.3})

    lines = (tmp_path / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch", "1", "2", "3"]
    checkpointer = Checkpointer(tmp_path, {"training": {}}, history, 10)
    assert (checkpointer.best_epoch, checkpointer.best_accuracy) == (1, 0.4)


def test_an_epoch_whose_validation_a_stop_cut_is_never_the_best(tmp_path: Path):
    """Its row's validation is NaN: a resumed run's best is the best measured epoch, whatever the order."""
    from training.train import Checkpointer, HistoryWriter

    columns = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds")
    rows = [
        {"epoch": 1.0, **dict(zip(columns, (1.0, 0.5, math.nan, math.nan, 0.001, 1.0), strict=True))},
        {"epoch": 2.0, **dict(zip(columns, (1.0, 0.5, 1.0, 0.3, 0.001, 1.0), strict=True))},
    ]
    (tmp_path / "best.keras").write_bytes(b"epoch 2")

    checkpointer = Checkpointer(tmp_path, {"training": {}}, HistoryWriter(tmp_path / "h.csv", rows), 10)

    assert (checkpointer.best_epoch, checkpointer.best_accuracy) == (2, 0.3)


def test_stop_pressed_while_loading_writes_nothing(fer2013_dir: Path, tmp_path: Path):
    config = tiny_config(fer2013_dir, tmp_path, "never", epochs=1)
    stop = threading.Event()
    stop.set()

    with pytest.raises(TrainingStopped, match="before the first epoch finished: nothing was trained"):
        train(config, stop=stop, verbose=0)

    assert not config.run_dir.exists()


DATA_PARALLEL_SCRIPT = """
import sys
import tensorflow as tf

# Two logical CPU devices: what keras.distribution.list_devices() reports on a two-GPU machine.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from training.config import TrainConfig
from training.train import train

train(TrainConfig(data_dir=sys.argv[1], run_name="parallel", epochs=1, batch_size=16,
                  limit_per_class=20, runs_dir=sys.argv[2]), verbose=0)
"""


def test_two_visible_devices_train_data_parallel(fer2013_dir: Path, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DATA_PARALLEL_SCRIPT), str(fer2013_dir), str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,  # over 300 s on a busy 2-core machine
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "data-parallel over 2 devices: cpu:0, cpu:1" in result.stdout
    status = json.loads((tmp_path / "parallel" / "status.json").read_text())
    assert status["state"] == "finished"
    model = keras.saving.load_model(tmp_path / "parallel" / "best.keras")
    images = load_split(fer2013_dir, "public_test", limit_per_class=1)
    assert model.predict(images.x, verbose=0).shape == (NUM_CLASSES, NUM_CLASSES)
