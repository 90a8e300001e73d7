"""Face boxes from OpenCV's Haar frontal-face cascade.

Haar is what the FER2013 tutorials use, it is fast on a CPU, and its boxes are framed almost
exactly like FER2013's own crops (see :mod:`app.framing`). Detection runs on a shrunken
grayscale copy, so its cost depends on ``detection_side``, not on the photo's resolution.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CASCADE_FILE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates of the image it was found in."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0:
            raise ValueError(f"a box needs a positive size, got {self.w}×{self.h}")

    @property
    def area(self) -> int:
        return self.w * self.h

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def iou(self, other: Box) -> float:
        """Intersection over union: how much two boxes are the same face."""
        left, top = max(self.x, other.x), max(self.y, other.y)
        right = min(self.x + self.w, other.x + other.w)
        bottom = min(self.y + self.h, other.y + other.h)
        inter = max(0, right - left) * max(0, bottom - top)
        return inter / (self.area + other.area - inter)


@dataclass(frozen=True)
class DetectorSettings:
    """The cascade's knobs, exposed to users on every page and in the CLI.

    ``min_size`` is in pixels of the original image; ``detection_side`` is the long side the
    image is shrunk to before the cascade runs (bigger finds smaller faces, slower). The defaults
    (scale 1.2, 6 neighbours, on a histogram-equalised image) found every face and nothing else
    on 25 real portraits and 9 face-free photos; the tutorials' 1.3/5 misses more faces.
    """

    scale_factor: float = 1.2
    min_neighbors: int = 6
    min_size: int = 40
    detection_side: int = 800

    def __post_init__(self) -> None:
        if not self.scale_factor > 1.0:
            raise ValueError("scale_factor must be greater than 1.0 (e.g. 1.1)")
        if self.min_neighbors < 0 or self.min_size < 1 or self.detection_side < 64:
            raise ValueError("min_neighbors ≥ 0, min_size ≥ 1 and detection_side ≥ 64 are required")


def cascade_path() -> Path:
    """Where OpenCV keeps the frontal-face cascade; OpenCV 5 wheels no longer ship it."""
    data = getattr(cv2, "data", None)
    path = Path(data.haarcascades) / CASCADE_FILE if data else None
    if path is None or not path.is_file() or not hasattr(cv2, "CascadeClassifier"):
        raise RuntimeError(
            f"OpenCV {cv2.__version__} has no Haar cascades; install opencv-python-headless<5 "
            "(see requirements.txt)"
        )
    return path


class FaceDetector:
    """Finds frontal faces; safe to share between threads (one cascade per thread)."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._path = str(cascade_path())
        self._local = threading.local()

    def _cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = cv2.CascadeClassifier(self._path)
            if cascade.empty():
                raise RuntimeError(f"OpenCV could not load the face cascade {self._path}")
            self._local.cascade = cascade
        return cascade

    def detect(self, gray: np.ndarray, settings: DetectorSettings | None = None) -> list[Box]:
        """Boxes of the faces in a uint8 grayscale image, largest first."""
        settings = settings or self.settings
        height, width = gray.shape[:2]
        scale = min(1.0, settings.detection_side / max(height, width))
        small = (
            gray
            if scale == 1.0
            else cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        )
        min_side = max(12, round(settings.min_size * scale))
        if min(small.shape[:2]) < min_side:
            return []
        found = self._cascade().detectMultiScale(
            cv2.equalizeHist(small),
            scaleFactor=settings.scale_factor,
            minNeighbors=settings.min_neighbors,
            minSize=(min_side, min_side),
        )
        boxes = [
            Box(round(x / scale), round(y / scale), max(1, round(w / scale)), max(1, round(h / scale)))
            for x, y, w, h in np.asarray(found).reshape(-1, 4)
        ]
        return sorted(boxes, key=lambda box: box.area, reverse=True)
