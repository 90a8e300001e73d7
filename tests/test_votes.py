"""FER+ votes: parsing, the seven-class distributions and majorities, vote training and fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from app.classifier import EmotionClassifier
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH
from model.architectures import build_model
from training.config import TrainConfig
from training.data import load_split
from training.train import fit_data, main
from training.votes import (
    NO_MAJORITY,
    SHIPPED_VOTES,
    VOTES_ENV,
    VotesError,
    distributions,
    find_votes,
    majority,
    match,
    read_votes,
)
from training.warm_start import WarmStartError, source_model, warm_start

HEADER = "path,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"


def write_votes(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return path


def test_votes_become_seven_class_distributions_without_contempt_unknown_or_not_a_face(tmp_path: Path):
    votes = read_votes(
        write_votes(
            tmp_path / "votes.csv",
            [
                "train/angry/a.jpg,2,0,0,1,7,0,0,0,0,0",  # anger 7 of 10
                "train/happy/b.jpg,4,4,0,0,0,0,0,2,0,0",  # tie neutral/happiness; contempt dropped
                "train/sad/c.jpg,0,0,0,3,0,0,0,5,2,0",  # top is contempt: no majority
                "train/fear/d.jpg,0,0,0,0,0,0,0,0,6,4",  # only unknown / not a face: no distribution
            ],
        )
    )
    dist = distributions(votes.counts)
    angry, happy, neutral, sad = (CLASS_NAMES.index(n) for n in ("angry", "happy", "neutral", "sad"))

    np.testing.assert_allclose(dist[0, [neutral, sad, angry]], [0.2, 0.1, 0.7])
    np.testing.assert_allclose(dist[1, [neutral, happy]], [0.5, 0.5])
    np.testing.assert_allclose(dist[2, sad], 1.0)
    assert np.isnan(dist[3]).all()
    np.testing.assert_allclose(dist[:3].sum(axis=1), 1.0)
    assert majority(votes.counts).tolist() == [angry, NO_MAJORITY, NO_MAJORITY, NO_MAJORITY]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("path,a,b\nx,1,2\n", "header must be"),
        (HEADER + "train/x.jpg,1,2\n", "line 2: 3 fields"),
        (HEADER + "train/x.jpg,1,0,0,0,0,0,0,0,0,lots\n", "line 2: a vote count is not a number"),
        (HEADER + "train/x.jpg,1,0,0,0,-1,0,0,0,0,0\n", "line 2: vote counts must be finite"),
        (HEADER, "has no votes"),
    ],
)
def test_a_broken_votes_file_is_named_with_its_line(tmp_path: Path, content: str, message: str):
    path = tmp_path / "votes.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VotesError, match=message):
        read_votes(path)


def test_the_votes_file_is_found_by_flag_environment_dataset_folder_then_the_shipped_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    data = tmp_path / "fer2013"
    data.mkdir()
    monkeypatch.delenv(VOTES_ENV, raising=False)
    assert find_votes(None, data) == SHIPPED_VOTES
    beside = write_votes(tmp_path / "ferplus_votes.csv", [])
    assert find_votes(None, data) == beside
    inside = write_votes(data / "ferplus_votes.csv", [])
    assert find_votes(None, data) == inside
    monkeypatch.setenv(VOTES_ENV, str(beside))
    assert find_votes(None, data) == beside
    assert find_votes(inside, data) == inside
    with pytest.raises(VotesError, match="does not exist"):
        find_votes(tmp_path / "nope.csv", data)


def test_the_shipped_votes_cover_fer2013_and_disagree_with_a_third_of_its_labels(fer2013_dir: Path):
    images = load_split(fer2013_dir, "private_test", limit_per_class=60)
    matched = match(read_votes(SHIPPED_VOTES), images.sources, images.root, images.split)

    assert matched.with_row >= len(images) - 5
    clear = majority(matched.counts)
    agree = float(np.mean(clear[clear >= 0] == images.y[clear >= 0]))
    assert 0.45 < agree < 0.9, agree  # FER2013's labels are noisy; the votes are another truth


def test_votes_of_another_dataset_are_refused_before_anything_trains(
    fer2013_dir: Path, tmp_path: Path, capsys
):
    other = write_votes(tmp_path / "other.csv", ["images/0001.png,10,0,0,0,0,0,0,0,0,0"])
    code = main(
        [
            *("--data", str(fer2013_dir), "--runs-dir", str(tmp_path / "runs"), "--run-name", "v"),
            *("--labels", "ferplus", "--votes", str(other), "--limit-per-class", "5", "--epochs", "1"),
        ]
    )

    assert code == 2
    error = capsys.readouterr().err
    assert "none of the 35 train images has votes" in error and "train/angry/" in error
    assert not (tmp_path / "runs" / "v").exists()


def test_blend_targets_mix_votes_and_labels(fer2013_dir: Path):
    config = TrainConfig(
        data_dir=fer2013_dir, run_name="b", labels="blend", votes_weight=0.25, votes=SHIPPED_VOTES
    )
    train_set = load_split(fer2013_dir, "train", limit_per_class=10)
    val_set = load_split(fer2013_dir, "public_test", limit_per_class=10)

    data = fit_data(config, train_set, val_set, 1, None, None)

    matched = match(read_votes(SHIPPED_VOTES), train_set.sources, train_set.root, "train")
    votes = distributions(matched.counts[matched.usable])
    one_hot = keras.utils.to_categorical(data.train.y, len(CLASS_NAMES))
    np.testing.assert_allclose(data.targets, 0.25 * votes + 0.75 * one_hot, atol=1e-6)
    np.testing.assert_allclose(data.val_targets.sum(axis=1), 1.0, atol=1e-6)
    assert data.labels["source"] == "blend" and data.labels["votes_weight"] == 0.25


def test_a_real_vote_trained_run_fine_tuned_from_the_shipped_model_records_its_labels(
    fer2013_dir: Path, tmp_path: Path
):
    code = main(
        [
            *("--data", str(fer2013_dir), "--runs-dir", str(tmp_path), "--run-name", "votes", "--arch"),
            *("resnet", "--labels", "ferplus", "--init", str(DEFAULT_MODEL_PATH), "--init-member", "2"),
            *("--limit-per-class", "30", "--epochs", "1", "--lr", "1e-4", "--batch-size", "32"),
        ]
    )

    assert code == 0
    card = json.loads((tmp_path / "votes" / "best.json").read_text())
    config = card["training"]["config"]
    assert config["labels"] == "ferplus" and config["init_from"] == str(DEFAULT_MODEL_PATH)
    assert config["votes"] == str(SHIPPED_VOTES)
    labels = card["training"]["labels"]
    assert labels["source"] == "ferplus" and labels["coverage"]["train"]["images"] == 210
    assert 200 <= labels["coverage"]["train"]["with_votes"] <= 210
    shares = card["training"]["dataset"]["train"]["target_shares"]
    assert abs(sum(shares.values()) - 1) < 1e-3
    # Started from a model that knows faces: far above chance after one small epoch.
    assert card["training"]["best_val_accuracy"] > 0.5
    EmotionClassifier.load(tmp_path / "votes" / "best.keras")


def test_warm_start_unfolds_a_served_member_exactly(fer2013_dir: Path):
    faces = load_split(fer2013_dir, "public_test", limit_per_class=5).x
    member = source_model(DEFAULT_MODEL_PATH, 1)
    fresh = build_model("resnet", augment=True, lighting=0.1)

    warm_start(fresh, member)

    np.testing.assert_allclose(fresh.predict(faces, verbose=0), member.predict(faces, verbose=0), atol=1e-5)
    with pytest.raises(WarmStartError, match="is not a classic"):
        warm_start(build_model("classic"), member)
    with pytest.raises(WarmStartError, match="has 2 member models; pick 1 to 2"):
        source_model(DEFAULT_MODEL_PATH, 3)
