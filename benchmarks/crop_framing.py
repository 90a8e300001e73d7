"""How does a Haar box relate to a FER2013 frame? The measurement behind app.framing.FER_CROP_SCALE.

    python -m benchmarks.crop_framing --data /path/to/fer2013 [--per-class 200]

Each FER2013 training image is upscaled 4× and padded by half its side with its own edge pixels
(the cascade needs room around a face), then our detector runs with the app's defaults. For the
images where it finds exactly one face, it prints how the box compares to the FER2013 frame:
side ratio and centre offset, both as fractions of the frame side. The crop scale that frames a
photo's face like FER2013 is then 1 / (median side ratio).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from app.detection import DetectorSettings, FaceDetector
from training.data import load_split

UPSCALE = 4


def measure(pixels: np.ndarray, detector: FaceDetector) -> tuple[float, float, float] | None:
    """(side ratio, x offset, y offset) of the one face found in a FER2013 image, or None."""
    side = pixels.shape[0] * UPSCALE
    big = cv2.resize(pixels, (side, side), interpolation=cv2.INTER_CUBIC)
    pad = side // 2
    padded = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    settings = DetectorSettings(min_size=side // 3, detection_side=padded.shape[0])
    boxes = detector.detect(padded, settings)
    if len(boxes) != 1:
        return None
    box = boxes[0]
    cx, cy = box.center
    return max(box.w, box.h) / side, (cx - pad - side / 2) / side, (cy - pad - side / 2) / side


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.crop_framing", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--data", type=Path, required=True, help="FER2013 folder (Kaggle layout)")
    parser.add_argument("--per-class", type=int, default=200, help="training images per class (default 200)")
    args = parser.parse_args(argv)

    dataset = load_split(args.data, "train", limit_per_class=args.per_class)
    detector = FaceDetector()
    found = [m for pixels in dataset.x[..., 0].astype(np.uint8) if (m := measure(pixels, detector))]
    if not found:
        print("no face found in any image")
        return 1
    ratio, dx, dy = np.array(found).T
    print(f"{len(dataset):,} images, one face found in {len(found):,} ({len(found) / len(dataset):.0%})")
    low, high = np.percentile(ratio, [25, 75])
    print(f"Haar box side / FER2013 frame side: median {np.median(ratio):.3f} (IQR {low:.3f}–{high:.3f})")
    print(f"centre offset / frame side: x {np.median(dx):+.3f}, y {np.median(dy):+.3f} (median)")
    print(f"crop scale that frames like FER2013: {1 / np.median(ratio):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
