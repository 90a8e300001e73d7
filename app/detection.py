"""Face boxes from OpenCV's Haar frontal-face cascade.

Haar is what the FER2013 tutorials use, it is fast on a CPU, and its boxes are framed almost
exactly like FER2013's own crops (see :mod:`app.framing`). Detection runs on a shrunken
grayscale copy, so its cost depends on ``detection_side``, not on the photo's resolution.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

CASCADE_FILE = "haarcascade_frontalface_default.xml"
EYE_CASCADE_FILE = "haarcascade_eye.xml"
#: Scale step of the second look at an image in which no face was found.
FINER_SCALE_FACTOR = 1.1
#: Margin put around a photo in which no face was found, as a share of its longer side. The
#: cascade needs some background around a face: in close-ups and face crops it has none.
CLOSE_UP_PAD = 0.5
#: A close-up is searched at least this big (longer side, padded): a small crop such as a 48×48
#: FER2013 image is enlarged until its face is well above the cascade's 24-pixel window.
CLOSE_UP_SIDE = 320
#: In that second search a face must fill at least this share of the photo's shorter side, which
#: is what makes it a close-up, and keeps small false faces in the margin out. With only large
#: windows left, fewer neighbours suffice (on FER2013 test images enlarged to 480×480: 73 % found
#: with the usual 6, 80 % with 3; none found on the face-free fixtures with either).
CLOSE_UP_MIN_FACE = 0.4
CLOSE_UP_MIN_NEIGHBORS = 3
#: An image this small (longer side, pixels) and about square, with no face found in it, is a face
#: crop itself (a FER2013 image, an avatar): it is taken as one face filling the image. Below
#: the cascade's own window (24 pixels) it is too small to be anything.
FACE_CROP_MIN_SIDE = 24
FACE_CROP_MAX_SIDE = 128
FACE_CROP_MAX_ASPECT = 1.25
#: A larger, about square image with no face found is a face crop if a pair of eyes is in it: two
#: eyes side by side in its upper part, upright or turned by up to EYE_PAIR_TILT degrees. The face
#: cascade misses tilted and half-turned faces that fill the frame; the eye cascade is searched on
#: the image shrunk to EYE_SEARCH_SIDE pixels, for eyes a tenth to a third of its side, and not in
#: an image flatter than EYE_MIN_CONTRAST (standard deviation of its gray levels; FER2013's
#: images: 24 at the 1st percentile), whose equalised noise the eye cascade can take for eyes.
#: On FER2013 PrivateTest enlarged to 480×480 (60 per class) it raised the faces found from 75.2 %
#: to 87.2 %; on 264 face-free images (scikit-image's samples and zoomed crops of them) it found
#: no face. (With 2 neighbours: 88.7 %, but one false face.)
EYE_SEARCH_SIDE = 144
EYE_PAIR_TILT = 20.0
EYE_MIN_NEIGHBORS = 3
EYE_MIN_CONTRAST = 16.0
#: Searching near a known face (``FaceDetector.detect_near``): the margin around its box, as a share
#: of its size, and the sizes looked for, as shares of its size. A head moves and turns little
#: between two looks a tenth of a second apart.
NEAR_MARGIN = 0.5
NEAR_SIZES = (0.7, 1.5)
#: The smallest face looked for near a known one is shrunk to this many pixels: well above the
#: cascade's 24-pixel window; with 30 it found 88 % of what the whole-frame search finds, with 40, 98 %.
NEAR_MIN_PIXELS = 40
#: Near a known face the cascade steps its window sizes finer and needs fewer neighbours (2 of the
#: default 6). On the Pexels clip that keeps the laughing, tilted head in 471 of 472 frames (the
#: default strictness: 441), and in 385 searches beside the face or in a face-free photo it found
#: nothing with either.
NEAR_SCALE_FACTOR = 1.1
NEAR_FEWER_NEIGHBORS = 4


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
    #: When nothing is found, look again, finer and for a close-up (see ``FaceDetector.detect``).
    look_again: bool = True

    def __post_init__(self) -> None:
        if not self.scale_factor > 1.0:
            raise ValueError("scale_factor must be greater than 1.0 (e.g. 1.1)")
        if self.min_neighbors < 0 or self.min_size < 1 or self.detection_side < 64:
            raise ValueError("min_neighbors ≥ 0, min_size ≥ 1 and detection_side ≥ 64 are required")


def cascade_path(name: str = CASCADE_FILE) -> Path:
    """Where OpenCV keeps a cascade (default: frontal faces); OpenCV 5 wheels no longer ship them."""
    data = getattr(cv2, "data", None)
    path = Path(data.haarcascades) / name if data else None
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
        self._local = threading.local()

    def _cascade(self, name: str = CASCADE_FILE) -> cv2.CascadeClassifier:
        """This thread's copy of a cascade: OpenCV's are not safe to share between threads."""
        cascades = self._local.__dict__.setdefault("cascades", {})
        if name not in cascades:
            path = str(cascade_path(name))
            cascade = cv2.CascadeClassifier(path)
            if cascade.empty():
                raise RuntimeError(f"OpenCV could not load the cascade {path}")
            cascades[name] = cascade
        return cascades[name]

    def detect(self, gray: np.ndarray, settings: DetectorSettings | None = None) -> list[Box]:
        """Boxes of the faces in a uint8 grayscale image, largest first.

        When nothing is found and ``settings.look_again`` is on, the cascade looks again with finer
        scale steps (a face between two of the usual steps can be missed: 3 of 100 London
        portraits), then in a padded and, if small, enlarged copy for a close-up filling most of the
        image; failing that, an about square image is taken to be a face crop if it is small or
        shows a pair of eyes. The second look costs only where the first found nothing, so a
        stream showing a face never pays for it.
        """
        settings = settings or self.settings
        boxes = self._search(gray, settings)
        if boxes or not settings.look_again:
            return boxes
        return self.look_again(gray, settings)

    def look_again(self, gray: np.ndarray, settings: DetectorSettings | None = None) -> list[Box]:
        """The second look of ``detect`` alone, for an image in which its first look found nothing.

        It costs about three first looks, so the live path, which searches every frame while no
        face is tracked, takes it only now and then (app.live).
        """
        settings = settings or self.settings
        finer = replace(
            settings, scale_factor=min(settings.scale_factor, FINER_SCALE_FACTOR), look_again=False
        )
        return (
            self._search(gray, finer)
            or self._close_up(gray, settings)
            or _face_crop(gray)
            or self._eye_pair_crop(gray)
        )

    def detect_near(self, gray: np.ndarray, box: Box, settings: DetectorSettings | None = None) -> list[Box]:
        """Faces about as big as ``box`` in and around it, largest first: where a tracked face went.

        A tracked face's size is known, so only a few window sizes in a small region are tried:
        ~4 ms instead of ~21 ms for a whole 640×480 webcam frame with a large face in it, which
        frees a fifth of a core for the video itself (see app.live). A face seen there a moment
        ago is expected, so the search is finer and less strict than ``settings`` (which gives
        only the cascade's strictness): it keeps a laughing, tilted head that the whole-frame
        search loses.
        """
        settings = settings or self.settings
        height, width = gray.shape[:2]
        margin = round(NEAR_MARGIN * max(box.w, box.h))
        left, top = max(0, box.x - margin), max(0, box.y - margin)
        right, bottom = min(width, box.x + box.w + margin), min(height, box.y + box.h + margin)
        if right - left < 2 or bottom - top < 2:
            return []
        smallest, largest = (max(1, round(share * min(box.w, box.h))) for share in NEAR_SIZES)
        scale = min(1.0, NEAR_MIN_PIXELS / smallest)
        search = DetectorSettings(
            min(settings.scale_factor, NEAR_SCALE_FACTOR),
            max(1, settings.min_neighbors - NEAR_FEWER_NEIGHBORS),
            smallest,
            max(64, round(max(right - left, bottom - top) * scale)),
            look_again=False,
        )
        found = self._search(gray[top:bottom, left:right], search, max_size=largest)
        return [Box(b.x + left, b.y + top, b.w, b.h) for b in found]

    def _close_up(self, gray: np.ndarray, settings: DetectorSettings) -> list[Box]:
        """Faces filling most of the image, found with a margin the cascade can see them in."""
        height, width = gray.shape[:2]
        pad = round(CLOSE_UP_PAD * max(height, width))
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        zoom = max(1.0, CLOSE_UP_SIDE / max(padded.shape[:2]))
        if zoom > 1.0:
            padded = cv2.resize(padded, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
        min_face = max(settings.min_size, CLOSE_UP_MIN_FACE * min(height, width))
        search = DetectorSettings(
            settings.scale_factor,
            min(settings.min_neighbors, CLOSE_UP_MIN_NEIGHBORS),
            max(1, round(min_face * zoom)),
            max(settings.detection_side, CLOSE_UP_SIDE),
            look_again=False,
        )
        boxes = []
        for box in self._search(padded, search):
            x, y = box.x / zoom - pad, box.y / zoom - pad
            found = Box(round(x), round(y), max(1, round(box.w / zoom)), max(1, round(box.h / zoom)))
            cx, cy = found.center
            if 0 <= cx < width and 0 <= cy < height:  # the face is in the photo, not in the margin
                boxes.append(found)
        return boxes

    def _eye_pair_crop(self, gray: np.ndarray) -> list[Box]:
        """The whole image as one face when it is about square and shows a pair of eyes, else nothing."""
        height, width = gray.shape[:2]
        if not _about_square(height, width):
            return []
        side = EYE_SEARCH_SIDE
        small = cv2.resize(gray, (side, side), interpolation=cv2.INTER_AREA)
        if small.std() < EYE_MIN_CONTRAST:
            return []
        small = cv2.equalizeHist(small)
        centre = (side / 2, side / 2)
        for angle in (0.0, -EYE_PAIR_TILT, EYE_PAIR_TILT):
            turned = small
            if angle:
                rotation = cv2.getRotationMatrix2D(centre, angle, 1.0)
                turned = cv2.warpAffine(small, rotation, (side, side), borderMode=cv2.BORDER_REPLICATE)
            eyes = self._cascade(EYE_CASCADE_FILE).detectMultiScale(
                turned,
                scaleFactor=1.1,
                minNeighbors=EYE_MIN_NEIGHBORS,
                minSize=(side // 10, side // 10),
                maxSize=(side // 3, side // 3),
            )
            if _is_eye_pair(np.asarray(eyes).reshape(-1, 4), side):
                return _whole_image_face(height, width)
        return []

    def _search(self, gray: np.ndarray, settings: DetectorSettings, max_size: int | None = None) -> list[Box]:
        """One pass of the cascade over ``gray`` shrunk to ``settings.detection_side``.

        ``max_size`` (pixels of ``gray``) skips larger windows; none by default.
        """
        height, width = gray.shape[:2]
        scale = min(1.0, settings.detection_side / max(height, width))
        min_side = max(12, round(settings.min_size * scale))
        if round(min(height, width) * scale) < min_side:  # no face fits (and a 1×2000 strip shrinks to 0)
            return []
        small = (
            gray
            if scale == 1.0
            else cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        )
        max_side = 0 if max_size is None else max(min_side, round(max_size * scale))
        found = self._cascade().detectMultiScale(
            cv2.equalizeHist(small),
            scaleFactor=settings.scale_factor,
            minNeighbors=settings.min_neighbors,
            minSize=(min_side, min_side),
            maxSize=(max_side, max_side),
        )
        boxes = [
            Box(round(x / scale), round(y / scale), max(1, round(w / scale)), max(1, round(h / scale)))
            for x, y, w, h in np.asarray(found).reshape(-1, 4)
        ]
        return sorted(boxes, key=lambda box: box.area, reverse=True)


def _face_crop(gray: np.ndarray) -> list[Box]:
    """The whole image as one face when it is small and about square (a face crop), else nothing.

    The box is shrunk by the crop framing's scale, so that the FER2013-framed crop cut around it
    (app.framing) is the image itself.
    """
    height, width = gray.shape[:2]
    if not _about_square(height, width) or max(height, width) > FACE_CROP_MAX_SIDE:
        return []
    return _whole_image_face(height, width)


def _about_square(height: int, width: int) -> bool:
    """Whether an image has the shape of a face crop: about square, and not below the cascade's window."""
    short_side, long_side = sorted((height, width))
    return short_side >= FACE_CROP_MIN_SIDE and long_side <= FACE_CROP_MAX_ASPECT * short_side


def _whole_image_face(height: int, width: int) -> list[Box]:
    """The face box whose FER2013-framed crop (app.framing) is the whole image: shrunk by its scale."""
    from app.framing import FER_CROP_SCALE  # here: app.framing imports this module

    side = max(1, round(max(height, width) / FER_CROP_SCALE))
    return [Box(round((width - side) / 2), round((height - side) / 2), side, side)]


def _is_eye_pair(eyes: np.ndarray, side: int) -> bool:
    """Whether two of the ``(x, y, w, h)`` eye boxes, found in a ``side``-pixel square, are a face's eyes.

    Both must be in the upper 60 % of the square, level (centres within 15 % of the side in height),
    a fifth to two thirds of the side apart, and of similar size (at most twice the other).
    """
    upper = [(x + w / 2, y + h / 2, w) for x, y, w, h in eyes if y + h / 2 < 0.6 * side]
    for i, (x1, y1, w1) in enumerate(upper):
        for x2, y2, w2 in upper[i + 1 :]:
            if 0.2 * side < abs(x1 - x2) < 0.65 * side and abs(y1 - y2) < 0.15 * side and 0.5 < w1 / w2 < 2:
                return True
    return False
