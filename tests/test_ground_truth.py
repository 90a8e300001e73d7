"""training.ground_truth: scoring against the FER+ annotators' majority, on hand-made votes whose
majorities and agreements are worked out here, and on real FER2013 images with the shipped votes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.classifier import EmotionClassifier
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH, NUM_CLASSES
from training.analysis import Evaluation, ResultError, predict_dataset
from training.data import load_split
from training.ground_truth import (
    ANNOTATORS,
    LABEL,
    MAJORITY_KEY,
    as_truth,
    both_truths,
    cached_votes,
    card_caption,
    disagreements,
    sides,
    under,
    vote_bars,
    vote_card,
    with_votes,
)
from training.votes import SHIPPED_VOTES, read_votes

ANGRY, DISGUST, FEAR, HAPPY, NEUTRAL, SAD, SURPRISE = range(NUM_CLASSES)
#            neutral happiness surprise sadness anger disgust fear contempt unknown NF
VOTES = np.array(
    [
        [0, 8, 0, 0, 0, 0, 0, 2, 0, 0],  # 0: happy 8/10; label happy (agrees)
        [7, 0, 0, 3, 0, 0, 0, 0, 0, 0],  # 1: neutral 7/10; label sad (disagrees)
        [0, 0, 0, 6, 0, 0, 0, 0, 4, 0],  # 2: sad 6/10; label angry (disagrees)
        [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],  # 3: tie: no majority
        [0, 0, 0, 0, 0, 0, 0, 0, 7, 3],  # 4: unknown on top: no majority
        [np.nan] * 10,  # 5: no votes at all
        [0, 0, 9, 0, 0, 0, 1, 0, 0, 0],  # 6: surprise 9/10; label fear (disagrees)
    ],
    dtype=np.float32,
)
LABELS = np.array([HAPPY, SAD, ANGRY, NEUTRAL, FEAR, SAD, FEAR])
#: The model: happy (both truths), neutral (the annotators), angry (the label), then each label.
PREDICTED = np.array([HAPPY, NEUTRAL, ANGRY, NEUTRAL, FEAR, SAD, FEAR])


def evaluation(votes: np.ndarray | None = VOTES) -> Evaluation:
    probabilities = np.full((len(LABELS), NUM_CLASSES), 0.05, dtype=np.float32)
    probabilities[np.arange(len(LABELS)), PREDICTED] = 0.7
    return Evaluation(
        split="hand-made",
        y_true=LABELS,
        probabilities=probabilities,
        pixels=np.zeros((len(LABELS), 48, 48), np.uint8),
        sources=tuple(f"test/x/{i}.jpg" for i in range(len(LABELS))),
        votes=votes,
    )


def test_the_annotators_majority_is_scored_on_the_images_with_a_clear_one() -> None:
    result = both_truths(evaluation())

    assert result["n"] == 7 and result["accuracy"] == pytest.approx(6 / 7)  # all but image 1's label
    against = result[MAJORITY_KEY]
    # Clear majorities: images 0 (happy), 1 (neutral), 2 (sad), 6 (surprise); the model gets 0 and 1.
    assert against["n"] == 4 and against["images"] == 7 and against["with_votes"] == 6
    assert against["accuracy"] == pytest.approx(2 / 4)
    assert against["label_agreement"] == pytest.approx(1 / 4)  # only image 0's label is its majority
    assert against["per_class"]["sad"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert against["per_class"]["neutral"]["recall"] == 1.0
    assert np.array(against["confusion"])[SURPRISE, FEAR] == 1
    assert under(result, ANNOTATORS) == against and under(result, LABEL) == result


def test_without_votes_there_is_one_truth() -> None:
    result = both_truths(evaluation(votes=None))

    assert MAJORITY_KEY not in result and under(result, ANNOTATORS) is None
    assert not len(disagreements(evaluation(votes=None)))


def test_a_broken_majority_entry_in_a_card_is_refused() -> None:
    result = both_truths(evaluation())
    result[MAJORITY_KEY] = {**result[MAJORITY_KEY], "confusion": [[1, 2]]}

    with pytest.raises(ResultError, match="ferplus_majority entry is unusable: confusion must be 7×7"):
        under(result, ANNOTATORS)


def test_under_the_annotators_truth_only_images_with_a_majority_remain_and_carry_it() -> None:
    view = as_truth(evaluation(), ANNOTATORS)

    assert view.y_true.tolist() == [HAPPY, NEUTRAL, SAD, SURPRISE]
    assert view.sources == ("test/x/0.jpg", "test/x/1.jpg", "test/x/2.jpg", "test/x/6.jpg")
    assert view.y_pred.tolist() == [HAPPY, NEUTRAL, ANGRY, FEAR]
    assert view.result()["confusion"] == both_truths(evaluation())[MAJORITY_KEY]["confusion"]
    full = evaluation()
    assert as_truth(full, LABEL) is full


def test_disagreements_are_clearest_first_and_say_whom_the_model_followed() -> None:
    full = evaluation()

    found = disagreements(full)

    assert found.tolist() == [6, 1, 2]  # surprise 9/10, neutral 7/10, sad 6/10
    assert disagreements(full, label=SAD).tolist() == [1]
    assert disagreements(full, annotators=SAD).tolist() == [2]
    assert disagreements(full, label=HAPPY).tolist() == []
    assert sides(full, found) == {"label": 2, "annotators": 1, "neither": 0}


def test_a_vote_card_shows_the_face_and_eight_bars() -> None:
    full = evaluation()
    bars = vote_bars(VOTES[2])

    assert bars.tolist() == [0, 0, 0, 0, 0, 6, 0, 4]  # sad 6, other (unknown) 4
    card = vote_card(np.full((48, 48), 200, np.uint8), VOTES[2], label=LABELS[2], predicted=PREDICTED[2])
    assert card.dtype == np.uint8 and card.shape[2] == 3 and card.shape[0] >= 96
    assert (card == 200).all(axis=2).sum() == 96 * 96  # the face, doubled without blurring
    assert card_caption(full, 2) == "label angry · annotators sad 6/10 · model angry 70%"


def test_images_without_votes_get_a_note_not_an_error(tmp_path: Path) -> None:
    votes = read_votes(SHIPPED_VOTES)

    kept, note = with_votes(evaluation(votes=None), votes, tmp_path)

    assert kept.votes is None
    assert note.startswith("hand-made: no FER+ votes for these images")


def test_real_fer2013_images_against_both_truths(fer2013_mini: Path) -> None:
    """The shipped model on 14 real PrivateTest images, its majority score rebuilt by hand here."""
    dataset = load_split(fer2013_mini, "private_test")
    scored = predict_dataset(EmotionClassifier.load(DEFAULT_MODEL_PATH), dataset)
    votes = cached_votes(SHIPPED_VOTES)

    attached, note = with_votes(scored, votes, dataset.root)
    result = both_truths(attached)

    assert not note and attached.votes.shape == (14, 10)
    rows = {path: counts for path, counts in zip(votes.paths, votes.counts, strict=True)}
    expected_truth, expected_pred = [], []
    for source, predicted in zip(dataset.sources, scored.y_pred, strict=True):
        counts = rows[Path(source).relative_to(fer2013_mini).as_posix()]
        top = np.flatnonzero(counts == counts.max())
        if len(top) == 1 and top[0] < 7:  # one top column, and one of the seven emotions
            column = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
            names = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")
            expected_truth.append(column.index(names[top[0]]))
            expected_pred.append(predicted)
    against = result[MAJORITY_KEY]
    assert against["n"] == len(expected_truth) > 0 and against["images"] == 14
    assert against["accuracy"] == pytest.approx(np.mean(np.array(expected_truth) == np.array(expected_pred)))
    assert result["accuracy"] == scored.result()["accuracy"]  # the label's score is unchanged
    assert [CLASS_NAMES[i] for i in expected_truth] == [
        CLASS_NAMES[i] for i in as_truth(attached, ANNOTATORS).y_true
    ]
