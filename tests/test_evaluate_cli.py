"""``python -m training.evaluate`` on a model really trained on FER2013 (the tiny run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.emotions import CLASS_NAMES, REPO_ROOT
from app.model_card import read_card
from training.evaluate import ALL_SPLITS, main

IMAGES_PER_CLASS = 10


@pytest.fixture
def model_copy(tiny_run, tmp_path: Path) -> Path:
    """The tiny run's best model and card, copied so a test may add to the card."""
    for name in ("best.keras", "best.json"):
        shutil.copy2(tiny_run.run_dir / name, tmp_path / name)
    return tmp_path / "best.keras"


def test_json_results_are_stored_in_the_card_beside_the_model(model_copy: Path, fer2013_dir: Path) -> None:
    training_before = read_card(model_copy)["training"]
    command = [
        sys.executable, "-m", "training.evaluate", "--model", str(model_copy), "--data", str(fer2013_dir),
        "--limit-per-class", str(IMAGES_PER_CLASS), "--json", "--card",
    ]  # fmt: skip

    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert tuple(report["results"]) == ALL_SPLITS
    for split, scores in report["results"].items():
        confusion = np.array(scores["confusion"])
        assert scores["n"] == confusion.sum() == len(CLASS_NAMES) * IMAGES_PER_CLASS, split
        assert scores["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
        assert list(scores["per_class"]) == list(CLASS_NAMES)
        assert [row["support"] for row in scores["per_class"].values()] == confusion.sum(axis=1).tolist()
        assert 0 <= scores["macro_f1"] <= 1 and 0 <= scores["balanced_accuracy"] <= 1

    card = read_card(model_copy)
    assert card["evaluation"] == report["results"]
    assert card["training"] == training_before  # the trainer's record is kept
    assert report["card"] == str(model_copy.with_suffix(".json"))


def test_text_report_shows_scores_table_and_confusion(model_copy: Path, fer2013_dir: Path, capsys) -> None:
    argv = ["--model", str(model_copy), "--data", str(fer2013_dir), "--split", "private_test"]

    assert main([*argv, "--limit-per-class", "5"]) == 0

    out = capsys.readouterr().out
    assert out.startswith("== private_test: 35 images\naccuracy ")
    assert all(f"\n{name} " in out for name in CLASS_NAMES)
    assert "confusion (rows = true, columns = predicted)" in out
    assert "evaluation" not in read_card(model_copy)  # no --card, no change


def test_card_is_created_for_a_model_without_one(model_copy: Path, fer2013_dir: Path, capsys) -> None:
    model_copy.with_suffix(".json").unlink()
    argv = ["--model", str(model_copy), "--data", str(fer2013_dir), "--split", "public_test", "--card"]

    assert main([*argv, "--limit-per-class", "2"]) == 0

    card = read_card(model_copy)
    assert card["architecture"] == "classic"
    assert list(card["evaluation"]) == ["public_test"] and card["evaluation"]["public_test"]["n"] == 14


def test_missing_model_or_dataset_is_reported(model_copy: Path, tmp_path: Path, capsys) -> None:
    assert main(["--model", str(tmp_path / "none.keras"), "--data", str(tmp_path)]) == 2
    assert "no model file" in capsys.readouterr().err

    assert main(["--model", str(model_copy), "--data", str(tmp_path / "nowhere")]) == 2
    assert "dataset path does not exist" in capsys.readouterr().err


def test_corrupt_card_stops_evaluation_and_is_left_alone(model_copy: Path, fer2013_dir: Path, capsys) -> None:
    card_file = model_copy.with_suffix(".json")
    card_file.write_text('{"architecture": "classic", ')

    assert main(["--model", str(model_copy), "--data", str(fer2013_dir), "--card"]) == 2

    assert "is not valid JSON" in capsys.readouterr().err
    assert card_file.read_text() == '{"architecture": "classic", '
