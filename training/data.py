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

What one load may cost is bounded, since a dataset can be an anonymous visitor's upload: an image
whose header (read by Pillow without decoding) says more than :data:`MAX_IMAGE_PIXELS` is not
decoded but left out and counted in ``Dataset.too_large`` (a 27 kB PNG can claim 30000×30000
pixels, 900 MB once decoded), and images over a megapixel are decoded one at a time. Under a data
root (:func:`set_data_root`, a public deployment's ``EMOJIFY_DATA_ROOT``), every folder and file
read is resolved, and a symbolic link that leads out of the root refuses the dataset. CSV rows too
short to have a Usage, or with an unknown one, are left out and counted in ``Dataset.note``.

:func:`check_dataset` runs every check that needs no decoding (the folders, the class folders,
empty classes, the CSV's header), in a fraction of a second even for all of FER2013, so the
Training page can refuse a bad dataset the moment Start is pressed.
"""

from __future__ import annotations

import csv
import enum
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

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
#: Every Usage a row may have; a row with another (or none) belongs to no split.
_CSV_USAGES = tuple(dict.fromkeys(usage for usages in _CSV_SPLITS.values() for usage in usages))
# Decoding releases the GIL, so a few threads per core keep every core busy.
_DECODE_WORKERS = 4 * (os.cpu_count() or 1)
#: Largest image read (width × height): FER-style datasets are face crops. A 4096×4096 one is
#: 16.7 MB read as gray (134 MB while a 16-bit RGBA one decodes); larger headers are cheap to fake.
MAX_IMAGE_PIXELS = 4096 * 4096
#: Images above this many pixels are decoded one at a time, so the decoding threads cannot hold
#: dozens of large images at once; FER's 48×48 images never wait.
_LARGE_IMAGE_PIXELS = 1 << 20
_one_large_decode = threading.Lock()
#: See set_data_root.
_data_root: Path | None = None


def set_data_root(root: Path | None) -> None:
    """Confine reads under ``root`` to it (None: trust every path), for this whole process.

    The app calls it from its access rules (app.access), which hold for every session of a
    deployment, and the trainings it starts run in the same process. Only datasets found inside
    the root are confined: the deployment's own FER2013_DIR or an unpacked upload elsewhere is not
    under it and is read as before.
    """
    global _data_root
    _data_root = root.resolve() if root is not None else None


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
    #: Images left out undecoded because their header claims more than MAX_IMAGE_PIXELS.
    too_large: tuple[str, ...] = ()

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
            "too_large": len(self.too_large),
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
        left_out = (*dataset.skipped, *dataset.too_large)
        raise DatasetError(
            f"split {split} has no readable images of class(es): {', '.join(unreadable)} "
            f"({len(dataset.skipped)} unreadable and {len(dataset.too_large)} too large image(s), "
            f"e.g. {left_out[0]})"
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
    folder_inside = _leads_inside(folder, _leads_inside(root, False))
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
        images[name], others[name] = _split_names(folder / name, _leads_inside(folder / name, folder_inside))
    return images, others


def _leads_inside(path: Path, parent_inside: bool) -> bool:
    """Whether ``path`` resolves inside the data root; DatasetError when its parent did and it does not.

    A folder found inside the data root must not lead out of it through a symbolic link (its
    ``test/happy`` linked to ``/home``): the typed path was checked, what lies below it must be too.
    """
    if _data_root is None:
        return False
    if path.resolve().is_relative_to(_data_root):
        return True
    if parent_inside:
        raise DatasetError(f"{path} is a link that leads outside the data folder: refused")
    return False


def _split_names(folder: Path, inside: bool = False) -> tuple[list[str], list[str]]:
    """The files in ``folder``: sorted image names, and sorted other names (hidden files left out).

    ``inside``: ``folder`` lies in the data root, so a file link out of it refuses the dataset.
    """
    images: list[str] = []
    others: list[str] = []
    for entry in os.scandir(folder):
        if not entry.is_file():
            continue
        if inside and entry.is_symlink():
            _leads_inside(Path(entry.path), True)
        if Path(entry.name).suffix.lower() in IMAGE_SUFFIXES:
            images.append(entry.name)
        elif not entry.name.startswith("."):
            others.append(entry.name)
    return sorted(images), sorted(others)


class _Skip(enum.Enum):
    """Why an image was left out."""

    UNREADABLE = enum.auto()
    TOO_LARGE = enum.auto()


def _read_gray(path: Path) -> np.ndarray | _Skip:
    """The image at ``path`` as a 48x48 uint8 array, or why it was left out.

    Pillow reads only the header, so a size claim is checked before cv2 decodes anything (cv2
    keeps the decoding, hence the same pixels as ever).
    """
    try:
        with Image.open(path) as header:
            width, height = header.size
    except Image.DecompressionBombError:
        return _Skip.TOO_LARGE
    except (OSError, ValueError, SyntaxError, EOFError, struct.error):  # Pillow's damaged headers
        return _Skip.UNREADABLE
    if width * height > MAX_IMAGE_PIXELS:
        return _Skip.TOO_LARGE
    one_at_a_time = _one_large_decode if width * height > _LARGE_IMAGE_PIXELS else nullcontext()
    with one_at_a_time:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            return _Skip.UNREADABLE
        if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
            image = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return image


def _decode(paths: Sequence[Path], labels: np.ndarray, split: str, root: Path, note: str) -> Dataset:
    """Decode all ``paths`` in parallel into a Dataset, leaving out (and listing) the ones that can't be.

    Each image goes straight into one preallocated array: a list of small arrays stacked at the end
    doubled the peak memory of a large upload.
    """
    pixels = np.empty((len(paths), IMAGE_SIZE, IMAGE_SIZE), np.uint8)

    def read(index: int) -> _Skip | None:
        image = _read_gray(paths[index])
        if isinstance(image, _Skip):
            return image
        pixels[index] = image
        return None

    with ThreadPoolExecutor(_DECODE_WORKERS) as pool:
        outcomes = list(pool.map(read, range(len(paths))))
    ok = np.array([outcome is None for outcome in outcomes], dtype=bool)
    unreadable, too_large = (
        tuple(str(p) for p, outcome in zip(paths, outcomes, strict=True) if outcome is skip) for skip in _Skip
    )
    if too_large:
        note = _joined(note, f"{_too_large_note(too_large)}, e.g. {too_large[0]}")
    if not ok.any():
        why = f" ({_too_large_note(too_large)})" if too_large else ""
        raise DatasetError(
            f"none of the {len(paths)} images for split {split} in {root} could be decoded{why}"
        )
    return Dataset(
        x=_as_model_input(pixels if ok.all() else pixels[ok]),
        y=labels[ok],
        sources=tuple(str(p) for p, good in zip(paths, ok, strict=True) if good),
        split=split,
        root=root,
        skipped=unreadable,
        note=note,
        too_large=too_large,
    )


def _too_large_note(too_large: Sequence[str]) -> str:
    side = round(MAX_IMAGE_PIXELS**0.5)
    return f"{len(too_large)} image(s) over {side}×{side} pixels left out undecoded (faces need far fewer)"


def _joined(*notes: str) -> str:
    """Notes for one dataset as one sentence-like line (the CLI, the card and the page show one)."""
    return "; ".join(note for note in notes if note)


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
    dropped: list[str] = []  # rows of no split at all: too short, or an unknown Usage
    with _csv_reader(path) as reader:
        try:
            for row in reader:
                if row["Usage"] not in usages:
                    if row["Usage"] is None:
                        dropped.append(f"line {reader.line_num}: too short")
                    elif row["Usage"] not in _CSV_USAGES:
                        dropped.append(f"line {reader.line_num}: Usage {row['Usage']!r}")
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
    note = ""
    if dropped:
        usages_known = ", ".join(_CSV_USAGES)
        note = (
            f"{len(dropped)} row(s) of {path.name} left out: too short or with a Usage other than "
            f"{usages_known} (e.g. {dropped[0]})"
        )
    return Dataset(
        x=_as_model_input(np.stack(rows)),
        y=np.array(labels),
        sources=tuple(sources),
        split=split,
        root=path,
        note=note,
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
