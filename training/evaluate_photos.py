"""Score the whole pipeline on real photos: detect → crop → classify, as the Photo page does.

    python -m training.evaluate_photos ../shared/fixtures/faces ../shared/fixtures/faces_dev \\
        --fer2013 /root/data/fer2013 [--model PATH] [--per-class 50] [--calibrate neutral] [--json]

``training.evaluate`` scores the model on FER2013's own 48×48 crops; users give it photos. Here
every image goes through :class:`app.pipeline.Pipeline` (the detector finds the faces, the crops
are framed like FER2013's, the model classifies them) and the largest face is the answer. Sets:

* each ``FOLDER`` with a ``labels.csv`` (columns ``file`` and ``label``, one of the seven classes),
  as the photos are (``original``) and cut to exactly the face box the cascade finds in them, with
  no margin (``tight``: selfies and crops, which detection used to miss);
* with ``--calibrate neutral``, per folder, each person's photos scored against their own neutral
  face (:mod:`app.calibration`): the first neutral photo of each person is their reference; their
  other photos and the reference's tight crop (other pixels of the same neutral face) are scored
  generic (``same person, generic``) and calibrated (``same person, calibrated``). A person is
  the ``person`` column of ``labels.csv`` or, without one, the file name up to its last ``_``
  (the London set's ``london_009_neutral.jpg`` is person ``london_009``);
* with ``--fer2013``, PrivateTest images (``--per-class`` of each class) enlarged to 480×480
  (``fer2013-480``): all seven expressions, where the London set has only neutral and happy.

For each set it prints how many photos yielded a face, the accuracy over all photos (no face
counts as wrong) and over those with a face, each class's recall and the confusion matrix with a
"no face" column.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.calibration import Calibration, CalibrationError, calibrate_photos
from app.classifier import EmotionClassifier, ModelError
from app.detection import DetectorSettings, FaceDetector
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH
from app.images import ImageError, read_image
from app.pipeline import Pipeline
from training.data import DatasetError, load_split

#: Side FER2013 images are enlarged to, about a phone photo's face size.
FER_PHOTO_SIDE = 480
NO_FACE = "no face"


@dataclass(frozen=True)
class Photo:
    """One labelled image of a set, already decoded to RGB, and whose face it is (if known)."""

    name: str
    label: str
    rgb: np.ndarray
    person: str = ""


@dataclass(frozen=True)
class SetResult:
    """A set's answers: per photo the true class and the predicted one (or NO_FACE)."""

    name: str
    truth: tuple[str, ...]
    predicted: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.truth)

    @property
    def faces_found(self) -> float:
        return sum(p != NO_FACE for p in self.predicted) / self.n

    @property
    def accuracy(self) -> float:
        """Right answers over all photos: a photo without a face is a wrong answer."""
        return sum(t == p for t, p in zip(self.truth, self.predicted, strict=True)) / self.n

    @property
    def accuracy_with_face(self) -> float:
        pairs = [(t, p) for t, p in zip(self.truth, self.predicted, strict=True) if p != NO_FACE]
        return sum(t == p for t, p in pairs) / len(pairs) if pairs else 0.0

    def recall(self) -> dict[str, float]:
        """Per true class present in the set: the share answered with that class."""
        return {
            name: float(
                np.mean([p == name for t, p in zip(self.truth, self.predicted, strict=True) if t == name])
            )
            for name in CLASS_NAMES
            if name in self.truth
        }

    def confusion(self) -> dict[str, dict[str, int]]:
        """Counts per true class (rows present in the set) and answer (classes, then NO_FACE)."""
        columns = [*CLASS_NAMES, NO_FACE]
        rows = {name: dict.fromkeys(columns, 0) for name in CLASS_NAMES if name in self.truth}
        for t, p in zip(self.truth, self.predicted, strict=True):
            rows[t][p] += 1
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": self.name,
            "n": self.n,
            "faces_found": self.faces_found,
            "accuracy": self.accuracy,
            "accuracy_with_face": self.accuracy_with_face,
            "recall": self.recall(),
            "confusion": self.confusion(),
        }

    def report(self) -> str:
        """Plain-text lines for the terminal."""
        lines = [
            f"== {self.name}: {self.n} photos, face found in {self.faces_found:.1%}; accuracy "
            f"{self.accuracy:.1%} (no face = wrong), {self.accuracy_with_face:.1%} where a face was found",
            "recall: " + "  ".join(f"{name} {value:.0%}" for name, value in self.recall().items()),
            f"{'true → answer':<13}" + "".join(f"{name[:7]:>8}" for name in (*CLASS_NAMES, NO_FACE)),
        ]
        for name, counts in self.confusion().items():
            lines.append(f"{name:<13}" + "".join(f"{count:8d}" for count in counts.values()))
        return "\n".join(lines)


def labelled_photos(folder: Path) -> list[Photo]:
    """The photos listed in ``folder/labels.csv``; DatasetError for a missing file or bad label."""
    table = folder / "labels.csv"
    try:
        with table.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise DatasetError(f"{table} can't be read: {err}") from err
    photos = []
    for line, row in enumerate(rows, start=2):
        label = (row.get("label") or "").strip()
        if label not in CLASS_NAMES or not row.get("file"):
            raise DatasetError(f"{table} line {line}: needs a file and a label in {', '.join(CLASS_NAMES)}")
        try:
            person = (row.get("person") or "").strip() or Path(row["file"]).stem.rsplit("_", 1)[0]
            photos.append(Photo(row["file"], label, read_image(folder / row["file"]), person))
        except ImageError as err:
            raise DatasetError(f"{folder / row['file']}: {err}") from err
    return photos


