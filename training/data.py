"""Load FER2013 into numpy arrays, from the Kaggle folder layout or the original ``fer2013.csv``.

Folder layout (the Kaggle "FER-2013" images)::

    root/train/<class>/Training_*.jpg
    root/test/<class>/PublicTest_*.jpg, PrivateTest_*.jpg

Splits: ``train`` = train/; ``public_test`` and ``private_test`` = the files of test/ with that
name prefix; ``test`` = all of test/. Rule for a test/ folder without any PublicTest_/PrivateTest_
names (a re-packed dataset): ``public_test`` and ``private_test`` are both the whole test folder,
and ``Dataset.note`` says so, because validating and reporting on one set is better than refusing
to train; the note reaches the CLI output and the model card.

CSV (Kaggle's original ``fer2013.csv``, columns ``emotion,pixels,Usage``): Usage Training /
PublicTest / PrivateTest maps to train / public_test / private_test, ``test`` is both test parts,
and its emotion codes (0=Angry 1=Disgust 2=Fear 3=Happy 4=Sad 5=Surprise 6=Neutral) are mapped to
CLASS_NAMES order.

Every split comes back as float32 pixels 0..255 shaped ``(N, *INPUT_SHAPE)`` and int labels in
CLASS_NAMES order, i.e. exactly what the models take. Anything wrong with the layout raises
DatasetError naming the problem before a training run starts; single unreadable images are
skipped and listed in ``Dataset.skipped`` instead, since one bad JPEG should not cost a run.
Files in class folders that are not images by name (notes, CSVs) are left out and listed in
``Dataset.ignored``, so the run record says they were seen; hidden files (``.DS_Store``) are not
even listed. A class that ends up without a single readable image is an error, not a silently
six-class training.

:func:`check_dataset` runs every check that needs no decoding (the folders, the class folders,
empty classes, the CSV's header), in a fraction of a second even for all of FER2013, so the
Training page can refuse a bad dataset the moment Start is pressed.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.emotions import CLASS_NAMES, IMAGE_SIZE, INPUT_SHAPE, NUM_CLASSES

SPLITS = ("train", "public_test", "private_test", "test")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".pgm"})

#: Folder and file-name prefix of each split in the folder layout ("" = every file).
_FOLDER_SPLITS = {
    "train": ("train", ""),
    "public_test": ("test", "PublicTest_"),
    "private_test": ("test", "PrivateTest_"),
    "test": ("test", ""),
}
#: Kaggle CSV emotion codes, in code order.
CSV_EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
_CSV_LABELS = np.array([CLASS_NAMES.index(name) for name in CSV_EMOTIONS])
#: Which CSV Usage values make up each split.
_CSV_SPLITS = {
    "train": ("Training",),
    "public_test": ("PublicTest",),
    "private_test": ("PrivateTest",),
    "test": ("PublicTest", "PrivateTest"),
}
CSV_COLUMNS = ("emotion", "pixels", "Usage")
# Decoding releases the GIL, so a few threads per core keep every core busy.
_DECODE_WORKERS = 4 * (os.cpu_count() or 1)


class DatasetError(ValueError):
    """The dataset cannot be used as given; the message says what is wrong and where."""


@dataclass(frozen=True)
class Dataset:
    """One split, ready for ``model.fit``/``model.predict``.

    ``root`` is the dataset folder or CSV file; ``sources`` names where each image came from (a
    file path, or ``csv:line N``), so misclassifications can be traced back; ``skipped`` lists
    unreadable images that were left out; ``note`` explains a fallback rule, if one was applied.
    """

    x: np.ndarray
    y: np.ndarray
    sources: tuple[str, ...]
    split: str
    root: Path
    skipped: tuple[str, ...] = ()
    note: str = ""
    ignored: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.y)

    def class_counts(self) -> dict[str, int]:
        """Images per class, in CLASS_NAMES order."""
        return dict(zip(CLASS_NAMES, np.bincount(self.y, minlength=NUM_CLASSES).tolist(), strict=True))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for run records and model cards."""
        return {
            "root": str(self.root),
            "split": self.split,
            "n": len(self),
            "class_counts": self.class_counts(),
            "skipped": len(self.skipped),
            "ignored": len(self.ignored),
            "note": self.note,
        }


def load_split(root: str | os.PathLike[str], split: str, *, limit_per_class: int | None = None) -> Dataset:
    """Load ``split`` of the dataset at ``root`` (a Kaggle-layout folder or a ``.csv`` file).

    ``limit_per_class`` keeps the first K images of each class (by file name, or by CSV row), a
    small deterministic slice for tests and quick trials.
    """
    root, is_csv = _dataset_source(root, [split])
    if is_csv:
        return _load_csv(root, split, limit_per_class)
    return _load_folder(root, split, limit_per_class)


def _dataset_source(root: str | os.PathLike[str], splits: Sequence[str]) -> tuple[Path, bool]:
    """``root`` as a Path and whether it is a CSV file, after checking it and the split names."""
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset path does not exist: {root}")
    if root.is_file() and root.suffix.lower() == ".csv":
        return root, True
    if not root.is_dir():
        raise DatasetError(f"{root} is neither a dataset folder (train/, test/) nor a .csv file")
    return root, False


