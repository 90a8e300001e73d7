"""Distillation (``--teacher``): targets mixed from the labels and a real teacher's probabilities."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import keras
import numpy as np
import pytest

from app.classifier import EmotionClassifier
from app.emotions import DEFAULT_MODEL_PATH, NUM_CLASSES
from training.analysis import PREDICT_BATCH
from training.config import TrainConfig
from training.data import load_split
from training.distill import TeacherError, training_targets
from training.train import TrainingStopped, main, train


def test_without_a_teacher_the_targets_are_the_labels(fer2013_dir: Path) -> None:
    images = load_split(fer2013_dir, "train", limit_per_class=4)

    targets = training_targets(images)

    assert targets.shape == (len(images), NUM_CLASSES)
    np.testing.assert_array_equal(targets.argmax(axis=1), images.y)
    np.testing.assert_array_equal(targets.sum(axis=1), 1.0)


def test_teacher_targets_mix_its_probabilities_into_the_labels(fer2013_dir: Path, capsys) -> None:
    images = load_split(fer2013_dir, "train", limit_per_class=20)
    teacher = EmotionClassifier.load(DEFAULT_MODEL_PATH)

    targets = training_targets(images, DEFAULT_MODEL_PATH, weight=0.7)

    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-5)
    labels = keras.utils.to_categorical(images.y, NUM_CLASSES)
    np.testing.assert_allclose(targets, 0.3 * labels + 0.7 * teacher(images.x), atol=1e-5)
    # The shipped model is a real teacher: it agrees with most FER2013 training labels, and says so.
    agreement = float(np.mean(teacher(images.x).argmax(axis=1) == images.y))
    assert agreement > 0.5
    assert f"teacher agrees with {agreement:.1%}" in capsys.readouterr().out


def test_a_distilled_run_records_its_teacher(fer2013_dir: Path, tmp_path: Path, capsys) -> None:
    code = main(
        [
            "--data", str(fer2013_dir), "--runs-dir", str(tmp_path), "--run-name", "student",
            "--arch", "classic", "--epochs", "1", "--limit-per-class", "5",
            "--teacher", str(DEFAULT_MODEL_PATH), "--teacher-weight", "0.5",
        ]
    )  # fmt: skip

    assert code == 0
    config = TrainConfig.from_dict(json.loads((tmp_path / "student" / "config.json").read_text()))
    assert (config.teacher, config.teacher_weight) == (DEFAULT_MODEL_PATH, 0.5)
    assert "distilling from" in capsys.readouterr().out
    assert (tmp_path / "student" / "best.keras").is_file()


def test_a_missing_teacher_stops_the_run_before_its_folder_is_made(
    fer2013_dir: Path, tmp_path: Path, capsys
) -> None:
    code = main(
        [
            "--data", str(fer2013_dir), "--runs-dir", str(tmp_path), "--run-name", "student",
            "--limit-per-class", "2", "--teacher", str(tmp_path / "nowhere.keras"),
        ]
    )  # fmt: skip

    assert code == 2
    error = capsys.readouterr().err
    assert "teacher" in error and "model file not found" in error
    assert not (tmp_path / "student").exists()
    with pytest.raises(TeacherError, match="model file not found"):
        training_targets(load_split(fer2013_dir, "train", limit_per_class=1), tmp_path / "nowhere.keras")


def test_teacher_weight_must_be_a_share(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="teacher_weight must be in"):
        TrainConfig(data_dir=tmp_path, run_name="r", teacher=tmp_path / "t.keras", teacher_weight=0)
    config = TrainConfig(data_dir=tmp_path, run_name="r", teacher=str(tmp_path / "t.keras"))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_a_stop_during_the_teachers_pass_ends_it_before_anything_is_written(
    fer2013_dir: Path, tmp_path: Path
) -> None:
    config = TrainConfig(
        data_dir=fer2013_dir, runs_dir=tmp_path, run_name="stopped", arch="classic", epochs=1,
        limit_per_class=50, teacher=DEFAULT_MODEL_PATH,
    )  # fmt: skip
    stop, heard = threading.Event(), []

    def press_stop(done: int, total: int) -> None:  # as a user would, on seeing the first progress
        heard.append((done, total))
        stop.set()

    with pytest.raises(TrainingStopped, match="teacher"):
        train(config, stop=stop, on_teacher=press_stop)

    assert heard == [(PREDICT_BATCH, 7 * 50)]  # one batch of the teacher's pass, not all of it
    assert not (tmp_path / "stopped").exists()
