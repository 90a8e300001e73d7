"""Cut face crops that look like FER2013's, because that is what the model learnt from.

FER2013's 48×48 faces are square and centred on the face. Running the same Haar cascade on
upscaled FER2013 images finds a box whose side is a median 0.99 of the image side (IQR
0.93–1.04), centred within 0.5 % (1,204 training images, one face found in 789:
``python -m benchmarks.crop_framing``). So a FER-like crop
is the Haar box made square and widened by ``FER_CROP_SCALE``; parts of it outside the photo
are filled by repeating the edge, as a face at a photo's border would be.
"""

from __future__ import annotations

import cv2
import numpy as np

from app.detection import Box
from app.emotions import IMAGE_SIZE

#: Side of a FER2013 frame relative to the Haar box found in it (1 / 0.99).
FER_CROP_SCALE = 1.01


def fer_frame(box: Box, scale: float = FER_CROP_SCALE) -> Box:
    """The square, FER2013-framed box around a detected face (may extend past the image)."""
    side = max(1, round(max(box.w, box.h) * scale))
    cx, cy = box.center
    return Box(round(cx - side / 2), round(cy - side / 2), side, side)


def crop_faces(gray: np.ndarray, boxes: list[Box], scale: float = FER_CROP_SCALE) -> np.ndarray:
    """Model-ready crops ``(N, 48, 48, 1)`` float32 in 0..255 for every box, in one array."""
    crops = np.empty((len(boxes), IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.float32)
    height, width = gray.shape[:2]
    for index, box in enumerate(boxes):
        frame = fer_frame(box, scale)
        left, top = max(frame.x, 0), max(frame.y, 0)
        right, bottom = min(frame.x + frame.w, width), min(frame.y + frame.h, height)
        patch = gray[top:bottom, left:right]
        if patch.size == 0:
            raise ValueError(f"box {box} lies outside the {width}×{height} image")
        patch = cv2.copyMakeBorder(
            patch,
            top - frame.y,
            frame.y + frame.h - bottom,
            left - frame.x,
            frame.x + frame.w - right,
            cv2.BORDER_REPLICATE,
        )
        interpolation = cv2.INTER_AREA if frame.w >= IMAGE_SIZE else cv2.INTER_LINEAR
        crops[index, :, :, 0] = cv2.resize(patch, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interpolation)
    return crops
