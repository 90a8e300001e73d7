"""FER+ crowd votes: ten annotators per FER2013 image, as training targets and as a second truth.

FER2013's own labels agree with the majority of ten FER+ annotators (Barsoum et al., ICMI 2016) on
only about two thirds of the test images. The votes file (``ferplus_votes.csv``) has one row per
image, keyed by the image's path inside the extracted ``fer2013/`` folder::

    path,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF
    train/angry/Training_10118481.jpg,2,0,0,1,7,0,0,0,0,0

Our models know seven classes, so an image's *vote distribution* keeps the seven emotions' votes
and renormalises them; contempt, unknown and not-a-face votes are dropped. An image whose votes are
all among those (or that has no row) has no distribution: it is left out of vote training and
counted. The *majority* protocol scores a model against the annotators' most-voted category over
all ten columns, on the images with a clear one: a tie for the top, or a top that is contempt,
unknown or not-a-face, leaves the image out (the images FER+ itself could not name).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.emotions import CLASS_NAMES, NUM_CLASSES

#: The votes file's columns after ``path``, in file order.
VOTE_COLUMNS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)
#: Our class of each FER+ emotion column (the other three columns have none).
_CLASS_OF_COLUMN = {
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happiness": "happy",
    "neutral": "neutral",
    "sadness": "sad",
    "surprise": "surprise",
}
#: For each of CLASS_NAMES, the index of its column in VOTE_COLUMNS.
_COLUMN_OF_CLASS = np.array(
    [VOTE_COLUMNS.index(next(c for c, n in _CLASS_OF_COLUMN.items() if n == name)) for name in CLASS_NAMES]
)
VOTES_ENV = "FERPLUS_VOTES"
VOTES_FILE_NAME = "ferplus_votes.csv"
#: The copy shipped with Emojify (MIT licence, see its README), for FER2013 in the Kaggle layout.
SHIPPED_VOTES = Path(__file__).resolve().parent / "ferplus" / "votes.csv"
#: The label sources a run can learn from.
LABEL_SOURCES = ("fer2013", "ferplus", "blend")
#: Majority label of an image without a clear seven-class majority.
NO_MAJORITY = -1


class VotesError(ValueError):
    """The votes file is missing, unreadable or does not fit the dataset; the message says which."""


@dataclass(frozen=True)
class Votes:
    """Every row of a votes file: ``counts[i]`` are the ten vote counts of image ``paths[i]``."""

    paths: tuple[str, ...]
    counts: np.ndarray
    source: Path

    def for_sources(self, sources: tuple[str, ...], root: Path) -> np.ndarray:
        """The ``(N, 10)`` vote counts of images ``sources`` (paths under ``root``); NaN rows where
        an image has no row in the file."""
        index = {path: i for i, path in enumerate(self.paths)}
        out = np.full((len(sources), len(VOTE_COLUMNS)), np.nan, dtype=np.float32)
        for row, source in enumerate(sources):
            key = _key(source, root)
            if key in index:
                out[row] = self.counts[index[key]]
        return out


def _key(source: str, root: Path) -> str:
    """The votes file's key of an image: its path under the dataset folder, with forward slashes."""
    path = Path(source)
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def read_votes(path: Path) -> Votes:
    """Read a votes file; VotesError naming the file and line for anything that is not one."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            expected = ["path", *VOTE_COLUMNS]
            if header is None or [name.strip() for name in header] != expected:
                raise VotesError(f"{path} is not a FER+ votes file: its header must be {','.join(expected)}")
            paths: list[str] = []
            counts: list[list[float]] = []
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(expected):
                    raise VotesError(f"{path}, line {line}: {len(row)} fields, expected {len(expected)}")
                try:
                    values = [float(value) for value in row[1:]]
                except ValueError as err:
                    raise VotesError(f"{path}, line {line}: a vote count is not a number ({err})") from err
                if any(value < 0 or not np.isfinite(value) for value in values):
                    raise VotesError(f"{path}, line {line}: vote counts must be finite and >= 0")
                paths.append(row[0].strip().replace("\\", "/"))
                counts.append(values)
    except OSError as err:
        raise VotesError(f"can't read the votes file {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise VotesError(f"{path} is not a text CSV file") from err
    if not paths:
        raise VotesError(f"{path} has no votes")
    return Votes(tuple(paths), np.array(counts, dtype=np.float32), path)


def find_votes(explicit: Path | None, data_dir: Path) -> Path:
    """The votes file to use: ``explicit``, else ``$FERPLUS_VOTES``, else ``ferplus_votes.csv`` in
    the dataset folder or beside it, else the shipped copy. VotesError when there is none."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise VotesError(f"the votes file {explicit} does not exist")
        return Path(explicit)
    candidates = []
    if os.environ.get(VOTES_ENV):
        candidates.append(Path(os.environ[VOTES_ENV]))
    candidates += [data_dir / VOTES_FILE_NAME, data_dir.parent / VOTES_FILE_NAME, SHIPPED_VOTES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise VotesError(f"no FER+ votes file found (looked at {looked}); pass --votes PATH or set {VOTES_ENV}")


def distributions(counts: np.ndarray) -> np.ndarray:
    """Each image's votes over our seven classes, renormalised: ``(N, 7)``, NaN rows where none."""
    seven = np.nan_to_num(counts[:, _COLUMN_OF_CLASS], nan=0.0)
    totals = seven.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, seven / totals, np.nan).astype(np.float32)


def majority(counts: np.ndarray) -> np.ndarray:
    """Each image's annotators' majority in CLASS_NAMES order, or NO_MAJORITY (tie for the top,
    top among contempt/unknown/not-a-face, or no votes)."""
    filled = np.nan_to_num(counts, nan=0.0)
    top = filled.max(axis=1)
    tied = (filled == top[:, None]).sum(axis=1) > 1
    best = filled.argmax(axis=1)
    class_of_column = np.full(len(VOTE_COLUMNS), NO_MAJORITY)
    class_of_column[_COLUMN_OF_CLASS] = np.arange(NUM_CLASSES)
    labels = class_of_column[best]
    labels[tied | (top <= 0)] = NO_MAJORITY
    return labels


@dataclass(frozen=True)
class Matched:
    """A dataset's images matched to the votes: their counts, and how many found a usable row."""

    counts: np.ndarray
    with_row: int
    usable: np.ndarray

    def describe(self, split: str) -> str:
        n = len(self.counts)
        return (
            f"{split}: {self.with_row:,} of {n:,} images have FER+ votes, "
            f"{int(self.usable.sum()):,} with votes for one of our 7 classes"
        )


def match(votes: Votes, sources: tuple[str, ...], root: Path, split: str) -> Matched:
    """Match images to the votes; VotesError when none match (the wrong file or the wrong dataset)."""
    counts = votes.for_sources(sources, root)
    with_row = int((~np.isnan(counts).any(axis=1)).sum())
    usable = ~np.isnan(distributions(counts)).any(axis=1)
    if not usable.any():
        example = _key(sources[0], root) if sources else "?"
        raise VotesError(
            f"none of the {len(sources):,} {split} images has votes in {votes.source} "
            f"(it is keyed by paths like {votes.paths[0]}; this dataset's are like {example})"
        )
    return Matched(counts, with_row, usable)
