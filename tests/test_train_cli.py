"""``python -m training.train``: a real short run on FER2013, and the ways it refuses to start."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from app.emotions import CLASS_NAMES, NUM_CLASSES
from app.model_card import read_card
from training.config import TrainConfig
from training.data import load_split
from training.train import HISTORY_COLUMNS, main

RUN_FILES = {"config.json", "history.csv", "last.keras", "best.keras", "best.json", "status.json", "run.lock"}


def test_run_folder_holds_config_history_models_and_card(tiny_run) -> None:
    assert {path.name for path in tiny_run.run_dir.iterdir()} == RUN_FILES  # no temporary files left
    assert json.loads((tiny_run.run_dir / "status.json").read_text())["state"] == "finished"

    with (tiny_run.run_dir / "history.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [list(row) for row in rows] == [list(HISTORY_COLUMNS)]
    assert rows[0]["epoch"] == "1"
    assert 0 <= float(rows[0]["val_accuracy"]) <= 1 and float(rows[0]["seconds"]) > 0

    config = TrainConfig.from_dict(json.loads((tiny_run.run_dir / "config.json").read_text()))
    assert (config.arch, config.epochs, config.limit_per_class) == ("classic", 1, tiny_run.images_per_class)
    assert config.run_dir == tiny_run.run_dir

    card = read_card(tiny_run.run_dir / "best.keras")
    training = card["training"]
    assert card["architecture"] == "classic" and card["classes"] == list(CLASS_NAMES)
    assert card["input"]["shape"] == [48, 48, 1]
    assert TrainConfig.from_dict(training["config"]) == config
    assert (training["epochs_run"], training["best_epoch"]) == (1, 1)
    assert training["best_val_accuracy"] == pytest.approx(float(rows[0]["val_accuracy"]))
    assert training["dataset"]["train"]["n"] == NUM_CLASSES * tiny_run.images_per_class
    assert training["images_per_s"] > 0 and training["backend"] == keras.backend.backend()
    assert "epoch 1/1:" in tiny_run.stdout and "done: best val_accuracy" in tiny_run.stdout


def test_best_model_is_an_inference_model_meeting_the_contract(tiny_run, fer2013_dir: Path) -> None:
    images = load_split(fer2013_dir, "private_test", limit_per_class=3)
    model = keras.saving.load_model(tiny_run.run_dir / "best.keras")

    probabilities = model.predict(images.x, verbose=0)

    assert probabilities.shape == (len(images), NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    # best.keras leaves the optimizer state to last.keras, which is what a resumed run needs.
    assert not model.compiled
    assert keras.saving.load_model(tiny_run.run_dir / "last.keras").compiled


def test_existing_run_folder_is_never_overwritten(tiny_run, fer2013_dir: Path, capsys) -> None:
    before = (tiny_run.run_dir / "history.csv").read_text()
    argv = ["--data", str(fer2013_dir), "--run-name", tiny_run.run_dir.name]

    assert main([*argv, "--runs-dir", str(tiny_run.run_dir.parent)]) == 2

    assert "already exists" in capsys.readouterr().err
    assert (tiny_run.run_dir / "history.csv").read_text() == before


def test_bad_dataset_stops_before_the_run_folder_is_made(tmp_path: Path, capsys) -> None:
    status = main(["--data", str(tmp_path / "nowhere"), "--run-name", "x", "--runs-dir", str(tmp_path)])

    assert status == 2
    assert "dataset path does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--epochs", "0"], "epochs must be >= 1"),
        (["--run-name", "../escape"], "run_name must be a plain folder name"),
        (["--arch", "resnet50"], "invalid choice: 'resnet50'"),
        (["--preset", "fast"], "invalid choice: 'fast'"),
        (["--optimizer", "sgd"], "invalid choice: 'sgd'"),
        (["--schedule", "linear"], "invalid choice: 'linear'"),
    ],
)
def test_invalid_options_are_refused_by_the_cli(
    tmp_path: Path, option: list[str], message: str, capsys
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(tmp_path), "--run-name", "x", *option])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_config_round_trips_through_its_dict(tmp_path: Path) -> None:
    config = TrainConfig(data_dir=tmp_path, run_name="r", arch="vgg_bn", schedule="cosine")

    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_config_refuses_unknown_fields_and_privatetest_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown training config fields: colour"):
        TrainConfig.from_dict({"data_dir": str(tmp_path), "run_name": "r", "colour": "blue"})
    with pytest.raises(ValueError, match="validation_split must be in"):
        TrainConfig(data_dir=tmp_path, run_name="r", validation_split="private_test")


# --- resuming from a checkpoint that is not one (plain messages, no traceback) ----------------------


def copy_of_run(tiny_run, tmp_path: Path) -> Path:
    run_dir = Path(shutil.copytree(tiny_run.run_dir, tmp_path / "copy"))
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "runs_dir": str(tmp_path)}))
    return run_dir


def test_resume_from_a_truncated_checkpoint_says_it_is_damaged(tiny_run, tmp_path: Path, capsys) -> None:
    run_dir = copy_of_run(tiny_run, tmp_path)
    last = run_dir / "last.keras"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # a disk that filled up mid-copy

    assert main(["--resume", str(run_dir), "--epochs", "2"]) == 2

    err = capsys.readouterr().err
    assert "last.keras is damaged" in err and "Traceback" not in err


def test_resume_from_a_checkpoint_with_code_in_it_is_refused_plainly(
    tiny_run, tmp_path: Path, capsys
) -> None:
    run_dir = copy_of_run(tiny_run, tmp_path)
    inputs = keras.Input((48, 48, 1))
    outputs = keras.layers.Dense(NUM_CLASSES, activation="softmax")(
        keras.layers.Flatten()(keras.layers.Lambda(lambda x: x / 255.0)(inputs))
    )
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.save(run_dir / "last.keras")

    assert main(["--resume", str(run_dir), "--epochs", "2"]) == 2

    err = capsys.readouterr().err
    assert "can't be loaded as this app's checkpoint" in err and "Traceback" not in err
