"""The whole photo path in one place: detect → frame the crops → classify in one batch → draw.

Detector and classifier are passed in, so the pages can swap models, the live page can reuse
the same steps between tracked frames, and tests can plug in fakes where a model is beside
the point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from app.detection import Box, DetectorSettings, FaceDetector
from app.emotions import CLASS_NAMES, NUM_CLASSES
from app.framing import crop_faces, fer_frame
from app.images import to_gray
from app.overlay import draw_box, draw_label, load_emojis, paste_rgba

#: Anything that maps crops ``(N, 48, 48, 1)`` to probabilities ``(N, 7)``.
Classifier = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Face:
    """One detected face and what the model thinks of it."""

    box: Box
    probabilities: tuple[float, ...]

    def __post_init__(self) -> None:
        probs = self.probabilities
        if len(probs) != NUM_CLASSES:
            raise ValueError(f"expected {NUM_CLASSES} probabilities, got {len(probs)}")
        if min(probs) < 0 or not math.isclose(sum(probs), 1.0, abs_tol=1e-3):
            raise ValueError(f"probabilities must be ≥ 0 and sum to 1, got {probs}")

    @property
    def emotion(self) -> str:
        return CLASS_NAMES[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return max(self.probabilities)

    def to_dict(self) -> dict:
        """The JSON shape of the CLI and any export: box, emotion, confidence, probabilities."""
        return {
            "box": self.box.as_list(),
            "emotion": self.emotion,
            "confidence": round(self.confidence, 4),
            "probabilities": {n: round(p, 4) for n, p in zip(CLASS_NAMES, self.probabilities, strict=True)},
        }


@dataclass(frozen=True)
class OverlayOptions:
    """What to draw over each face."""

    emoji: bool = True
    boxes: bool = False
    labels: bool = True


@dataclass
class Pipeline:
    """Photo → faces → annotated photo, with a shared detector and classifier."""

    detector: FaceDetector
    classifier: Classifier
    emojis: Mapping[str, np.ndarray] = field(default_factory=load_emojis)

    def analyze(self, rgb: np.ndarray, settings: DetectorSettings | None = None) -> list[Face]:
        """Every face in an RGB image with its probabilities, largest face first."""
        gray = to_gray(rgb)
        boxes = self.detector.detect(gray, settings)
        return self.classify(gray, boxes)

    def classify(self, gray: np.ndarray, boxes: Sequence[Box]) -> list[Face]:
        """Classify given face boxes in one batched call (the live page brings tracked boxes)."""
        if not boxes:
            return []
        probabilities = self.classifier(crop_faces(gray, list(boxes)))
        return [
            Face(box, tuple(float(p) for p in row)) for box, row in zip(boxes, probabilities, strict=True)
        ]

    def annotate(
        self, rgb: np.ndarray, faces: Sequence[Face], options: OverlayOptions = OverlayOptions()
    ) -> np.ndarray:
        """A copy of ``rgb`` with each face's emoji (and box/label) drawn over it."""
        out = rgb.copy()
        numbered = len(faces) > 1
        for index, face in enumerate(faces, start=1):
            frame = fer_frame(face.box)
            if options.boxes:
                draw_box(out, frame)
            if options.emoji:
                paste_rgba(out, self.emojis[face.emotion], frame)
            if options.labels:
                prefix = f"#{index} " if numbered else ""
                draw_label(out, frame, f"{prefix}{face.emotion} {face.confidence:.0%}")
        return out
