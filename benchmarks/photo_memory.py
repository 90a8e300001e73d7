"""How much memory does one photo add to the server? Peak RSS of the real photo path, per format.

    python -m benchmarks.photo_memory [--path page|cli|both] [--only NAME ...] [--keep DIR]

Builds the worst photos ``app.images`` accepts (each format at the largest size it lets through,
plus issue 24's 10950×10950 16-bit RGBA PNG, which it now refuses) and runs each through the path
a user's photo takes, in a fresh subprocess per photo and path:

* ``page``: what the Photo page does with an upload (its bytes already in memory):
  ``read_image(bytes)``, detect and classify, draw the overlay, encode the PNG download, cut the
  face crops for the cards;
* ``cli``: what ``python -m app PHOTO`` does (``app.__main__.emojify_file``: read from the path,
  analyse, draw, write the annotated copy).

The subprocess loads the shipped model and runs a small portrait through the same path first, so
that TensorFlow's own first-call allocations are not counted; then it resets its peak RSS
(``/proc/self/clear_refs``), runs the photo, and reports VmHWM minus the RSS before it. The target
(issue 24) is under 400 MB for every accepted photo. Linux only: it reads /proc.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from app import images
from app.emotions import DEFAULT_MODEL_PATH, REPO_ROOT

PORTRAIT = REPO_ROOT / "tests" / "fixtures" / "faces" / "london_009_happy.jpg"
TARGET_MB = 400
#: issue 24's photo: 120 MP, 260 KB as a PNG, 3.0 GB at peak before the fix.
ISSUE_SIDE = 10950


def largest_side(pixel_bytes: int, copies: int = 1) -> int:
    """The side of the largest square photo ``app.images`` accepts at ``pixel_bytes`` a pixel."""
    pixels = images.MAX_PIXELS
    decoded = getattr(images, "MAX_DECODED_BYTES", None)  # None: the code before issue 24's fix
    if decoded is not None:
        pixels = min(pixels, decoded // (pixel_bytes * copies))
    return math.isqrt(pixels)


def portrait_rows(width: int, height: int) -> Iterator[np.ndarray]:
    """The test portrait enlarged to ``width``×``height`` (nearest neighbour), one RGB row at a time."""
    small = np.asarray(Image.open(PORTRAIT).convert("RGB"))
    columns = np.arange(width) * small.shape[1] // width
    for row in range(height):
        yield small[row * small.shape[0] // height][columns]


def portrait(width: int, height: int) -> np.ndarray:
    small = np.asarray(Image.open(PORTRAIT).convert("RGB"))
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def png_file(side: int, kind: str) -> Callable[[Path], None]:
    return lambda path: write_png(path, side, kind)


def write_png(path: Path, side: int, kind: str) -> None:
    """A ``side``² PNG streamed row by row (``kind``: rgba16, rgb8 or gray16), "Up"-filtered.

    Written by hand so that building a 120 MP file takes a row's memory, not the image's.
    """
    bit_depth, color_type = {"rgba16": (16, 6), "rgb8": (8, 2), "gray16": (16, 0)}[kind]

    def chunk(name: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))

    compressor = zlib.compressobj(6)
    previous: np.ndarray | None = None
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, bit_depth, color_type, 0, 0, 0)))
        for rgb in portrait_rows(side, side):
            if kind == "rgb8":
                row = rgb.reshape(-1)
            elif kind == "gray16":
                gray = cv2.cvtColor(rgb[None], cv2.COLOR_RGB2GRAY)[0]
                row = (gray.astype(">u2") * 257).view(np.uint8)
            else:  # opaque-ish alpha, so that compositing has work to do
                rgba = np.concatenate([rgb, np.full((side, 1), 230, np.uint8)], axis=1)
                row = (rgba.astype(">u2") * 257).view(np.uint8).reshape(-1)
            filtered = row if previous is None else row - previous  # uint8: wraps, as "Up" wants
            previous = row
            data = compressor.compress(b"\x02" + filtered.tobytes())
            if data:
                out.write(chunk(b"IDAT", data))
        out.write(chunk(b"IDAT", compressor.flush()))
        out.write(chunk(b"IEND", b""))


def pillow_file(side: int, fmt: str, **options: object) -> Callable[[Path], None]:
    """Builds a ``side``² portrait in ``fmt`` with Pillow."""
    return lambda path: Image.fromarray(portrait(side, side)).save(path, fmt, **options)


def opencv_file(width: int, height: int) -> Callable[[Path], None]:
    """Builds a ``width``×``height`` portrait with OpenCV, in the format the file name says."""
    return lambda path: cv2.imwrite(str(path), portrait(width, height)[:, :, ::-1])


def palette_gif(side: int) -> Callable[[Path], None]:
    picture = Image.open(PORTRAIT).convert("P")
    return lambda path: picture.resize((side, side), Image.Resampling.NEAREST).save(path, "GIF")


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    build: Callable[[Path], None]


def cases() -> list[Case]:
    colour = largest_side(4)
    webp = largest_side(4, getattr(images, "_DECODE_COPIES", {}).get("WEBP", 1))  # libwebp's buffers
    gray16 = largest_side(2)
    gray8 = largest_side(1)
    jpeg_square = 2 * images.MAX_SIDE - 1  # the largest JPEG that decodes at full scale
    jpeg_wide = (12000, images.MAX_PIXELS // 12000)
    return [
        Case(f"PNG 16-bit RGBA {ISSUE_SIDE}² (issue 24)", "issue.png", png_file(ISSUE_SIDE, "rgba16")),
        Case(f"PNG 16-bit RGBA {colour}²", "rgba16.png", png_file(colour, "rgba16")),
        Case(f"PNG 8-bit RGB {colour}²", "rgb8.png", png_file(colour, "rgb8")),
        Case(f"PNG 16-bit gray {gray16}²", "gray16.png", png_file(gray16, "gray16")),
        Case(f"JPEG {jpeg_square}² (full scale)", "square.jpg", opencv_file(jpeg_square, jpeg_square)),
        Case(f"JPEG {jpeg_wide[0]}×{jpeg_wide[1]}", "big.jpg", opencv_file(*jpeg_wide)),
        Case(f"GIF {gray8}²", "palette.gif", palette_gif(gray8)),
        Case(
            f"TIFF RGB deflate {colour}²", "rgb.tif", pillow_file(colour, "TIFF", compression="tiff_deflate")
        ),
        Case(f"BMP 24-bit {colour}²", "rgb.bmp", opencv_file(colour, colour)),
        Case(f"WebP {webp}²", "photo.webp", pillow_file(webp, "WEBP", quality=80, method=0)),
    ]


# --- one measurement, in its own process ----------------------------------------------------------


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(photo: Path, path: str) -> dict[str, object]:
    """Peak RSS added by one photo through the page's or the CLI's path (after a warm-up)."""
    from app.__main__ import emojify_file, parse_args
    from app.classifier import EmotionClassifier
    from app.detection import FaceDetector
    from app.framing import crop_faces
    from app.images import ImageError, encode_image, read_image, to_gray
    from app.overlay import reading_order
    from app.pipeline import OverlayOptions, Pipeline

    pipeline = Pipeline(FaceDetector(), EmotionClassifier.load(DEFAULT_MODEL_PATH))
    out = Path(tempfile.mkdtemp(prefix="emojify-photo-memory-"))

    def page(data: bytes) -> int:
        rgb = read_image(data)
        faces = reading_order(pipeline.analyze(rgb))
        annotated = pipeline.annotate(rgb, faces, OverlayOptions())
        encode_image(annotated, "png")
        crop_faces(to_gray(rgb), [face.box for face in faces])
        return len(faces)

    def cli(file: Path) -> int:
        return len(emojify_file(pipeline, file, parse_args([str(file), "--out", str(out)]))["faces"])

    if path == "page":
        page(PORTRAIT.read_bytes())  # TensorFlow's first-call allocations
        data = photo.read_bytes()  # an upload is in memory before the page reads it
        run = lambda: page(data)  # noqa: E731
    else:
        cli(PORTRAIT)
        run = lambda: cli(photo)  # noqa: E731
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = rss_kb("VmRSS")
    try:
        outcome = f"{run()} face(s)"
    except ImageError as err:
        outcome = f"refused: {err}"
    return {"before_mb": before / 1024, "added_mb": (rss_kb("VmHWM") - before) / 1024, "outcome": outcome}


# --- the table --------------------------------------------------------------------------------------


def run_case(photo: Path, path: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.photo_memory", "--measure", str(photo), "--path", path],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=900,
    )
    if done.returncode != 0:
        return {"added_mb": math.nan, "outcome": f"FAILED: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.photo_memory", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--path", choices=["page", "cli", "both"], default="both")
    parser.add_argument("--only", nargs="*", help="file names of the cases to run (e.g. issue.png)")
    parser.add_argument("--keep", type=Path, help="build the photos in this folder and keep them")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.path)))
        return 0
    paths = ["page", "cli"] if args.path == "both" else [args.path]
    chosen = [case for case in cases() if not args.only or case.file in args.only]
    with tempfile.TemporaryDirectory(prefix="emojify-photos-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{'photo':34} {'file MB':>8} " + " ".join(f"{p + ' MB':>9}" for p in paths) + "  outcome")
        worst = 0.0
        for case in chosen:
            photo = folder / case.file
            if not photo.exists():
                case.build(photo)
            results = [run_case(photo, path) for path in paths]
            added = [float(result["added_mb"]) for result in results]
            if not str(results[0]["outcome"]).startswith("refused"):
                worst = max(worst, *added)
            size = photo.stat().st_size / 1e6
            print(
                f"{case.name:34} {size:8.1f} "
                + " ".join(f"{a:9.0f}" for a in added)
                + f"  {results[0]['outcome']}",
                flush=True,
            )
    print(f"worst accepted photo: +{worst:.0f} MB at peak (target: under {TARGET_MB} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
