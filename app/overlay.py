"""Draw emojis over faces: alpha-blended, scaled to the face, clipped at the frame's edges.

Blending is whole-array numpy on the overlapping region only, so it costs the same for a 4K
photo as for a webcam frame and never loops over pixels in Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from app.detection import Box
from app.emotions import CLASS_NAMES, EMOJI_DIR

#: Label colours (RGB): dark text on a light band reads on any photo.
_BAND = (255, 255, 255)
_TEXT = (20, 20, 20)


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
    """Write ``text`` on a light band just above the box (below it at the top edge), in place."""
    scale = max(0.4, min(2.0, box.w / 220))
    thickness = max(1, round(scale * 2))
    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, round(4 * scale))
    band_h = text_h + baseline + 2 * pad
    top = box.y - band_h if box.y - band_h >= 0 else min(box.y + box.h, image.shape[0] - band_h)
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
