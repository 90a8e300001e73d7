"""Calibrate to one person: their resting face becomes "neutral" and moves away from it are read.

A generic model reads some people's resting face as sad or angry and misses their closed-mouth
smiles. A :class:`Calibration` remembers what the model answers for this person's neutral face
(the mean log-probabilities of a few looks at it: video frames or jittered crops of a photo) and
reads every later face *relative* to it:

    calibrated logits = log p(x) − log p(reference) − margin

so the reference itself reads neutral, and another class wins only once the face has moved
towards it by more than that class's ``margin`` (log-odds against neutral). A class whose
log-odds wobble between looks at the same still face (fear and sad do, with the crop; happy
hardly) needs a larger move: its margin is ``SPREAD_Z`` times that spread, at least
``MIN_MARGIN`` and at most ``MAX_MARGIN``. One example of another expression (a smile) sets that
class's margin to half of how far the example moved, so this person's own smile is read as one.

Measured with ``python -m training.evaluate_photos … --calibrate neutral`` on the London set
(one neutral photo per person as reference; its happy photo and its neutral photo cut to a tight
crop scored): the constants were chosen on ``tests/fixtures/faces`` (12 people) and checked on
``faces_dev`` (50 other people): happy recall 46 % → 80 %, neutral crops 81 % → 96 % neutral.
The issue's plain shift (``log p − 0.5·(log p(ref) − mean log p(ref))``) reached 50–54 % there:
the fixed mean made no room for the classes the crop moves most.

Per face and frame it costs a multiplication and a normalisation of seven numbers.
Numpy only; nothing here imports Streamlit or Keras.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from app.detection import Box, DetectorSettings
from app.emotions import CLASS_NAMES, NUM_CLASSES
from app.framing import crop_faces
from app.images import to_gray
from app.pipeline import Classifier, Face, Pipeline

#: What a calibration file says it is, and the version of its layout this code reads.
FILE_KIND = "emojify-calibration"
FILE_VERSION = 1
#: A calibration file is a few hundred bytes; anything far larger is not one.
MAX_FILE_BYTES = 20_000

NEUTRAL = CLASS_NAMES.index("neutral")
#: Least log-odds move (against neutral, from the reference) that makes another class win (e^1.5 ≈ 4.5×).
MIN_MARGIN = 1.5
#: A class's margin in standard deviations of its log-odds between looks at the same neutral face.
SPREAD_Z = 4.0
#: ... and at most this (e^3 ≈ 20×): a face that moved while it was collected (the Pexels clip's
#: crying second: happy's log-odds wobble 1.0, a margin of 4.1) must not make a class all but
#: unreachable. It changes nothing on the London sets (there, neither does 2.5).
MAX_MARGIN = 3.0
#: How far a shown expression must have moved towards its class (log-odds) to be taken as one.
MIN_EXAMPLE_MOVE = 0.5
#: Probabilities are floored here before the log, so a zero never becomes −inf.
PROBABILITY_FLOOR = 1e-6
#: Looks at a photo's face: the box shifted by this share of its size in each direction and scaled
#: by each of the factors, 3 × 3 × 3 crops, as a tracked face's box wobbles between frames.
JITTER_SHIFT = 0.06
JITTER_SCALES = (0.9, 1.0, 1.1)
#: Seconds the Live page collects a face, and the fewest looks (classifications) that make a calibration.
COLLECT_SECONDS = 3.0
MIN_LOOKS = 5


class CalibrationError(ValueError):
    """A calibration that can't be made or a file that isn't one; the message is for users."""


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR))


@dataclass(frozen=True)
class Calibration:
    """One person's neutral reference (and shown examples), as a few numbers; never pixels.

    ``reference`` and each example are mean log-probabilities over their looks; ``spread`` is the
    standard deviation of each class's log-odds against neutral over the reference looks. ``face``
    says whom it was made from (a track, a photo) and ``model`` with which model: the numbers mean
    something only to that model.
    """

    reference: tuple[float, ...]
    spread: tuple[float, ...]
    looks: int
    model: str = ""
    face: str = ""
    examples: tuple[tuple[str, tuple[float, ...]], ...] = ()
    _weights: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        vectors = [self.reference, self.spread, *(vector for _, vector in self.examples)]
        if any(len(vector) != NUM_CLASSES for vector in vectors):
            raise CalibrationError(f"a calibration holds {NUM_CLASSES} numbers per expression")
        if not all(math.isfinite(value) for vector in vectors for value in vector):
            raise CalibrationError("a calibration's numbers must be finite (no NaN or infinity)")
        if any(value < 0 for value in self.spread) or self.looks < 1:
            raise CalibrationError("a calibration needs at least one look and spreads of 0 or more")
        for name, _ in self.examples:
            if name not in CLASS_NAMES or name == "neutral":
                raise CalibrationError(f"{name!r} is not an expression to show besides neutral")
        offset = -(np.asarray(self.reference) + self.margins())
        # softmax(log p + offset) is p · e^offset, normalised: one multiply per frame, no log or exp.
        object.__setattr__(self, "_weights", np.exp(offset - offset.max()))

    @classmethod
    def from_looks(cls, probabilities: np.ndarray, model: str = "", face: str = "") -> Calibration:
        """A calibration from the model's answers ``(N, 7)`` for N looks at one neutral face."""
        logs = _looks(probabilities)
        odds = logs - logs[:, [NEUTRAL]]
        return cls(_tuple(logs.mean(axis=0)), _tuple(odds.std(axis=0)), len(logs), model, face)

    def with_example(self, emotion: str, probabilities: np.ndarray) -> Calibration:
        """This calibration and the looks ``(N, 7)`` at the person showing ``emotion``.

        CalibrationError when the example is no move towards ``emotion`` from the neutral face
        (the model can't tell them apart: using it would make the neutral face read as it).
        """
        if emotion not in CLASS_NAMES or emotion == "neutral":
            raise CalibrationError(f"{emotion!r} is not an expression to show besides neutral")
        mean = _looks(probabilities).mean(axis=0)
        if self._move(mean, CLASS_NAMES.index(emotion)) < MIN_EXAMPLE_MOVE:
            raise CalibrationError(
                f"that {emotion} face looks like the neutral one to the model; show it more clearly"
            )
        kept = tuple((name, vector) for name, vector in self.examples if name != emotion)
        return replace(self, examples=(*kept, (emotion, _tuple(mean))))

    def margins(self) -> np.ndarray:
        """Per class, the log-odds move against neutral, from the reference, that makes it win."""
        margins = np.clip(SPREAD_Z * np.asarray(self.spread), MIN_MARGIN, MAX_MARGIN)
        for name, vector in self.examples:
            index = CLASS_NAMES.index(name)
            margins[index] = min(margins[index], self._move(np.asarray(vector), index) / 2)
        margins[NEUTRAL] = 0.0
        return margins

    def generic_verdict(self) -> str:
        """What the generic model read the reference face as: it should have looked neutral."""
        return CLASS_NAMES[int(np.argmax(self.reference))]

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for one face ``(7,)`` or several ``(N, 7)``."""
        weighted = np.maximum(probabilities, PROBABILITY_FLOOR) * self._weights
        return weighted / weighted.sum(axis=-1, keepdims=True)

    def to_json(self) -> str:
        """The small JSON file a user downloads: a few numbers per expression, never pixels."""
        return json.dumps(
            {
                "kind": FILE_KIND,
                "version": FILE_VERSION,
                "classes": list(CLASS_NAMES),
                "model": self.model,
                "face": self.face,
                "looks": self.looks,
                "reference": list(self.reference),
                "spread": list(self.spread),
                "examples": {name: list(vector) for name, vector in self.examples},
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Calibration:
        """Read a file made by :meth:`to_json`; CalibrationError saying what is wrong with any other."""
        if len(text) > MAX_FILE_BYTES:
            raise CalibrationError("this file is too large to be an Emojify calibration")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise CalibrationError("this file is not an Emojify calibration (not JSON)") from err
        if not isinstance(data, dict) or data.get("kind") != FILE_KIND:
            raise CalibrationError("this file is not an Emojify calibration")
        if data.get("version") != FILE_VERSION:
            raise CalibrationError(
                f"this calibration file has version {data.get('version')!r}; this Emojify reads version "
                f"{FILE_VERSION}: calibrate again"
            )
        if data.get("classes") != list(CLASS_NAMES):
            raise CalibrationError(
                f"this calibration is for the expressions {data.get('classes')!r}, "
                f"not Emojify's {', '.join(CLASS_NAMES)}"
            )
        examples = data.get("examples", {})
        looks = data.get("looks")
        if not isinstance(examples, dict) or not isinstance(looks, int) or isinstance(looks, bool):
            raise CalibrationError("this calibration file is damaged (examples or looks)")
        return cls(
            _vector(data.get("reference"), "reference"),
            _vector(data.get("spread"), "spread"),
            looks,
            _text(data.get("model", "")),
            _text(data.get("face", "")),
            tuple((str(name), _vector(vector, str(name))) for name, vector in examples.items()),
        )

    def _move(self, logs: np.ndarray, index: int) -> float:
        """How far log-probabilities ``logs`` lie towards class ``index`` from the reference."""
        reference = np.asarray(self.reference)
        return float((logs[index] - logs[NEUTRAL]) - (reference[index] - reference[NEUTRAL]))


def _looks(probabilities: np.ndarray) -> np.ndarray:
    logs = log_probabilities(probabilities)
    if logs.ndim != 2 or logs.shape[1] != NUM_CLASSES or len(logs) == 0:
        raise CalibrationError(f"expected the model's answers for one or more looks, got shape {logs.shape}")
    return logs


def _tuple(vector: np.ndarray) -> tuple[float, ...]:
    return tuple(float(value) for value in vector)


def _vector(value: Any, name: str) -> tuple[float, ...]:
    numbers = value if isinstance(value, list) else []
    if len(numbers) != NUM_CLASSES or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in numbers
    ):
        raise CalibrationError(f"this calibration file is damaged: {name!r} needs {NUM_CLASSES} numbers")
    return tuple(float(x) for x in numbers)


def _text(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise CalibrationError("this calibration file is damaged (model or face name)")
    return value


def jittered_boxes(box: Box) -> list[Box]:
    """Looks at a photo's face: its box shifted and scaled a little, as a tracked box wobbles."""
    boxes = []
    for scale in JITTER_SCALES:
        w, h = max(1, round(box.w * scale)), max(1, round(box.h * scale))
        for dy in (-JITTER_SHIFT, 0.0, JITTER_SHIFT):
            for dx in (-JITTER_SHIFT, 0.0, JITTER_SHIFT):
                cx, cy = box.center
                boxes.append(Box(round(cx + dx * box.w - w / 2), round(cy + dy * box.h - h / 2), w, h))
    return boxes


