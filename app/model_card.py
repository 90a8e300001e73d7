"""Model cards: the JSON file beside a saved model that says what it is and how good it is.

A card lives next to its model with the same stem (``best.keras`` -> ``best.json``), so copying
both files moves a model with its story. The trainer writes the ``architecture``, ``classes``,
``input`` and ``training`` sections; ``training.evaluate --card`` adds ``evaluation`` per split and
keeps everything else. This module imports no ML framework, so the app can show a card without
loading Keras.

Card fields::

    architecture  registry name of the model (model.architectures.ARCHITECTURES)
    classes       output order of the softmax
    input         {"shape": [48, 48, 1], "dtype": "float32", "range": [0, 255], "color": "grayscale"}
    training      {"config": TrainConfig dict, "dataset": {...}, "epochs_run", "best_epoch",
                   "best_val_accuracy", "duration_s", "images_per_s", "keras_version", "backend"}
    evaluation    {split: {"accuracy", "macro_f1", "balanced_accuracy", "n",
                           "per_class": {class: {"precision", "recall", "f1", "support"}},
                           "confusion": rows = true class, columns = predicted class}}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.emotions import CLASS_NAMES, INPUT_SHAPE


class ModelCardError(ValueError):
    """A card file exists but cannot be used (not JSON, or not a JSON object)."""


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, move it over ``path``.

    ``os.replace`` within one folder is atomic, so a reader (the app, a Training page polling a
    running job) sees the old file or the new one, never half of one. The temporary name keeps the
    suffix because Keras picks the save format from it. On failure the temporary file is removed
    and ``path`` is left untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def card_path(model_path: str | os.PathLike[str]) -> Path:
    """Where the card of ``model_path`` lives: same folder and stem, suffix ``.json``."""
    return Path(model_path).with_suffix(".json")


def base_card(architecture: str) -> dict[str, Any]:
    """The fields every card has, whatever wrote it: what the model is and what it expects."""
    return {
        "architecture": architecture,
        "classes": list(CLASS_NAMES),
        "input": {"shape": list(INPUT_SHAPE), "dtype": "float32", "range": [0, 255], "color": "grayscale"},
    }


def read_card(model_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The card of ``model_path``, or None when it has none.

    A card that exists but is broken raises ModelCardError: silently treating it as absent would
    let ``evaluate --card`` overwrite the training record.
    """
    path = card_path(model_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        card = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelCardError(f"model card {path} is not valid JSON: {err}") from err
    if not isinstance(card, dict):
        raise ModelCardError(f"model card {path} must hold a JSON object, found {type(card).__name__}")
    return card


def write_card(model_path: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Write ``card`` beside ``model_path`` atomically and return the card's path."""
    path = card_path(model_path)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return path


#: An absolute POSIX or Windows path's folders (the last part, a file or folder name, is kept).
#: Not after a letter, digit, ``:``, ``/``, ``.`` or ``~``, so URLs and relative paths stay whole.
_FOLDERS = re.compile(r"(?<![\w:/.~-])/(?:[^/\s'\",;()]+/)+|\b[A-Za-z]:\\(?:[^\\\s'\",;()]+\\)+")


def visitor_view(card: Any) -> Any:
    """``card`` (or any JSON-like part of one) as a public deployment's visitors may see it.

    Cards record where things were on the machine that made them: ``data_dir``, ``runs_dir``,
    dataset roots, a member's ``file``, paths inside notes. Visitors must not learn the server's
    layout, so every absolute path keeps only its last part behind ``…/`` (``/srv/data/fer2013``
    becomes ``…/fer2013``), wherever it appears. The card itself is not changed.
    """
    if isinstance(card, str):
        return _FOLDERS.sub("…/", card)
    if isinstance(card, dict):
        return {key: visitor_view(value) for key, value in card.items()}
    if isinstance(card, list | tuple):
        return [visitor_view(value) for value in card]
    return card
