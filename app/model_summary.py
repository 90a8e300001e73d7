"""What the pages say about a model: which one it is, how good, and whether to be wary of it.

Home describes the active model whichever it is, and the Training page warns before a weak run
becomes it: a run near chance (always answering *happy* already scores about 25 % on FER2013) or
far below the shipped model once served the whole app with no word of it. Plain Python: cards
are JSON (app.model_card), so nothing here loads a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.emotions import DEFAULT_MODEL_PATH
from app.model_card import ModelCardError, read_card

#: Below this validation accuracy a model is barely better than always answering *happy* (~25 %).
NEAR_CHANCE = 0.30
#: A model this far (in accuracy) below the shipped one on PublicTest gets a warning.
FAR_BELOW = 0.10


@dataclass(frozen=True)
class ModelSummary:
    """A model as the pages describe it: ``metrics`` are (label, value, help) for st.metric."""

    title: str
    caption: str
    metrics: tuple[tuple[str, str, str], ...]
    warning: str | None


def _card(path: Path) -> dict[str, Any]:
    try:
        return read_card(path) or {}
    except ModelCardError:
        return {}


def shipped_accuracy(labels: str = "fer2013") -> float | None:
    """The shipped model's PublicTest accuracy against the truth a run with ``labels`` validates on.

    A run trained on FER+ votes is validated against the annotators' majority, a run on FER2013's
    labels (or a blend, whose targets keep the label on top) against the labels; the two truths
    differ by about 20 points for the same model, so each run meets the yardstick of its own truth.
    """
    result = _card(DEFAULT_MODEL_PATH).get("evaluation", {}).get("public_test") or {}
    if labels == "ferplus":
        result = result.get("ferplus_majority") or {}
    accuracy = result.get("accuracy")
    return float(accuracy) if isinstance(accuracy, int | float) else None


def validation_truth(labels: str) -> str:
    """What a run that learnt from ``labels`` (its config's ``labels``) is validated against."""
    return "the FER+ annotators' majority" if labels == "ferplus" else "FER2013's labels"


def quality_warning(accuracy: float | None, labels: str = "fer2013") -> str | None:
    """Why to be wary of a model with validation accuracy ``accuracy``, or None when it is fine.

    ``labels`` is what the run learnt and was validated against (its config's ``labels``).
    """
    if accuracy is None:
        return "Its accuracy is unknown (no finished epoch or evaluation): it may be no better than guessing."
    if accuracy < NEAR_CHANCE:
        return (
            f"Its validation accuracy is {accuracy:.1%}, near chance: with seven emotions a random guess "
            "scores 14 %, and answering *happy* to every face about 25 % on FER2013's PublicTest (on a "
            "folder with as many faces of each emotion, 14 %). Most emojis it shows will be wrong."
        )
    reference = shipped_accuracy(labels)
    if reference is not None and accuracy < reference - FAR_BELOW:
        truth = validation_truth(labels)
        return (
            f"Its validation accuracy ({accuracy:.1%}) is far below the shipped model's "
            f"({reference:.1%} on PublicTest against {truth}): expect many more wrong emojis."
        )
    return None


#: Home's name for the card's "test" split: the whole test folder, both halves together.
BOTH_HALVES = "Both tests"


def _split_metric(split: str, result: dict[str, Any]) -> tuple[str, str, str]:
    """One split's line: against the annotators' majority when scored so (the truth the shipped
    model learnt), with FER2013's labels in the help; else against the labels alone."""
    name = BOTH_HALVES if split == "test" else split.replace("_", " ").title()
    labels = (
        f"FER2013 labels: {result['accuracy']:.1%}, macro-F1 {result['macro_f1']:.3f} "
        f"on {result['n']:,} images"
    )
    # Read as "Test" between its two halves, the whole folder looked like a third test set.
    whole = "PublicTest and PrivateTest together. " if split == "test" else ""
    majority = result.get("ferplus_majority")
    if not isinstance(majority, dict) or "accuracy" not in majority:
        return name, f"{result['accuracy']:.1%}", whole + labels
    return (
        name,
        f"{majority['accuracy']:.1%}",
        f"{whole}Annotators' majority: macro-F1 {majority['macro_f1']:.3f} on {majority['n']:,} images. "
        f"{labels}.",
    )


def summarize(path: Path) -> ModelSummary:
    """The model at ``path`` (the shipped one, or a run's best.keras) for the pages to describe."""
    card = _card(path)
    arch = card.get("architecture", "?")
    if Path(path).resolve() == DEFAULT_MODEL_PATH.resolve():
        metrics = tuple(_split_metric(split, result) for split, result in card.get("evaluation", {}).items())
        return ModelSummary(
            "the shipped model",
            f"Architecture `{arch}` — accuracy on FER2013's held-out tests, against the ten FER+ "
            "annotators' majority where the card has it (hover for FER2013's own labels):",
            metrics,
            None,
        )
    training = card.get("training", {})
    accuracy = training.get("best_val_accuracy")
    accuracy = float(accuracy) if isinstance(accuracy, int | float) else None
    split = training.get("config", {}).get("validation_split", "public_test")
    where = "PublicTest" if split == "public_test" else "the whole test folder"
    metrics: tuple[tuple[str, str, str], ...] = ()
    if accuracy is not None:
        epochs = (
            f"best of {training.get('epochs_run', '?')} epoch(s), at epoch {training.get('best_epoch', '?')}"
        )
        metrics = (("Validation accuracy", f"{accuracy:.1%}", f"On {where}; {epochs}."),)
    return ModelSummary(
        f"run {Path(path).parent.name}'s model (trained here)",
        f"Architecture `{arch}`, trained on the Training page; validation accuracy on {where}:",
        metrics,
        quality_warning(accuracy, training.get("config", {}).get("labels", "fer2013")),
    )
