"""Does calibrating to a face change what the Live page reads from a real video, and at what cost?

    python -m benchmarks.calibration_video [VIDEO] [--seconds 1.0]

The clip is replayed through :class:`app.live.LiveProcessor` (the page's default settings, frames
resized to a webcam's 640×480, each frame at its video time) twice: generic, and calibrated as
the Live page does it (:class:`app.calibration.LiveCalibrator`) on the clip's first neutral-looking
stretch: the first ``--seconds`` in which the generic verdict was neutral in most frames (the Pexels
clip has none: then the stretch with the highest mean probability of neutral, as it says). Then
the main face's verdict, per labelled stretch of the Pexels clip (crying 0–3 s, laughing
13–16.5 s; ``tests/fixtures/video/README.md``), as shares of its frames, generic and calibrated,
and the cost of calibrating one face's verdict (the per-frame work it adds). Timings depend on
the machine's load, which is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.classifier import EmotionClassifier
from app.detection import FaceDetector
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH, REPO_ROOT
from app.live import LiveProcessor
from app.pipeline import Pipeline
from app.video import video_frames

DEFAULT_VIDEO = REPO_ROOT / "tests" / "fixtures" / "video" / "pexels_woman_sad_to_happy.mp4"
WEBCAM_SIZE = (640, 480)
#: The Pexels clip's stretches whose expression is plain (tests/fixtures/video/README.md).
STRETCHES = (("crying", 0.0, 3.0, "sad"), ("laughing", 13.0, 16.5, "happy"))
NO_FACE = "no face"

Frames = list[tuple[float, np.ndarray]]
#: Per frame: its time, the main face's verdict and its probability of neutral.
Verdicts = list[tuple[float, str, float]]


def replay(pipeline: Pipeline, frames: Frames, calibrate_at: float | None, seconds: float) -> Verdicts:
    """The main face's verdict per frame; with ``calibrate_at``, calibrating from that time on."""
    processor = LiveProcessor(pipeline)
    verdicts = []
    started = calibrate_at is None
    for t, rgb in frames:
        if not started and t >= calibrate_at:
            processor.calibrator.start("neutral", seconds)
            started = True
        face = processor.process(rgb, timestamp=t)[1].main_face
        neutral = face.probabilities[CLASS_NAMES.index("neutral")] if face else 0.0
        verdicts.append((t, face.emotion if face else NO_FACE, neutral))
    status = processor.calibrator.status()
    if calibrate_at is not None and status.phase != "calibrated":
        sys.exit(f"calibrating failed: {status.message}")
    return verdicts


def most_neutral_stretch(verdicts: Verdicts, seconds: float) -> tuple[float, float, bool]:
    """Where to calibrate: the first ``seconds`` read neutral in most frames, else the most neutral.

    Returns its start, its frames' mean probability of neutral, and whether most read neutral.
    """
    stretches = []
    for start, *_ in verdicts:
        if verdicts[-1][0] < start + seconds:
            break
        window = [(v, p) for t, v, p in verdicts if start <= t < start + seconds]
        mostly = sum(v == "neutral" for v, _ in window) > len(window) / 2
        mean = float(np.mean([p for _, p in window]))
        if mostly:
            return start, mean, True
        stretches.append((mean, start))
    mean, start = max(stretches)
    return start, mean, False


def shares(verdicts: Verdicts, start: float, end: float) -> Counter[str]:
    picked = [v for t, v, _ in verdicts if start <= t < end]
    return Counter({name: count / len(picked) for name, count in Counter(picked).items()})


def apply_cost_us(pipeline: Pipeline, frames: Frames) -> float:
    """Microseconds to calibrate one face's answer, as each frame's classification does."""
    processor = LiveProcessor(pipeline)
    processor.calibrator.start("neutral", 1.0)
    for t, rgb in frames[:40]:
        processor.process(rgb, timestamp=t)
    calibration = processor.calibrator.status().calibration
    if calibration is None:
        return float("nan")
    answer = np.full(len(CLASS_NAMES), 1 / len(CLASS_NAMES), dtype=np.float32)
    runs = 20_000
    return timeit.timeit(lambda: calibration.apply(answer), number=runs) / runs * 1e6


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.calibration_video", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("video", nargs="?", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds of neutral face to calibrate on")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pipeline = Pipeline(FaceDetector(), EmotionClassifier.load(DEFAULT_MODEL_PATH))
    frames = list(video_frames(args.video, WEBCAM_SIZE))
    generic = replay(pipeline, frames, None, args.seconds)
    start, neutral, mostly = most_neutral_stretch(generic, args.seconds)
    calibrated = replay(pipeline, frames, start, args.seconds)
    print(
        f"{args.video.name}: {len(frames)} frames; calibrated on {start:.2f}–{start + args.seconds:.2f} s, "
        + ("read neutral in most frames" if mostly else "no stretch reads neutral: the most neutral one")
        + f" (mean probability of neutral {neutral:.0%})"
    )
    for name, begin, end, expected in STRETCHES:
        for label, verdicts in (("generic", generic), ("calibrated", calibrated)):
            share = shares(verdicts, begin, end)
            top = ", ".join(f"{emotion} {value:.0%}" for emotion, value in share.most_common(3))
            print(f"  {name} {begin:g}–{end:g} s, {label:<10}: {expected} {share[expected]:.0%} ({top})")
    print(f"calibrating one face's answer: {apply_cost_us(pipeline, frames):.1f} µs per frame")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