# --- folder layout -----------------------------------------------------------------------------


def check_dataset(root: str | os.PathLike[str], splits: Sequence[str] = ("train", "public_test")) -> None:
    """Raise DatasetError for what is wrong with ``splits`` of the dataset at ``root``, without decoding.

    Folders get every layout check of :func:`load_split`; a CSV gets its header and first row
    checked (the rows themselves are only read by the real load, seconds later).
    """
    root, is_csv = _dataset_source(root, splits)
    if is_csv:
        _check_csv(root)
        return
    for split in splits:
        _folder_plan(root, split, None)


@dataclass(frozen=True)
class _Plan:
    """The files one split of a folder will be read from, before any decoding."""

    paths: list[Path]
    labels: np.ndarray
    note: str
    ignored: tuple[str, ...]


def _load_folder(root: Path, split: str, limit_per_class: int | None) -> Dataset:
    plan = _folder_plan(root, split, limit_per_class)
    dataset = _decode(plan.paths, plan.labels, split, root, plan.note)
    unreadable = [
        name
        for label, name in enumerate(CLASS_NAMES)
        if label in plan.labels and not np.any(dataset.y == label)
    ]
    if unreadable:
        raise DatasetError(
            f"split {split} has no readable images of class(es): {', '.join(unreadable)} "
            f"({len(dataset.skipped)} unreadable image(s), e.g. {dataset.skipped[0]})"
        )
    return replace(dataset, ignored=plan.ignored)


def _folder_plan(root: Path, split: str, limit_per_class: int | None) -> _Plan:
    """Which files make up ``split`` and their labels, after every check that needs no decoding."""
    folder_name, prefix = _FOLDER_SPLITS[split]
    files, others = _scan_class_folders(root, folder_name)
    note = ""
    if prefix and not any(name.startswith(prefix) for names in files.values() for name in names):
        note = (
            f"{root / folder_name} has no PublicTest_/PrivateTest_ file names, "
            f"so {split} is the whole {folder_name}/ folder"
        )
        prefix = ""
    paths: list[Path] = []
    labels: list[int] = []
    empty: list[str] = []
    for label, name in enumerate(CLASS_NAMES):
        chosen = [f for f in files[name] if f.startswith(prefix)][:limit_per_class]
        if not chosen:
            empty.append(name)
        paths += [root / folder_name / name / f for f in chosen]
        labels += [label] * len(chosen)
    if not paths:
        raise DatasetError(f"no images for split {split} in {root / folder_name}{_others_hint(others)}")
    if empty:
        only_others = {name: others[name] for name in empty if others[name]}
        raise DatasetError(
            f"split {split} has no images of class(es): {', '.join(empty)} in {root / folder_name}"
            f"{_others_hint(only_others)}"
        )
    ignored = tuple(str(root / folder_name / name / f) for name in CLASS_NAMES for f in others[name])
    return _Plan(paths, np.array(labels), note, ignored)


def _others_hint(others: dict[str, list[str]]) -> str:
    """' (found only non-image files, e.g. happy/notes.txt)' when there are any, else ''."""
    examples = [f"{name}/{f}" for name, names in others.items() for f in names]
    if not examples:
        return ""
    suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
    return f" (found only non-image files, e.g. {examples[0]}; images must end in {suffixes})"


def _class_files(root: Path, folder_name: str) -> dict[str, list[str]]:
    """Sorted image file names of each class folder, after checking the folders are exactly CLASS_NAMES."""
    return _scan_class_folders(root, folder_name)[0]


