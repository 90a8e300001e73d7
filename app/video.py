"""Reading video files as RGB frames with their times, for replays, benchmarks and tests.

OpenCV's bundled FFmpeg decodes the common containers, so no extra dependency is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np


def video_frames(
    path: str | Path, size: tuple[int, int] | None = None, start_s: float = 0.0, end_s: float | None = None
) -> Iterator[tuple[float, np.ndarray]]:
    """``(time in seconds, RGB frame)`` for each frame of a video between ``start_s`` and ``end_s``.

    ``size`` is ``(width, height)`` to resize to. Times come from the frame index and the
    container's frame rate (30 when it does not say). An unreadable file raises
    ``FileNotFoundError``.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FileNotFoundError(f"cannot open video {path}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    try:
        index = 0
        while True:
            ok, bgr = capture.read()
            seconds = index / fps
            index += 1
            if not ok or (end_s is not None and seconds >= end_s):
                return
            if seconds < start_s:
                continue
            if size is not None and (bgr.shape[1], bgr.shape[0]) != size:
                bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            yield seconds, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
