"""How long one classifier call takes, for 1 and for 8 faces: the model's share of a live frame.

    python -m benchmarks.classifier_speed [MODEL.keras ...] [--faces 1 8] [--calls 200]

Each model (default: the shipped one) is called through :class:`app.classifier.EmotionClassifier`,
the compiled forward pass the pages use, on random crops, after a few warm-up calls. It prints the
median and p95 of ``--calls`` calls per batch size. Targets (2-core CPU): ≤ 3 ms for one face,
≤ 10 ms for eight. Other load on the machine (``load average`` is printed) slows every call.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from app.classifier import EmotionClassifier, ModelError
from app.emotions import DEFAULT_MODEL_PATH, INPUT_SHAPE

WARMUP_CALLS = 10


def call_times(classifier: EmotionClassifier, faces: int, calls: int) -> np.ndarray:
    """Seconds per call of ``classifier`` on ``faces`` random crops, after warming up."""
    crops = np.random.default_rng(0).uniform(0, 255, (faces, *INPUT_SHAPE)).astype(np.float32)
    for _ in range(WARMUP_CALLS):
        classifier(crops)
    times = np.empty(calls)
    for index in range(calls):
        started = time.perf_counter()
        classifier(crops)
        times[index] = time.perf_counter() - started
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.classifier_speed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("models", nargs="*", type=Path, default=[DEFAULT_MODEL_PATH], help="default: shipped")
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per batch size (default 200)")
    args = parser.parse_args(argv)
    if min(args.faces) < 1 or args.calls < 1:
        parser.error("--faces and --calls must be at least 1")
    print(f"cpu cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    for path in args.models:
        try:
            classifier = EmotionClassifier.load(path)
        except ModelError as err:
            print(f"{path}: {err}", file=sys.stderr)
            return 2
        for faces in args.faces:
            ms = call_times(classifier, faces, args.calls) * 1000
            print(
                f"{path.name:<24} {faces} face(s): median {np.median(ms):6.2f} ms   "
                f"p95 {np.percentile(ms, 95):6.2f} ms   ({classifier.model.count_params():,} weights)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
