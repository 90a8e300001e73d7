"""``python -m training.evaluate`` on a model really trained on FER2013 (the tiny run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH, REPO_ROOT
from app.model_card import read_card
from training.analysis import per_class_csv
from training.data import load_split
from training.evaluate import ALL_SPLITS, main
from training.votes import NO_MAJORITY, SHIPPED_VOTES, majority, match, read_votes

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


# --- --split FOLDER and --out DIR (with the shipped model: read-only, no training needed) --------


def test_folder_split_prints_json_and_writes_the_table_and_matrix(fer2013_mini: Path, tmp_path: Path, capsys):
    folder = fer2013_mini / "test"
    out = tmp_path / "report"

    assert (
        main(["--model", str(DEFAULT_MODEL_PATH), "--split", str(folder), "--out", str(out), "--json"]) == 0
    )

    report = json.loads(capsys.readouterr().out)
    result = report["results"][str(folder)]
    assert result["n"] == 28 and [row["support"] for row in result["per_class"].values()] == [4] * 7
    assert report["files"] == [str(out / "test_per_class.csv"), str(out / "test_confusion.png")]
    assert (out / "test_per_class.csv").read_text() == per_class_csv(result)
    picture = cv2.imread(str(out / "test_confusion.png"))
    assert picture is not None and min(picture.shape[:2]) > 600
    # The dataset root means its test/ folder, and a zip of it is the same: same images, same numbers.
    # The root's paths are the votes file's own (test/<class>/...), so it is scored against both truths.
    assert main(["--model", str(DEFAULT_MODEL_PATH), "--split", str(fer2013_mini), "--json"]) == 0
    from_root = json.loads(capsys.readouterr().out)["results"][str(fer2013_mini)]
    assert from_root.pop("ferplus_majority")["images"] == 28 and from_root == result
    archive = shutil.make_archive(str(tmp_path / "mini"), "zip", fer2013_mini)
    assert main(["--model", str(DEFAULT_MODEL_PATH), "--split", archive, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][archive] == result


def test_named_split_with_out_writes_files_named_after_the_split(fer2013_mini: Path, tmp_path: Path, capsys):
    argv = ["--model", str(DEFAULT_MODEL_PATH), "--data", str(fer2013_mini), "--split", "private_test"]

    assert main([*argv, "--out", str(tmp_path)]) == 0

    out = capsys.readouterr().out
    assert out.startswith("== private_test: 14 images\n")
    assert f"wrote {tmp_path / 'private_test_per_class.csv'}" in out
    assert (tmp_path / "private_test_per_class.csv").read_text().count("\n") == 1 + len(CLASS_NAMES)
    assert (tmp_path / "private_test_confusion.png").read_bytes().startswith(b"\x89PNG")


def test_unusable_folder_or_model_is_reported(fer2013_mini: Path, tmp_path: Path, capsys):
    folder = tmp_path / "faces"
    shutil.copytree(fer2013_mini / "test", folder)
    shutil.copytree(folder / "happy", folder / "cats")
    assert main(["--model", str(DEFAULT_MODEL_PATH), "--split", str(folder)]) == 2
    assert "unknown class folder(s): cats" in capsys.readouterr().err

    assert main(["--model", str(DEFAULT_MODEL_PATH), "--split", str(tmp_path / "nowhere")]) == 2
    assert "neither a split" in capsys.readouterr().err

    not_a_model = tmp_path / "notes.keras"
    not_a_model.write_text("hello")
    assert main(["--model", str(not_a_model), "--split", str(fer2013_mini / "test")]) == 2
    assert "notes.keras is not a readable Keras model" in capsys.readouterr().err


def test_card_is_refused_for_a_folder_and_a_named_split_needs_data(fer2013_mini: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", str(DEFAULT_MODEL_PATH), "--split", str(fer2013_mini / "test"), "--card"])
    assert exit_info.value.code == 2
    assert "--card stores FER2013 splits only" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        main(["--model", str(DEFAULT_MODEL_PATH), "--split", "private_test"])
    assert "needs --data" in capsys.readouterr().err


# --- the second truth: the FER+ annotators' majority --------------------------------------------------


def test_both_truths_reach_the_json_the_card_and_the_files(fer2013_mini: Path, tmp_path: Path, capsys):
    """14 real PrivateTest images, all with votes in the shipped file (found on its own): the JSON,
    the card and --out carry the annotators' score beside the label's, the same numbers everywhere."""
    model = tmp_path / "emotion_cnn.keras"
    shutil.copy2(DEFAULT_MODEL_PATH, model)
    votes = read_votes(SHIPPED_VOTES)
    argv = ["--model", str(model), "--data", str(fer2013_mini), "--split", "private_test"]

    assert main([*argv, "--json", "--card", "--out", str(tmp_path / "out")]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["votes"] == str(SHIPPED_VOTES) and report["notes"] == []
    result = report["results"]["private_test"]
    against = result["ferplus_majority"]
    dataset = load_split(fer2013_mini, "private_test")
    major = majority(match(votes, dataset.sources, dataset.root, "private_test").counts)
    assert against["images"] == result["n"] == 14 and against["with_votes"] == 14
    assert against["n"] == int((major != NO_MAJORITY).sum())
    assert [row["support"] for row in against["per_class"].values()] == [
        int((major == k).sum()) for k in range(len(CLASS_NAMES))
    ]
    assert np.trace(against["confusion"]) == pytest.approx(against["accuracy"] * against["n"])
    labels = np.array(dataset.y)[major != NO_MAJORITY]
    assert against["label_agreement"] == pytest.approx(np.mean(labels == major[major != NO_MAJORITY]))
    assert read_card(model)["evaluation"]["private_test"] == result
    assert (tmp_path / "out" / "private_test_ferplus_per_class.csv").read_text() == per_class_csv(against)
    assert (tmp_path / "out" / "private_test_ferplus_confusion.png").read_bytes().startswith(b"\x89PNG")

    # The text report prints both, and --no-votes only the label's.
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"== private_test, against the FER+ annotators' majority: {against['n']} of 14 images" in text
    assert main([*argv, "--no-votes", "--json"]) == 0
    assert "ferplus_majority" not in json.loads(capsys.readouterr().out)["results"]["private_test"]


def test_images_without_votes_get_a_note_and_a_broken_votes_file_an_error(
    fer2013_mini: Path, tmp_path: Path, capsys
):
    folder = tmp_path / "faces"  # one split's class folders: paths the votes file does not know
    shutil.copytree(fer2013_mini / "test", folder)

    assert main(["--model", str(DEFAULT_MODEL_PATH), "--split", str(folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "ferplus_majority" not in report["results"][str(folder)]
    assert report["notes"] == [
        f"{folder}: no FER+ votes for these images (they exist for FER2013 in the Kaggle folder layout), "
        "so they are scored against their labels only"
    ]

    broken = tmp_path / "votes.csv"
    broken.write_text("path,a,b\n")
    argv = ["--model", str(DEFAULT_MODEL_PATH), "--data", str(fer2013_mini), "--split", "private_test"]
    assert main([*argv, "--votes", str(broken)]) == 2
    assert "is not a FER+ votes file" in capsys.readouterr().err