def photo_looks(classifier: Classifier, gray: np.ndarray, box: Box) -> np.ndarray:
    """The model's answers ``(27, 7)`` for the jittered looks at one face of a photo."""
    return np.asarray(classifier(crop_faces(gray, jittered_boxes(box))), dtype=np.float64)


def calibrate_photos(
    pipeline: Pipeline,
    photos: Sequence[np.ndarray],
    settings: DetectorSettings | None = None,
    model: str = "",
    face: str = "",
) -> Calibration:
    """A calibration from RGB photos of one person's neutral face (the largest face of each).

    CalibrationError if a photo has no face: a reference must be this person's face.
    """
    looks = []
    for number, rgb in enumerate(photos, start=1):
        gray = to_gray(rgb)
        boxes = pipeline.detector.detect(gray, settings)
        if not boxes:
            which = f"reference photo {number} of {len(photos)}" if len(photos) > 1 else "the reference photo"
            raise CalibrationError(f"no face found in {which}")
        looks.append(photo_looks(pipeline.classifier, gray, boxes[0]))
    if not looks:
        raise CalibrationError("give at least one reference photo")
    return Calibration.from_looks(np.concatenate(looks), model, face)


@dataclass(frozen=True)
class CalibrationStatus:
    """What the Live panel shows about calibrating: a snapshot, safe to read on any thread.

    ``phase`` is ``"none"``, ``"collecting"`` (``expression``, ``seconds_left``, ``message``
    about frames skipped), ``"calibrated"`` (``track`` and ``calibration``; ``in_view`` whether
    that face is being seen) or ``"failed"`` (``message`` says why; any earlier calibration stays).
    """

    phase: str = "none"
    expression: str = "neutral"
    seconds_left: float = 0.0
    track: int | None = None
    in_view: bool = False
    message: str = ""
    calibration: Calibration | None = None


