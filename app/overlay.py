"""Draw emojis over faces: alpha-blended, scaled to the face, clipped at the frame's edges.

Blending is whole-array numpy on the overlapping region only, so it costs the same for a 4K
photo as for a webcam frame and never loops over pixels in Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol, TypeVar

import cv2
import numpy as np

from app.detection import Box
from app.emotions import CLASS_NAMES, EMOJI_DIR

#: Label colours (RGB): dark text on a light band reads on any photo.
_BAND = (255, 255, 255)
_TEXT = (20, 20, 20)
#: A label is never drawn in this bottom share of the image: a video player's controls cover it.
BOTTOM_CLEARANCE = 0.15
#: Faces whose centres are less than this share of a face's height apart, vertically, are one row.
SAME_ROW = 0.5


class HasBox(Protocol):
    """Anything with a face box: a detected face, a tracked one."""

    @property
    def box(self) -> Box: ...


FaceT = TypeVar("FaceT", bound=HasBox)


def reading_order(faces: Sequence[FaceT]) -> list[FaceT]:
    """``faces`` left to right, top to bottom: the order people read the numbers on a photo.

    The detector returns faces largest first, so a group photo was numbered #3, #2, #1 across.
    Faces whose centres are within half a face height of a row's first face share its row, so a
    head a little lower than its neighbours is not numbered after the whole row.
    """
    rows: list[list[FaceT]] = []
    for face in sorted(faces, key=lambda face: face.box.center[1]):
        if rows and face.box.center[1] - rows[-1][0].box.center[1] < SAME_ROW * rows[-1][0].box.h:
            rows[-1].append(face)
        else:
            rows.append([face])
    return [face for row in rows for face in sorted(row, key=lambda face: face.box.center[0])]


@lru_cache(maxsize=4)
def load_emojis(folder: Path = EMOJI_DIR) -> Mapping[str, np.ndarray]:
    """The seven RGBA emoji pictures, read once per process."""
    emojis = {}
    for name in CLASS_NAMES:
        path = folder / f"{name}.png"
        picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if picture is None or picture.ndim != 3 or picture.shape[2] != 4:
            raise FileNotFoundError(f"emoji picture missing or not RGBA: {path}")
        emojis[name] = cv2.cvtColor(picture, cv2.COLOR_BGRA2RGBA)
    return emojis


def paste_rgba(image: np.ndarray, picture: np.ndarray, box: Box) -> None:
    """Alpha-blend ``picture`` (RGBA) into ``image`` (RGB, in place), resized to ``box``."""
    height, width = image.shape[:2]
    left, top = max(box.x, 0), max(box.y, 0)
    right, bottom = min(box.x + box.w, width), min(box.y + box.h, height)
    if right <= left or bottom <= top:
        return
    interpolation = cv2.INTER_AREA if box.w < picture.shape[1] else cv2.INTER_LINEAR
    scaled = cv2.resize(picture, (box.w, box.h), interpolation=interpolation)
    scaled = scaled[top - box.y : bottom - box.y, left - box.x : right - box.x]
    alpha = scaled[:, :, 3:4].astype(np.float32) / 255.0
    region = image[top:bottom, left:right]
    region[:] = (scaled[:, :, :3] * alpha + region * (1.0 - alpha)).astype(np.uint8)


def draw_box(image: np.ndarray, box: Box, color: tuple[int, int, int] = (255, 200, 0)) -> None:
    """Outline a face (in place); line width grows with the image so it stays visible."""
    thickness = max(1, round(max(image.shape[:2]) / 400))
    cv2.rectangle(image, (box.x, box.y), (box.x + box.w, box.y + box.h), color, thickness)


def draw_label(image: np.ndarray, box: Box, text: str) -> None:
    """Write ``text`` on a light band just above the box, in place.

    Where there is no room above, the band goes below the box, unless that puts it in the bottom
    :data:`BOTTOM_CLEARANCE` of the image, where a video player's controls would hide it; then it
    sits at the top edge, over the top of the face. Text sized for the face but wider than the
    image is made smaller until it fits, so the label is never cut off at the image's edge.
    """
    scale = max(0.4, min(2.0, box.w / 220))
    thickness = max(1, round(scale * 2))
    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, round(4 * scale))
    while text_w + 2 * pad > image.shape[1] and scale > 0.1:
        scale *= min(0.98, image.shape[1] / (text_w + 2 * pad))
        (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        pad = max(2, round(4 * scale))
    band_h = text_h + baseline + 2 * pad
    top = label_top(box, band_h, image.shape[0])
    left = min(max(box.x, 0), max(0, image.shape[1] - text_w - 2 * pad))
    cv2.rectangle(image, (left, top), (left + text_w + 2 * pad, top + band_h), _BAND, cv2.FILLED)
    cv2.putText(
        image,
        text,
        (left + pad, top + pad + text_h),
        cv2.FONT_HERSHEY_SIMPLEX,
        scale,
        _TEXT,
        thickness,
        cv2.LINE_AA,
    )


def label_top(box: Box, band_h: int, height: int) -> int:
    """Where a label band ``band_h`` high starts: above the box, else below it, else at the top."""
    if box.y - band_h >= 0:
        return box.y - band_h
    below = box.y + box.h
    if below + band_h <= height * (1 - BOTTOM_CLEARANCE):
        return below
    return 0


#: The verdict code's blocks: side in pixels (a multiple of the video codecs' 8-pixel blocks, so
#: compression keeps each block one clear shade) and layout: a white and a black block to find
#: the code, then the verdict's number (its last 10 bits), the emotion's index (3 bits; 7 for no
#: face), the confidence in percent (7 bits) and a check: how many of those 20 bits are set, mod
#: 16, so a block the encoder blurred into the wrong shade makes the frame unreadable, not wrong.
CODE_BLOCK = 16
CODE_SYNC = (1, 0)
CODE_FIELDS = (10, 3, 7)
CODE_CHECK_BITS = 4
NO_FACE_CODE = 2 ** CODE_FIELDS[1] - 1


def draw_verdict_code(image: np.ndarray, number: int, emotion: str | None, confidence: float) -> None:
    """Write a verdict into the top-left corner as a row of black and white blocks, in place.

    For the browser tests only (``LiveSettings.verdict_code``): they read from the video the user
    would see which verdict, emotion and confidence the frame carries, to check that the panel
    beside it says the same. The confidence is the percentage as the labels print it.
    """
    index = NO_FACE_CODE if emotion is None else CLASS_NAMES.index(emotion)
    percent = int(f"{confidence:.0%}".rstrip("%"))
    values = (number % 2 ** CODE_FIELDS[0], index, percent)
    data = [bit for value, width in zip(values, CODE_FIELDS, strict=True) for bit in _bits(value, width)]
    bits = [*CODE_SYNC, *data, *_bits(sum(data) % 2**CODE_CHECK_BITS, CODE_CHECK_BITS)]
    for position, bit in enumerate(bits):
        left = position * CODE_BLOCK
        image[:CODE_BLOCK, left : left + CODE_BLOCK] = 255 if bit else 0


def _bits(value: int, width: int) -> list[int]:
    """``value`` as ``width`` bits, most significant first."""
    return [(value >> shift) & 1 for shift in reversed(range(width))]
