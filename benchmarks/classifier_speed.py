"""How long one classifier call takes, for 1 and for 8 faces: the model's share of a live frame.

    python -m benchmarks.classifier_speed [MODEL.keras ...] [--faces 1 8] [--calls 200]
                                          [--runtime litert keras]

Each model (default: the shipped one) is called through :class:`app.classifier.EmotionClassifier`
on random crops, after a few warm-up calls, in each runtime: ``litert``, what the pages use when
the model has its derived ``.tflite`` (app.light_runtime), and ``keras``, the compiled Keras
forward pass otherwise. It prints the median and p95 of ``--calls`` calls per batch size, and the
largest probability difference between the runtimes; also the CPU time per call, which a busy
machine inflates far less than the wall time. Targets (2-core CPU): ≤ 3 ms for one face,
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
RUNTIMES = ("litert", "keras")
#: Crops on which the runtimes' answers are compared.
CHECK = np.random.default_rng(1).uniform(0, 255, (64, *INPUT_SHAPE)).astype(np.float32)


def call_times(classifier: EmotionClassifier, faces: int, calls: int) -> tuple[np.ndarray, float]:
    """Seconds per call of ``classifier`` on ``faces`` random crops, after warming up, and the
    process's CPU seconds per call: on a busy machine the wall times mostly measure the others'
    load, the CPU time far less so."""
    crops = np.random.default_rng(0).uniform(0, 255, (faces, *INPUT_SHAPE)).astype(np.float32)
    for _ in range(WARMUP_CALLS):
        classifier(crops)
    times = np.empty(calls)
    cpu_started = time.process_time()
    for index in range(calls):
        started = time.perf_counter()
        classifier(crops)
        times[index] = time.perf_counter() - started
    return times, (time.process_time() - cpu_started) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.classifier_speed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("models", nargs="*", type=Path, default=[DEFAULT_MODEL_PATH], help="default: shipped")
    parser.add_argument("--faces", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per batch size (default 200)")
    parser.add_argument(
        "--runtime", nargs="+", choices=RUNTIMES, default=list(RUNTIMES), help="default: both"
    )
    args = parser.parse_args(argv)
    if min(args.faces) < 1 or args.calls < 1:
        parser.error("--faces and --calls must be at least 1")
    print(f"cpu cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    for path in args.models:
        answers = []
        for runtime in args.runtime:
            try:
                classifier = EmotionClassifier.load(path, light=runtime == "litert")
            except ModelError as err:
                print(f"{path}: {err}", file=sys.stderr)
                return 2
            if classifier.runtime.lower() != runtime:
                print(f"{path.name}: no valid LiteRT file (python -m app.light_runtime {path})")
                continue
            for faces in args.faces:
                seconds, cpu = call_times(classifier, faces, args.calls)
                ms = seconds * 1000
                print(
                    f"{path.name:<24} {classifier.runtime:<6} {faces} face(s): median {np.median(ms):6.2f} ms"
                    f"   p95 {np.percentile(ms, 95):6.2f} ms   CPU {cpu * 1000:6.2f} ms"
                    f"   ({classifier.model.count_params():,} weights)"
                )
            answers.append(classifier(CHECK))
        if len(answers) == 2:
            difference = np.abs(answers[0] - answers[1]).max()
            print(f"{path.name:<24} largest probability difference {difference:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
