"""Emojify photos from the shell: ``python -m app IMAGE [IMAGE ...] [--out DIR] [--json]``.

Writes an annotated copy of each image (into ``./emojified/`` unless ``--out`` says otherwise)
and, with ``--json``, prints one JSON object per image per line, faces in reading order (left
to right, top to bottom) as they are numbered on the copy. A file that can't be read or
processed, for whatever reason, gets an error object (or one ``error:`` line on stderr) and the
batch goes on; the exit code is 1 if any image failed, so scripts can tell.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.calibration import Calibration, CalibrationError, calibrate_largest, calibrate_photos
from app.detection import DetectorSettings, FaceDetector
from app.emotions import DEFAULT_MODEL_PATH
from app.images import ImageError, encode_image, read_image
from app.overlay import reading_order
from app.pipeline import OverlayOptions, Pipeline

#: Where annotated copies go without ``--out``: a folder of their own, relative to where it runs.
DEFAULT_OUT = "emojified"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Put an emoji over every face in each photo and write an annotated copy of it.",
    )
    parser.add_argument("images", nargs="+", type=Path, help="photos to emojify")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(DEFAULT_OUT),
        help=f"folder for the annotated copies, made if missing (default: ./{DEFAULT_OUT}/)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per image")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="a .keras emotion model")
    parser.add_argument("--boxes", action="store_true", help="also outline each face")
    parser.add_argument(
        "--reference",
        type=Path,
        help="a neutral photo of the person in the photos: their face (the largest) is read against it",
    )
    defaults = DetectorSettings()
    parser.add_argument("--scale-factor", type=float, default=defaults.scale_factor)
    parser.add_argument("--min-neighbors", type=int, default=defaults.min_neighbors)
    parser.add_argument("--min-size", type=int, default=defaults.min_size, help="smallest face, in pixels")
    return parser.parse_args(argv)


def unused_path(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name-1``, ``name-2``… so an earlier result is never overwritten."""
    candidate = folder / name
    stem, suffix = candidate.stem, candidate.suffix
    counter = 1
    while candidate.exists():
        candidate = folder / f"{stem}-{counter}{suffix}"
        counter += 1
    return candidate


def emojify_file(
    pipeline: Pipeline, path: Path, args: argparse.Namespace, calibration: Calibration | None = None
) -> dict:
    """Annotate one image; the returned dict is what ``--json`` prints for it."""
    settings = DetectorSettings(args.scale_factor, args.min_neighbors, args.min_size)
    rgb = read_image(path)
    # The reference's person is the largest face; then numbered on the copy as listed.
    faces = reading_order(calibrate_largest(pipeline.analyze(rgb, settings), calibration))
    annotated = pipeline.annotate(rgb, faces, OverlayOptions(boxes=args.boxes))
    fmt = "jpg" if path.suffix.lower() in (".jpg", ".jpeg") else "png"
    args.out.mkdir(parents=True, exist_ok=True)
    target = unused_path(args.out, f"{path.stem}_emojify.{fmt}")
    with open(target, "xb") as handle:  # "x": fail rather than overwrite a file made meanwhile
        handle.write(encode_image(annotated, fmt))
    return {"image": str(path), "faces": [face.to_dict() for face in faces], "output": str(target)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from app.classifier import EmotionClassifier, ModelError

    try:
        settings = DetectorSettings(args.scale_factor, args.min_neighbors, args.min_size)
        pipeline = Pipeline(FaceDetector(settings), EmotionClassifier.load(args.model))
    except (ModelError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    calibration = None
    if args.reference is not None:
        try:
            calibration = calibrate_photos(pipeline, [read_image(args.reference)], settings)
        except (ImageError, CalibrationError) as err:
            print(f"error: reference {args.reference}: {err}", file=sys.stderr)
            return 2
    failed = 0
    for path in args.images:
        try:
            result = emojify_file(pipeline, path, args, calibration)
        except (ImageError, OSError) as err:
            failed += 1
            result = {"image": str(path), "error": str(err)}
        except Exception as err:  # a surprise in one file (a library's error) must not end the batch
            failed += 1
            detail = " ".join(str(err).split())  # one line: OpenCV's messages span several
            result = {"image": str(path), "error": f"could not process it ({type(err).__name__}: {detail})"}
        if args.json:
            print(json.dumps(result), flush=True)
        elif "error" in result:
            print(f"{path}: error: {result['error']}", file=sys.stderr)
        else:
            faces = ", ".join(f"{f['emotion']} {f['confidence']:.0%}" for f in result["faces"])
            print(f"{path}: {faces or 'no face found'} → {result['output']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
