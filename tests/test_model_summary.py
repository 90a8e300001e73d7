"""Home's description of the shipped model: the truth it learnt first, FER2013's labels beside it."""

from __future__ import annotations

import json

from app.emotions import DEFAULT_MODEL_PATH
from app.model_summary import quality_warning, summarize


def test_the_shipped_model_is_described_against_the_annotators_majority_with_the_labels_beside():
    card = json.loads(DEFAULT_MODEL_PATH.with_suffix(".json").read_text(encoding="utf-8"))
    private = card["evaluation"]["private_test"]

    metrics = {name: (value, help_text) for name, value, help_text in summarize(DEFAULT_MODEL_PATH).metrics}

    value, help_text = metrics["Private Test"]
    assert value == f"{private['ferplus_majority']['accuracy']:.1%}"
    assert f"FER2013 labels: {private['accuracy']:.1%}" in help_text
    assert f"on {private['ferplus_majority']['n']:,} images" in help_text


def test_the_whole_test_folder_is_named_as_both_halves_not_as_a_third_test_set():
    metrics = {name: help_text for name, _, help_text in summarize(DEFAULT_MODEL_PATH).metrics}
    assert list(metrics) == ["Public Test", "Both tests", "Private Test"], list(metrics)
    assert metrics["Both tests"].startswith("PublicTest and PrivateTest together")


def test_a_vote_trained_run_meets_the_shipped_models_majority_accuracy_not_its_label_accuracy():
    public = json.loads(DEFAULT_MODEL_PATH.with_suffix(".json").read_text(encoding="utf-8"))["evaluation"][
        "public_test"
    ]
    majority, labels = public["ferplus_majority"]["accuracy"], public["accuracy"]
    weak_vote_run = labels + 0.05  # above the label yardstick, but 20 points below the majority one

    warning = quality_warning(weak_vote_run, "ferplus")

    assert warning is not None and f"{majority:.1%}" in warning and "annotators' majority" in warning
    assert quality_warning(weak_vote_run, "fer2013") is None
    assert quality_warning(majority - 0.02, "ferplus") is None


def test_the_near_chance_warning_says_which_data_its_baseline_holds_for():
    """A run validated on a folder with as many faces of each emotion scores 14 % by answering
    *happy* to all: the 25 % the warning quoted holds for FER2013's PublicTest only."""
    warning = quality_warning(0.143)
    assert warning is not None and "near chance" in warning
    assert "random guess scores 14 %" in warning and "25 % on FER2013's PublicTest" in warning
