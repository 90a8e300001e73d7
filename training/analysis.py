"""What a model gets right and wrong on a split: the logic behind the Analysis page and the evaluate CLI.

No Streamlit and no Keras here: a model comes in as a ``predict`` callable (crops -> probabilities,
e.g. :class:`app.classifier.EmotionClassifier`), so the page, the CLI and the tests share every
number and table without importing a UI or an ML framework.

A *result* is the dict a model card stores per split under ``evaluation`` (see
:mod:`app.model_card`): accuracy, macro_f1, balanced_accuracy, n, per_class, confusion. It is all
the page needs to draw the metrics, the table and the matrix, so a card's result shows instantly.
An :class:`Evaluation` is what a fresh run over the images adds: every image's label, probabilities
and pixels, which is what it takes to show the images behind a cell of the matrix.

Per-class metrics come from scikit-learn only (:func:`score`); nothing here recomputes them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from sklearn import metrics

from app.emotions import CLASS_NAMES, NUM_CLASSES
from training.archive import extract_dataset_zip
from training.data import Dataset, DatasetError, load_split

#: How the page and the PNG name the FER2013 splits.
SPLIT_LABELS = {
    "private_test": "PrivateTest",
    "public_test": "PublicTest",
    "test": "whole test folder",
    "train": "train",
}
#: Images per call of the model. TensorFlow's allocator for its oneDNN kernels keeps a pool sized
#: for the largest batch they ever ran, for the life of the process: an evaluation in batches of 256
#: left ~250 MB in the server, one in batches of 32 leaves ~30 MB, for ~5 % more CPU time per image
#: (issue 23, item 20).
PREDICT_BATCH = 32
RESULT_KEYS = ("accuracy", "macro_f1", "balanced_accuracy", "n", "per_class", "confusion")
METRIC_KEYS = ("precision", "recall", "f1")

Predict = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]


class ResultError(ValueError):
    """A stored result (a model card's ``evaluation`` entry) that is not shaped like :func:`score`'s."""


# --- metrics -------------------------------------------------------------------------------------


def score(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """The card's ``evaluation`` entry for one split, from true labels and predicted probabilities.

    Labels are always all seven classes, so every result has the same table rows and a 7×7
    matrix even when a class is never predicted.
    """
    labels = list(range(NUM_CLASSES))
    y_true = np.asarray(y_true)
    y_pred = np.asarray(probabilities).argmax(axis=1)
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "macro_f1": float(metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(y_true, y_pred)),
        "n": len(y_true),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(CLASS_NAMES, precision, recall, f1, support, strict=True)
        },
        "confusion": metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def check_result(result: Any) -> dict[str, Any]:
    """``result`` itself when it has the shape :func:`score` gives, else ResultError saying what is off.

    Cards are files people copy and edit; a page that trusted them blindly would crash on one.
    """
    if not isinstance(result, Mapping):
        raise ResultError(f"expected an object with {', '.join(RESULT_KEYS)}, found {type(result).__name__}")
    missing = [key for key in RESULT_KEYS if key not in result]
    if missing:
        raise ResultError(f"missing {', '.join(missing)}")
    confusion = result["confusion"]
    try:
        matrix = np.array(confusion, dtype=float)
    except (TypeError, ValueError):
        matrix = np.zeros(0)
    if matrix.shape != (NUM_CLASSES, NUM_CLASSES) or (matrix < 0).any():
        raise ResultError(f"confusion must be {NUM_CLASSES}×{NUM_CLASSES} non-negative counts")
    per_class = result["per_class"]
    if not isinstance(per_class, Mapping) or list(per_class) != list(CLASS_NAMES):
        raise ResultError(f"per_class must list exactly {', '.join(CLASS_NAMES)} in that order")
    for name, row in per_class.items():
        if not isinstance(row, Mapping) or any(
            not isinstance(row.get(key), int | float) for key in (*METRIC_KEYS, "support")
        ):
            raise ResultError(f"per_class.{name} needs numbers for precision, recall, f1 and support")
    return dict(result)


def card_result(card: Mapping[str, Any] | None, split: str) -> dict[str, Any] | None:
    """The result a model card holds for ``split``, or None when it has none; ResultError if malformed."""
    evaluation = (card or {}).get("evaluation")
    if not isinstance(evaluation, Mapping) or split not in evaluation:
        return None
    try:
        return check_result(evaluation[split])
    except ResultError as err:
        raise ResultError(f"the model card's evaluation.{split} is unusable: {err}") from None


# --- loading a split and predicting it ---------------------------------------------------------------


def load_folder(path: str | os.PathLike[str], *, limit_per_class: int | None = None) -> Dataset:
    """A folder the user points at: a dataset root with ``test/``, or one split's ``<class>/`` folders.

    The rules of :func:`training.data.load_split` apply (all seven class folders, no unknown ones,
    at least one image per class), so a folder is scored exactly like FER2013's own test folder.
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DatasetError(f"no folder at {path}")
    if (path / "test").is_dir():
        return replace(load_split(path, "test", limit_per_class=limit_per_class), split=str(path))
    subfolders = [entry.name for entry in os.scandir(path) if entry.is_dir()]
    if not subfolders:
        raise DatasetError(
            f"{path} has no class folders: expected {', '.join(f'{n}/' for n in CLASS_NAMES)} "
            "with images (or a dataset root with test/)"
        )
    return _load_class_folders(path, limit_per_class)


def _load_class_folders(path: Path, limit_per_class: int | None) -> Dataset:
    """``path/<class>/*`` as one split, read by load_split itself so no rule can differ.

    load_split reads ``root/test/<class>/``; a temporary root whose ``test`` is a link to ``path``
    gives it that layout whatever the folder is called. Paths in the result and in error messages
    are turned back into ``path``.
    """
    with tempfile.TemporaryDirectory(prefix="emojify-split-") as tmp:
        link = Path(tmp) / "test"
        link.symlink_to(path.resolve(), target_is_directory=True)

        def real(text: str) -> str:
            return text.replace(str(link), str(path))

        try:
            dataset = load_split(tmp, "test", limit_per_class=limit_per_class)
        except DatasetError as err:
            raise DatasetError(real(str(err))) from None
    return _renamed(dataset, real, split=str(path), root=path)


def _renamed(dataset: Dataset, rename: Callable[[str], str], *, split: str, root: Path) -> Dataset:
    """``dataset`` with every file path it lists (sources, skipped, ...) passed through ``rename``."""
    lists = {
        name: tuple(map(rename, getattr(dataset, name)))
        for name in ("sources", "skipped", "ignored")  # "ignored" only where training.data has it
        if hasattr(dataset, name)
    }
    return replace(dataset, split=split, root=root, note=rename(dataset.note), **lists)


def load_zip(source: bytes | Path, name: str, *, limit_per_class: int | None = None) -> Dataset:
    """A zipped folder (Kaggle layout, or one split's ``<class>/`` folders) as one split.

    Unpacked with :func:`training.archive.extract_dataset_zip` (which refuses unsafe entries) into
    a temporary folder that is gone once the pixels are read: an evaluation keeps the pixels, so
    nothing of an upload stays on the server. Sources and messages name ``name:inner/path``
    instead of the temporary folder.
    """
    with tempfile.TemporaryDirectory(prefix="emojify-zip-") as tmp:
        unpacked = Path(tmp).resolve()

        def inside(text: str) -> str:
            return text.replace(f"{unpacked}/", f"{name}:").replace(str(unpacked), f"{name}:")

        try:
            dataset = load_folder(extract_dataset_zip(source, unpacked), limit_per_class=limit_per_class)
        except DatasetError as err:
            raise DatasetError(inside(str(err))) from None
    return _renamed(dataset, inside, split=name, root=Path(name))


@dataclass(frozen=True)
class Evaluation:
    """Every image of one split with what the model said about it.

    ``pixels`` (uint8, N×48×48) are kept so the page can show the images behind a cell without
    going back to files that may be gone (an extracted upload, a CSV row). ``votes`` are the FER+
    vote counts of each image (N×10, NaN rows where none) when the images have them: the second
    truth of :mod:`training.ground_truth`.
    """

    split: str
    y_true: np.ndarray
    probabilities: np.ndarray
    pixels: np.ndarray
    sources: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    note: str = ""
    votes: np.ndarray | None = None

    @property
    def y_pred(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def confidence(self) -> np.ndarray:
        """The probability of the predicted class, per image."""
        return self.probabilities.max(axis=1)

    def result(self) -> dict[str, Any]:
        return score(self.y_true, self.probabilities)


def predict_dataset(
    predict: Predict,
    dataset: Dataset,
    *,
    batch_size: int = PREDICT_BATCH,
    on_progress: Progress | None = None,
) -> Evaluation:
    """Run ``predict`` over ``dataset`` in batches, reporting ``(done, total)`` after each batch."""
    total = len(dataset)
    chunks = []
    for start in range(0, total, batch_size):
        chunks.append(np.asarray(predict(dataset.x[start : start + batch_size]), dtype=np.float32))
        if on_progress is not None:
            on_progress(min(start + batch_size, total), total)
    probabilities = np.concatenate(chunks) if chunks else np.zeros((0, NUM_CLASSES), np.float32)
    if probabilities.shape != (total, NUM_CLASSES):
        raise ValueError(f"predict returned {probabilities.shape}, expected ({total}, {NUM_CLASSES})")
    return Evaluation(
        split=dataset.split,
        y_true=np.asarray(dataset.y),
        probabilities=probabilities,
        pixels=dataset.x[..., 0].astype(np.uint8),
        sources=dataset.sources,
        skipped=dataset.skipped,
        note=dataset.note,
    )


# --- tables --------------------------------------------------------------------------------------


def per_class_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """One row per class: precision, recall, F1, support; the page's table and the CLI's CSV."""
    rows = [
        {"class": name, **{k: row[k] for k in (*METRIC_KEYS, "support")}}
        for name, row in result["per_class"].items()
    ]
    frame = pd.DataFrame(rows, columns=["class", *METRIC_KEYS, "support"])
    return frame.astype({"support": int})


def per_class_csv(result: Mapping[str, Any]) -> str:
    """:func:`per_class_frame` as CSV text, metrics to 4 decimals."""
    return per_class_frame(result).to_csv(index=False, float_format="%.4f", lineterminator="\n")


def confusion_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """The matrix in long form (one row per cell): true, predicted, count, share of the true class."""
    matrix = np.asarray(result["confusion"], dtype=np.int64)
    row_totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_totals, out=np.zeros(matrix.shape), where=row_totals > 0)
    return pd.DataFrame(
        [
            {"true": t, "predicted": p, "count": int(matrix[i, j]), "share": float(shares[i, j])}
            for i, t in enumerate(CLASS_NAMES)
            for j, p in enumerate(CLASS_NAMES)
        ]
    )


def compare_frame(first: Mapping[str, Any], second: Mapping[str, Any]) -> pd.DataFrame:
    """Per class: precision, recall and F1 of both results and second − first (what changed)."""
    rows = []
    for name in CLASS_NAMES:
        a, b = first["per_class"][name], second["per_class"][name]
        row: dict[str, Any] = {"class": name, "support": int(a["support"])}
        for key in METRIC_KEYS:
            row[f"{key} A"] = float(a[key])
            row[f"{key} B"] = float(b[key])
            row[f"Δ {key}"] = float(b[key]) - float(a[key])
        rows.append(row)
    return pd.DataFrame(rows)


def summary_deltas(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, float]:
    """second − first of accuracy, macro-F1 and balanced accuracy."""
    return {
        key: float(second[key]) - float(first[key]) for key in ("accuracy", "macro_f1", "balanced_accuracy")
    }


# --- the images behind the matrix -----------------------------------------------------------------


def cell_examples(
    evaluation: Evaluation, true: int | None = None, predicted: int | None = None, *, limit: int | None = None
) -> np.ndarray:
    """Indices of the images in one cell (or row/column), most confident first.

    ``true``/``predicted`` None means "any class"; a row or column alone, or both None, holds only
    the mistakes, since those are what a user browses the matrix for. A diagonal cell holds the
    correct ones. Ties keep dataset order, so the result is deterministic.
    """
    y_true, y_pred = evaluation.y_true, evaluation.y_pred
    chosen = np.ones(len(y_true), dtype=bool)
    if true is not None:
        chosen &= y_true == true
    if predicted is not None:
        chosen &= y_pred == predicted
    if true is None or predicted is None:
        chosen &= y_true != y_pred
    indices = np.flatnonzero(chosen)
    order = np.argsort(-evaluation.confidence[indices], kind="stable")
    return indices[order][:limit]


# --- the matrix as a picture (CLI --out) -------------------------------------------------------------

_CELL = 84
_LEFT = 120
_TOP = 110
_BOTTOM = 44
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_INK = (30, 30, 30)
#: Light to dark blue (BGR), the same ramp the page's heatmap uses.
_LOW = np.array([251, 244, 239], dtype=float)
_HIGH = np.array([107, 48, 8], dtype=float)


def confusion_png(result: Mapping[str, Any], title: str = "") -> bytes:
    """The confusion matrix as a PNG: counts in the cells, colour = share of the true class.

    Drawn with OpenCV so the CLI needs no plotting library; readable at its natural size.
    """
    matrix = np.asarray(result["confusion"], dtype=np.int64)
    shares = confusion_frame(result)["share"].to_numpy().reshape(matrix.shape)
    size = _CELL * NUM_CLASSES
    image = np.full((_TOP + size + _BOTTOM, _LEFT + size + 16, 3), 255, dtype=np.uint8)
    heading = title or "Confusion matrix"
    subtitle = (
        f"n={result['n']}  accuracy {result['accuracy']:.3f}  macro-F1 {result['macro_f1']:.3f}  "
        f"balanced {result['balanced_accuracy']:.3f}"
    )
    _text(image, heading, (12, 26), 0.7, 2)
    _text(image, subtitle, (12, 50), 0.5, 1)
    _text(image, "predicted ->", (_LEFT, _TOP - 30), 0.45, 1)
    _text(image, "true", (12, _TOP - 10), 0.45, 1)
    for j, name in enumerate(CLASS_NAMES):
        _text(image, name, (_LEFT + j * _CELL + 6, _TOP - 8), 0.45, 1)
    for i, name in enumerate(CLASS_NAMES):
        y0 = _TOP + i * _CELL
        _text(image, name, (12, y0 + _CELL // 2 + 6), 0.5, 1)
        for j in range(NUM_CLASSES):
            x0 = _LEFT + j * _CELL
            share = float(shares[i, j])
            colour = tuple(int(c) for c in _LOW + (_HIGH - _LOW) * share)
            cv2.rectangle(image, (x0, y0), (x0 + _CELL - 2, y0 + _CELL - 2), colour, thickness=-1)
            ink = (255, 255, 255) if share > 0.5 else _INK
            count = str(int(matrix[i, j]))
            _text(image, count, (x0 + 8, y0 + _CELL // 2 - 2), 0.6, 2 if i == j else 1, ink)
            _text(image, f"{share:.0%}", (x0 + 8, y0 + _CELL // 2 + 20), 0.42, 1, ink)
    _text(image, "colour = share of the true class (row)", (12, _TOP + size + 28), 0.45, 1)
    ok, png = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR image
        raise RuntimeError("could not encode the confusion matrix as PNG")
    return png.tobytes()


def _text(
    image: np.ndarray,
    text: str,
    origin: tuple[int, int],
    scale: float,
    thickness: int,
    colour: tuple[int, int, int] = _INK,
) -> None:
    cv2.putText(image, text, origin, _FONT, scale, colour, thickness, cv2.LINE_AA)


def file_stem(split: str) -> str:
    """A safe file-name stem for a split name or folder path (``--out`` files are named after it)."""
    name = split if split in SPLIT_LABELS else Path(split).name
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in name).strip("_")
    return cleaned or "folder"