def tight_crops(photos: Sequence[Photo], detector: FaceDetector) -> list[Photo]:
    """Each photo cut to the largest face box the cascade finds in it (photos without one are left out)."""
    plain = DetectorSettings(look_again=False)
    crops = []
    for photo in photos:
        boxes = detector.detect(cv2.cvtColor(photo.rgb, cv2.COLOR_RGB2GRAY), plain)
        if boxes:
            box = boxes[0]
            crop = photo.rgb[max(box.y, 0) : box.y + box.h, max(box.x, 0) : box.x + box.w]
            crops.append(Photo(photo.name, photo.label, np.ascontiguousarray(crop), photo.person))
    return crops


def fer_photos(root: Path, per_class: int) -> list[Photo]:
    """PrivateTest images, ``per_class`` of each class, enlarged to FER_PHOTO_SIDE and in RGB."""
    dataset = load_split(root, "private_test", limit_per_class=per_class)
    photos = []
    for pixels, label, source in zip(dataset.x, dataset.y, dataset.sources, strict=True):
        big = cv2.resize(
            pixels[..., 0].astype(np.uint8), (FER_PHOTO_SIDE, FER_PHOTO_SIDE), interpolation=cv2.INTER_CUBIC
        )
        photos.append(
            Photo(Path(source).name, CLASS_NAMES[int(label)], cv2.cvtColor(big, cv2.COLOR_GRAY2RGB))
        )
    return photos


def score_set(
    name: str,
    photos: Sequence[Photo],
    pipeline: Pipeline,
    settings: DetectorSettings,
    calibrations: Mapping[str, Calibration] | None = None,
) -> SetResult:
    """Run every photo through the pipeline; the largest face's emotion is the answer.

    With ``calibrations``, the answer is read through the calibration of the photo's person.
    """
    predicted = []
    for photo in photos:
        faces = pipeline.analyze(photo.rgb, settings)
        if not faces:
            predicted.append(NO_FACE)
            continue
        probabilities = np.asarray(faces[0].probabilities)
        if calibrations is not None:
            probabilities = calibrations[photo.person].apply(probabilities)
        predicted.append(CLASS_NAMES[int(np.argmax(probabilities))])
    return SetResult(name, tuple(photo.label for photo in photos), tuple(predicted))


def person_sets(
    name: str, photos: Sequence[Photo], tight: Sequence[Photo], pipeline: Pipeline, settings: DetectorSettings
) -> Iterator[SetResult]:
    """Each person's other photos and reference's tight crop, generic and calibrated on the reference."""
    references: dict[str, Photo] = {}
    for photo in photos:
        if photo.label == "neutral":
            references.setdefault(photo.person, photo)
    calibrations = {
        person: calibrate_photos(pipeline, [photo.rgb], settings, face=photo.name)
        for person, photo in references.items()
    }
    reference_names = {photo.name for photo in references.values()}
    scored = [p for p in photos if p.person in references and p.name not in reference_names]
    scored += [p for p in tight if p.name in reference_names]
    yield score_set(f"{name} same person, generic", scored, pipeline, settings)
    yield score_set(f"{name} same person, calibrated", scored, pipeline, settings, calibrations)


def results(args: argparse.Namespace, pipeline: Pipeline, settings: DetectorSettings) -> Iterator[SetResult]:
    """The result of every set the arguments ask for, one by one."""
    for folder in args.folders:
        photos = labelled_photos(folder)
        tight = tight_crops(photos, pipeline.detector)
        yield score_set(f"{folder.name} original", photos, pipeline, settings)
        yield score_set(f"{folder.name} tight", tight, pipeline, settings)
        if args.calibrate:
            yield from person_sets(folder.name, photos, tight, pipeline, settings)
    if args.fer2013:
        name = f"fer2013-{FER_PHOTO_SIDE}"
        yield score_set(name, fer_photos(args.fer2013, args.per_class), pipeline, settings)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate_photos", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "folders", nargs="*", type=Path, help="folders of photos with a labels.csv (file,label)"
    )
    parser.add_argument(
        "--fer2013", type=Path, help="FER2013 folder: add its PrivateTest images enlarged to photos"
    )
    parser.add_argument("--per-class", type=int, default=50, help="FER2013 images per class (default 50)")
    parser.add_argument(
        "--model", type=Path, default=DEFAULT_MODEL_PATH, help="the .keras model (default: shipped)"
    )
    parser.add_argument(
        "--no-second-look", action="store_true", help="detect with one look only, as before, to compare"
    )
    parser.add_argument(
        "--calibrate",
        choices=["neutral"],
        help="also score each person's photos calibrated on their own neutral photo (needs folders)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per set instead of tables")
    args = parser.parse_args(argv)
    if not args.folders and not args.fer2013:
        parser.error("give at least one photo folder or --fer2013")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point: 0 on success, 2 for a missing/broken model or photo set."""
    args = parse_args(argv)
    try:
        pipeline = Pipeline(FaceDetector(), EmotionClassifier.load(args.model))
        settings = DetectorSettings(look_again=not args.no_second_look)
        for result in results(args, pipeline, settings):
            print(json.dumps(result.to_dict()) if args.json else result.report() + "\n", flush=True)
    except (ModelError, DatasetError, CalibrationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
