"""What the Analysis page lets a user pick (models, images) and what it shows for each, without Streamlit.

The page script lays out widgets; the choices behind them (which models exist, how a folder's
change is noticed, how a model card's training record reads) live here, where they can be
tested without a page and where they don't make the page script long.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import emotions
from app.emotions import CLASS_NAMES, REPO_ROOT
from app.model_summary import validation_truth
from app.runs import Run, active_model_path, list_runs, read_run
from training.analysis import Evaluation
from training.data import Dataset


@dataclass(frozen=True)
class ModelChoice:
    """A model the user can analyse; ``run`` when it is a training run's model (for its curves)."""

    label: str
    path: Path
    run: Run | None = None

    @property
    def key(self) -> tuple[str, int]:
        """The file's identity for caching: a retrained file at the same path gets new results."""
        return str(self.path.resolve()), self.path.stat().st_mtime_ns


@dataclass(frozen=True)
class SplitChoice:
    """The images to score: a FER2013 split (``card_key`` set), a user's folder or an uploaded zip.

    ``key`` identifies the images for the evaluation registry (path and a change stamp); ``load``
    reads them only when an evaluation really runs. ``votes``: whether to look for FER+ votes
    for them (not for an upload, whose paths mean nothing to the votes file).
    """

    label: str
    key: tuple[str, ...]
    load: Callable[[], Dataset]
    card_key: str | None = None
    votes: bool = True


@dataclass(frozen=True)
class Outcome:
    """The numbers shown for one model; ``evaluation`` only after a run over the images."""

    result: dict[str, Any]
    evaluation: Evaluation | None
    origin: str


def short_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it: shorter, and no server layout shown."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def model_choices() -> list[ModelChoice]:
    """Shipped default, the active model when it differs, then every run with a best.keras.

    The default's path is looked up at each call (tests point it at a copy).
    """
    default = emotions.DEFAULT_MODEL_PATH
    choices = [ModelChoice(f"Shipped default ({short_path(default)})", default)]
    active = active_model_path()
    if active.resolve() != default.resolve():
        choices.append(ModelChoice(f"Active model ({short_path(active)})", active, read_run(active.parent)))
    for run in list_runs():
        if run.best_model is None:
            continue
        accuracy = run.best_val_accuracy
        detail = f"{run.state}, {accuracy:.1%} val." if accuracy is not None else run.state
        choices.append(ModelChoice(f"Run {run.name} ({detail})", run.best_model, run))
    return choices


def source_stamp(path: Path) -> int:
    """When the images at ``path`` last changed: a file's mtime, or the newest mtime of a folder and
    its subfolders two levels down (adding or removing an image touches its class folder's mtime).

    Part of the evaluation's key, so an edited folder is evaluated anew. ``scandir`` tells folders
    from files without a stat per image, which keeps this cheap on every rerun.
    """
    try:
        stamps = [path.stat().st_mtime_ns]
    except OSError:
        return 0
    level = [path] if path.is_dir() else []
    for _ in range(2):
        below = []
        for folder in level:
            with os.scandir(folder) as entries:
                below += [Path(entry.path) for entry in entries if entry.is_dir()]
        stamps += [folder.stat().st_mtime_ns for folder in below]
        level = below
    return max(stamps)


def training_facts(card: Mapping[str, Any] | None) -> str | None:
    """What a model card says about its training, in a sentence; None when it says nothing.

    An ensemble's card (``export.members``, as the shipped model's) describes each member: its
    own ``training`` is the first member's alone.
    """
    members = ((card or {}).get("export") or {}).get("members")
    if isinstance(members, list) and len(members) > 1 and all(isinstance(m, dict) for m in members):
        described = [
            f"`{(m.get('training') or {}).get('config', {}).get('run_name', number)}` "
            f"({', '.join(_member_facts(m.get('training') or {}, m.get('architecture', '?')))})"
            for number, m in enumerate(members, start=1)
        ]
        return f"{len(members)} models averaged: " + " and ".join(described)
    training = (card or {}).get("training") or {}
    if not training:
        return None
    return ", ".join(_member_facts(training, (card or {}).get("architecture", "?")))


def _member_facts(training: Mapping[str, Any], architecture: str) -> list[str]:
    """One trained model's facts: architecture, epochs, best validation accuracy (against the
    truth it learnt) and time."""
    config = training.get("config") or {}
    facts = [f"architecture `{architecture}`"]
    if "epochs_run" in training:
        start = f", fine-tuned from `{config['init_from']}` as it was then" if config.get("init_from") else ""
        facts.append(f"{training['epochs_run']} epochs{start}")
    if isinstance(training.get("best_val_accuracy"), int | float):
        truth = validation_truth(config.get("labels", "fer2013"))
        facts.append(f"best validation accuracy {training['best_val_accuracy']:.1%} against {truth}")
    if isinstance(training.get("duration_s"), int | float):
        facts.append(f"{training['duration_s'] / 60:.0f} min of training")
    return facts


def cell_title(true: int | None, predicted: int | None) -> str:
    """The heading of a gallery: which cell, row or column of the matrix it shows."""
    if true is None and predicted is None:
        return "Every class, predicted as another"
    if predicted is None:
        return f"True {CLASS_NAMES[true]}, predicted as another class"
    if true is None:
        return f"Predicted {CLASS_NAMES[predicted]}, truly another class"
    return f"True {CLASS_NAMES[true]} → predicted {CLASS_NAMES[predicted]}"