class LiveCalibrator:
    """One stream's calibration: collected from one tracked face, applied to that track only.

    The page thread starts, loads and resets; the frame thread calls :meth:`process` with each
    batch of fresh classifications. A lock keeps the two apart. Time is the frames' own time, so
    the countdown runs with the video. A loaded calibration is bound to the next face seen alone.
    """

    def __init__(self, model: str = "") -> None:
        self.model = model
        self._lock = threading.Lock()
        self._calibration: Calibration | None = None
        self._track: int | None = None
        self._seen_at = -math.inf
        self._now = -math.inf
        self._collect: _Collection | None = None
        self._failure = ""

    def start(self, expression: str = "neutral", seconds: float = COLLECT_SECONDS) -> None:
        """Collect the face for ``seconds`` from the next frame on; neutral starts a new calibration."""
        if expression not in CLASS_NAMES:
            raise CalibrationError(f"unknown expression {expression!r}")
        with self._lock:
            if expression != "neutral" and self._calibration is None:
                raise CalibrationError("calibrate your neutral face first")
            self._collect = _Collection(expression, seconds)
            self._failure = ""

    def load(self, calibration: Calibration) -> None:
        """Use a saved calibration: for the next face seen alone."""
        with self._lock:
            self._calibration, self._track, self._collect, self._failure = calibration, None, None, ""

    def reset(self) -> None:
        """Back to generic verdicts for every face."""
        with self._lock:
            self._calibration, self._track, self._collect, self._failure = None, None, None, ""

    def unbind(self) -> None:
        """A new stream: its faces are new tracks; the calibration waits for the next face seen alone."""
        with self._lock:
            self._track, self._collect = None, None

    def process(
        self, track_ids: Sequence[int], probabilities: Sequence[Sequence[float]], tracked: int, now: float
    ) -> np.ndarray:
        """Collect from and calibrate one frame's fresh answers ``(N, 7)`` for tracks ``track_ids``.

        Called on every frame, also with none (the countdown runs in frame time). ``tracked`` is how
        many faces are tracked in this frame: only a face alone is collected. Returns the answers
        with the calibrated track's row adjusted.
        """
        probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, NUM_CLASSES)
        with self._lock:
            self._now = now
            if self._collect is not None:
                self._collect_from(track_ids, probabilities, tracked, now)
            if self._calibration is None:
                return probabilities
            if self._track is None and tracked == 1 and len(track_ids) == 1:
                self._track = track_ids[0]  # a loaded calibration meets its face
            if self._track not in track_ids:
                return probabilities
            self._seen_at = now
            adjusted = probabilities.copy()
            row = list(track_ids).index(self._track)
            adjusted[row] = self._calibration.apply(adjusted[row])
            return adjusted

    def draw(self, image: np.ndarray) -> None:
        """While collecting, the countdown on a band across the top of the frame, in place."""
        with self._lock:
            collect, now = self._collect, self._now
        if collect is None:
            return
        left = collect.seconds if collect.until is None else max(0.0, collect.until - now)
        text = f"Calibrating: {collect.expression} face, {math.ceil(left)}"
        width = image.shape[1]
        scale = max(0.5, width / 900)
        (_, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
        band = text_h + baseline + 12
        cv2.rectangle(image, (0, 0), (width, band), (255, 255, 255), cv2.FILLED)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(image, text, (8, 6 + text_h), font, scale, (20, 20, 20), 2, cv2.LINE_AA)

    def status(self, in_view_within_s: float = 1.0) -> CalibrationStatus:
        with self._lock:
            in_view = self._now - self._seen_at <= in_view_within_s
            if self._collect is not None:
                collect = self._collect
                left = collect.seconds if collect.until is None else max(0.0, collect.until - self._now)
                return CalibrationStatus(
                    "collecting", collect.expression, left, self._track, in_view, collect.skipped()
                )
            phase = "calibrated" if self._calibration is not None else "none"
            return CalibrationStatus(
                "failed" if self._failure else phase,
                "neutral",
                0.0,
                self._track,
                in_view,
                self._failure,
                self._calibration,
            )

    def _collect_from(
        self, track_ids: Sequence[int], probabilities: np.ndarray, tracked: int, now: float
    ) -> None:
        collect = self._collect
        assert collect is not None
        if collect.until is None:
            collect.until = now + collect.seconds
        wanted = self._track if collect.expression != "neutral" else collect.track
        if tracked == 0:
            collect.none += 1
        elif tracked > 1:
            collect.several += 1
        elif len(track_ids) == 1 and wanted in (None, track_ids[0]):
            collect.track = track_ids[0]
            collect.looks.append(np.asarray(probabilities[0], dtype=np.float64))
        elif len(track_ids) == 1:
            collect.other += 1
        if now >= collect.until:
            self._collect = None
            self._finish(collect)

    def _finish(self, collect: _Collection) -> None:
        if len(collect.looks) < MIN_LOOKS:
            self._failure = (
                f"Not enough frames with your face alone in view ({len(collect.looks)} of the {MIN_LOOKS} "
                f"needed). {collect.skipped()}".strip()
            )
            return
        looks = np.stack(collect.looks)
        try:
            if collect.expression == "neutral":
                self._calibration = Calibration.from_looks(looks, self.model, f"face #{collect.track}")
                self._track = collect.track
            else:
                assert self._calibration is not None
                self._calibration = self._calibration.with_example(collect.expression, looks)
        except CalibrationError as err:  # its message is a clause; here it is the panel's sentence
            self._failure = f"{str(err)[:1].upper()}{str(err)[1:]}."


@dataclass
class _Collection:
    """Looks gathered for one expression, and how many frames could not be used, and why."""

    expression: str
    seconds: float
    until: float | None = None
    track: int | None = None
    looks: list[np.ndarray] = field(default_factory=list)
    none: int = 0
    several: int = 0
    other: int = 0

    def skipped(self) -> str:
        """Why frames were not used, each reason with its count ("17 with no face" alone left the
        reader to guess 17 of what)."""
        parts = []
        if self.several:
            parts.append(f"{self.several} with several faces in view")
        if self.none:
            parts.append(f"{self.none} with no face")
        if self.other:
            parts.append(f"{self.other} with another face than the one calibrated")
        return f"Frames skipped: {'; '.join(parts)}." if parts else ""


def calibrate_largest(faces: Sequence[Face], calibration: Calibration | None) -> list[Face]:
    """``faces`` in their order, with the largest face's verdict calibrated.

    A reference photo is of one person; in a photo of them, they are taken to be its largest face.
    """
    if calibration is None or not faces:
        return list(faces)
    largest = max(range(len(faces)), key=lambda index: faces[index].box.area)
    out = list(faces)
    out[largest] = Face(out[largest].box, _tuple(calibration.apply(np.asarray(out[largest].probabilities))))
    return out
