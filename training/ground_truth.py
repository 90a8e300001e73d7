"""Two truths for one evaluation: each image's FER2013 label and its FER+ annotators' majority.

FER2013's label is one person's call, and it agrees with the majority of ten FER+ annotators on
only about two thirds of the test images (see :mod:`training.votes`). A "mistake" against the label
may be the annotators' answer, so the evaluate CLI and the Analysis page score a model against both
where the images have votes: an :class:`~training.analysis.Evaluation` carries each image's ten
vote counts in ``votes``, and the result gains a :data:`MAJORITY_KEY` entry shaped like the label's
(plus how many images had votes, a clear majority, and a label that agreed with it).

Here too no Streamlit and no Keras: the page and the CLI share these numbers and pictures.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.emotions import CLASS_NAMES
from training.analysis import Evaluation, ResultError, check_result, score
from training.votes import NO_MAJORITY, VOTE_COLUMNS, Votes, VotesError, majority, match, read_votes

LABEL, ANNOTATORS = "fer2013", "ferplus"
#: The two truths, as the page names them.
TRUTHS = {LABEL: "FER2013 label", ANNOTATORS: "Annotators' majority"}
#: Where a result keeps its score against the annotators' majority.
MAJORITY_KEY = "ferplus_majority"
#: A vote bar per class, then one for contempt, unknown and not-a-face together.
BAR_NAMES = (*CLASS_NAMES, "other")
_SEVEN = [
    VOTE_COLUMNS.index(c) for c in ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
]
_OTHER = [VOTE_COLUMNS.index(c) for c in ("contempt", "unknown", "NF")]


# --- votes for a split ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _read(path: str, modified_ns: int) -> Votes:
    """A votes file read once per version: 35,712 rows take a while to parse, on every evaluation."""
    return read_votes(Path(path))


def cached_votes(path: Path) -> Votes:
    """The votes in ``path`` (VotesError if it can't be read), parsed once per file version."""
    try:
        modified = path.stat().st_mtime_ns
    except OSError as err:
        raise VotesError(f"can't read the votes file {path}: {err.strerror or err}") from err
    return _read(str(path), modified)


def with_votes(evaluation: Evaluation, votes: Votes, root: Path) -> tuple[Evaluation, str]:
    """``evaluation`` with its images' vote counts, or unchanged and a one-line note saying why not.

    Images are matched by their path under ``root`` (the votes file's key); a dataset none of
    whose images match (a CSV, an upload, another dataset) simply has no second truth.
    """
    try:
        matched = match(votes, evaluation.sources, root, evaluation.split)
    except VotesError:
        return evaluation, (
            f"{evaluation.split}: no FER+ votes for these images (they exist for FER2013 in the Kaggle "
            "folder layout), so they are scored against their labels only"
        )
    return replace(evaluation, votes=matched.counts), ""


# --- scoring against the annotators --------------------------------------------------------------


def majority_score(
    y_true: np.ndarray, probabilities: np.ndarray, counts: np.ndarray
) -> dict[str, Any] | None:
    """:func:`~training.analysis.score` against the annotators' majority, on the images that have a
    clear one, plus ``images`` (all), ``with_votes``, and ``label_agreement`` (share of those
    images whose FER2013 label is the majority). None when no image has a clear majority."""
    major = majority(counts)
    clear = major != NO_MAJORITY
    if not clear.any():
        return None
    result = score(major[clear], np.asarray(probabilities)[clear])
    result["images"] = len(major)
    result["with_votes"] = int((~np.isnan(counts).any(axis=1)).sum())
    result["label_agreement"] = float((np.asarray(y_true)[clear] == major[clear]).mean())
    return result


def both_truths(evaluation: Evaluation) -> dict[str, Any]:
    """The evaluation's result against its labels, with :data:`MAJORITY_KEY` when it has votes."""
    result = evaluation.result()
    if evaluation.votes is not None:
        against = majority_score(evaluation.y_true, evaluation.probabilities, evaluation.votes)
        if against is not None:
            result[MAJORITY_KEY] = against
    return result


def under(result: Mapping[str, Any], truth: str) -> dict[str, Any] | None:
    """The part of ``result`` scored against ``truth``; None when it has none (no votes).

    A card's copy is checked like the label's (ResultError): cards are files people edit.
    """
    if truth == LABEL:
        return dict(result)
    against = result.get(MAJORITY_KEY)
    if against is None:
        return None
    try:
        return check_result(against)
    except ResultError as err:
        raise ResultError(f"its {MAJORITY_KEY} entry is unusable: {err}") from None


def majority_line(result: Mapping[str, Any]) -> str:
    """What the majority protocol covered, in a sentence (the CLI's heading, the page's caption)."""
    return (
        f"{result['n']:,} of {result['images']:,} images have a clear annotators' majority "
        f"({result['with_votes']:,} have votes); the FER2013 label agrees with it on "
        f"{result['label_agreement']:.1%} of them"
    )


def as_truth(evaluation: Evaluation, truth: str) -> Evaluation:
    """``evaluation`` with ``truth`` as every image's true class: for the annotators, only the
    images with a clear majority, which then carry it as ``y_true`` (so the matrix, its cells and
    the gallery all follow the chosen truth)."""
    if truth == LABEL or evaluation.votes is None:
        return evaluation
    major = majority(evaluation.votes)
    keep = np.flatnonzero(major != NO_MAJORITY)
    return replace(
        evaluation,
        y_true=major[keep],
        probabilities=evaluation.probabilities[keep],
        pixels=evaluation.pixels[keep],
        sources=tuple(evaluation.sources[i] for i in keep),
        votes=evaluation.votes[keep],
    )


# --- where the label and the annotators disagree -----------------------------------------------------


def disagreements(
    evaluation: Evaluation, label: int | None = None, annotators: int | None = None
) -> np.ndarray:
    """Indices of the images whose FER2013 label is not their clear annotators' majority, the
    clearest majorities first (ties in dataset order); ``label``/``annotators`` narrow them to
    one class on either side."""
    if evaluation.votes is None:
        return np.zeros(0, dtype=np.int64)
    major = majority(evaluation.votes)
    chosen = (major != NO_MAJORITY) & (major != evaluation.y_true)
    if label is not None:
        chosen &= evaluation.y_true == label
    if annotators is not None:
        chosen &= major == annotators
    indices = np.flatnonzero(chosen)
    votes = np.nan_to_num(evaluation.votes[indices])
    strength = votes.max(axis=1) / np.maximum(votes.sum(axis=1), 1)
    return indices[np.argsort(-strength, kind="stable")]


def sides(evaluation: Evaluation, indices: np.ndarray) -> dict[str, int]:
    """Among ``indices`` (disagreements), how often the model said the label, the annotators'
    majority, or neither: whether its "mistakes" there are the annotators' answer."""
    predicted = evaluation.y_pred[indices]
    major = majority(evaluation.votes[indices]) if len(indices) else np.zeros(0, dtype=np.int64)
    with_label = int((predicted == evaluation.y_true[indices]).sum())
    with_annotators = int((predicted == major).sum())
    return {
        "label": with_label,
        "annotators": with_annotators,
        "neither": len(indices) - with_label - with_annotators,
    }


def vote_bars(counts: np.ndarray) -> np.ndarray:
    """One image's ten vote counts as eight bars: the seven classes, then all the others."""
    filled = np.nan_to_num(np.asarray(counts, dtype=float))
    return np.append(filled[_SEVEN], filled[_OTHER].sum())


_FACE = 96
_ROW = 14
_NAME_W = 64
_BAR_W = 120
_INK = (31, 41, 55)
_BAR = (148, 163, 184)
_MAJOR = (8, 48, 107)
_LABEL_INK = (194, 65, 12)


def vote_card(pixels: np.ndarray, counts: np.ndarray, label: int, predicted: int) -> np.ndarray:
    """A face beside its vote bars (RGB): the annotators' top bar dark blue, the FER2013 label's
    row marked *label* in orange, the model's answer marked *model*.

    Drawn with OpenCV like the CLI's matrix, so the page needs no chart per face.
    """
    bars, label, predicted = vote_bars(counts), int(label), int(predicted)
    height = max(_FACE, _ROW * len(BAR_NAMES) + 8)
    card = np.full((height, _FACE + 12 + _NAME_W + _BAR_W + 96, 3), 255, dtype=np.uint8)
    face = cv2.resize(np.asarray(pixels, dtype=np.uint8), (_FACE, _FACE), interpolation=cv2.INTER_NEAREST)
    top = (height - _FACE) // 2
    card[top : top + _FACE, :_FACE] = face[..., None]
    most = max(float(bars.max()), 1.0)
    x0 = _FACE + 12
    for row, (name, count) in enumerate(zip(BAR_NAMES, bars, strict=True)):
        y = 4 + row * _ROW
        ink = _LABEL_INK if row == label else _INK
        cv2.putText(card, name, (x0, y + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.37, ink, 1, cv2.LINE_AA)
        width = round(_BAR_W * float(count) / most)
        colour = _MAJOR if count == bars.max() and count > 0 else _BAR
        if width:
            cv2.rectangle(card, (x0 + _NAME_W, y + 2), (x0 + _NAME_W + width, y + _ROW - 3), colour, -1)
        marks = [f"{count:g}"] + ["label"] * (row == label) + ["model"] * (row == predicted)
        cv2.putText(
            card, " ".join(marks), (x0 + _NAME_W + width + 4, y + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.37, ink, 1,
            cv2.LINE_AA,
        )  # fmt: skip
    return card


def card_caption(evaluation: Evaluation, index: int) -> str:
    """The words under a vote card: the label, the annotators' majority with its share, the model."""
    votes = np.nan_to_num(evaluation.votes[index])
    major = int(majority(evaluation.votes[index : index + 1])[0])
    return (
        f"label {CLASS_NAMES[evaluation.y_true[index]]} · annotators {CLASS_NAMES[major]} "
        f"{votes.max():g}/{votes.sum():g} · model {CLASS_NAMES[evaluation.y_pred[index]]} "
        f"{evaluation.confidence[index]:.0%}"
    )