def _scan_class_folders(root: Path, folder_name: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per class: the sorted image file names and the sorted other (non-hidden) file names.

    Checks first that the class folders are exactly CLASS_NAMES.
    """
    folder = root / folder_name
    if not folder.is_dir():
        raise DatasetError(
            f"{root} has no {folder_name}/ folder (expected the Kaggle layout train/<class>/, test/<class>/)"
        )
    found = {entry.name for entry in os.scandir(folder) if entry.is_dir()}
    missing = [name for name in CLASS_NAMES if name not in found]
    if missing:
        raise DatasetError(f"{folder} is missing class folder(s): {', '.join(missing)}")
    extra = sorted(found - set(CLASS_NAMES))
    if extra:
        expected = ", ".join(CLASS_NAMES)
        raise DatasetError(
            f"{folder} has unknown class folder(s): {', '.join(extra)}; expected only {expected}"
        )
    images: dict[str, list[str]] = {}
    others: dict[str, list[str]] = {}
    for name in CLASS_NAMES:
        images[name], others[name] = _split_names(folder / name)
    return images, others


def _split_names(folder: Path) -> tuple[list[str], list[str]]:
    """The files in ``folder``: sorted image names, and sorted other names (hidden files left out)."""
    images: list[str] = []
    others: list[str] = []
    for entry in os.scandir(folder):
        if not entry.is_file():
            continue
        if Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
            images.append(entry.name)
        elif not entry.name.startswith("."):
            others.append(entry.name)
    return sorted(images), sorted(others)


def _read_gray(path: Path) -> np.ndarray | None:
    """The image at ``path`` as a 48x48 uint8 array, or None when it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        return None
    if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
        image = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return image


def _decode(paths: Sequence[Path], labels: np.ndarray, split: str, root: Path, note: str) -> Dataset:
    """Decode all ``paths`` in parallel into a Dataset, leaving out (and listing) unreadable ones."""
    with ThreadPoolExecutor(_DECODE_WORKERS) as pool:
        images = list(pool.map(_read_gray, paths))
    ok = np.array([image is not None for image in images], dtype=bool)
    if not ok.any():
        raise DatasetError(f"none of the {len(paths)} images for split {split} in {root} could be decoded")
    pixels = np.stack([image for image in images if image is not None])
    return Dataset(
        x=_as_model_input(pixels),
        y=labels[ok],
        sources=tuple(str(p) for p, good in zip(paths, ok, strict=True) if good),
        split=split,
        root=root,
        skipped=tuple(str(p) for p, good in zip(paths, ok, strict=True) if not good),
        note=note,
    )


def _as_model_input(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``(N, 48, 48)`` -> float32 ``(N, 48, 48, 1)`` in 0..255, the models' input contract."""
    return pixels.astype(np.float32).reshape((len(pixels), *INPUT_SHAPE))


# --- fer2013.csv ---------------------------------------------------------------------------------


def _load_csv(path: Path, split: str, limit_per_class: int | None) -> Dataset:
    usages = _CSV_SPLITS[split]
    rows: list[np.ndarray] = []
    labels: list[int] = []
    sources: list[str] = []
    per_class = np.zeros(NUM_CLASSES, dtype=int)
    with _csv_reader(path) as reader:
        try:
            for row in reader:
                if row["Usage"] not in usages:
                    continue
                where = f"{path} line {reader.line_num}"
                label = _csv_label(row["emotion"], where)
                if limit_per_class is not None and per_class[label] >= limit_per_class:
                    continue
                rows.append(_csv_pixels(row["pixels"], where))
                labels.append(label)
                sources.append(f"csv:line {reader.line_num}")
                per_class[label] += 1
        except (UnicodeDecodeError, csv.Error) as err:
            raise DatasetError(f"{path} line {reader.line_num + 1} is not CSV text: {err}") from None
    if not rows:
        raise DatasetError(f"{path} has no rows with Usage {' or '.join(usages)} (split {split})")
    empty = [name for name, count in zip(CLASS_NAMES, per_class, strict=True) if not count]
    if empty:
        raise DatasetError(f"split {split} has no images of class(es): {', '.join(empty)} in {path}")
    return Dataset(
        x=_as_model_input(np.stack(rows)),
        y=np.array(labels),
        sources=tuple(sources),
        split=split,
        root=path,
    )


@contextmanager
def _csv_reader(path: Path) -> Iterator[csv.DictReader]:
    """A DictReader over ``path`` whose header has been checked against CSV_COLUMNS."""
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        try:
            fieldnames = reader.fieldnames or ()
        except (UnicodeDecodeError, csv.Error) as err:
            raise DatasetError(f"{path} is not a CSV text file ({err})") from None
        missing = [c for c in CSV_COLUMNS if c not in fieldnames]
        if missing:
            raise DatasetError(
                f"{path} lacks column(s) {', '.join(missing)}: expected {','.join(CSV_COLUMNS)}, "
                f"found {','.join(fieldnames) or 'no header'}"
            )
        yield reader


def _check_csv(path: Path) -> None:
    """The header and the first data row of a CSV, the quick part of what _load_csv checks."""
    with _csv_reader(path) as reader:
        try:
            row = next(reader, None)
        except (UnicodeDecodeError, csv.Error) as err:
            raise DatasetError(f"{path} line 2 is not CSV text: {err}") from None
        if row is None:
            raise DatasetError(f"{path} has a header but no rows")
        where = f"{path} line {reader.line_num}"
        _csv_label(row["emotion"], where)
        _csv_pixels(row["pixels"], where)


def _csv_label(text: str | None, where: str) -> int:
    """Our class index for a Kaggle emotion code."""
    try:
        code = int(text or "")
    except ValueError:
        code = -1
    if not 0 <= code < len(CSV_EMOTIONS):
        raise DatasetError(f"{where}: emotion must be an integer 0..{len(CSV_EMOTIONS) - 1}, got {text!r}")
    return int(_CSV_LABELS[code])


def _csv_pixels(text: str | None, where: str) -> np.ndarray:
    """A 48x48 uint8 image from a space-separated pixel string."""
    try:
        values = np.array((text or "").split(), dtype=np.int64)
    except ValueError:
        raise DatasetError(f"{where}: pixels must be space-separated integers") from None
    if values.size != IMAGE_SIZE * IMAGE_SIZE:
        raise DatasetError(f"{where}: expected {IMAGE_SIZE * IMAGE_SIZE} pixels, got {values.size}")
    if values.min() < 0 or values.max() > 255:
        raise DatasetError(f"{where}: pixel values must be in 0..255")
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)
