"""Peak memory of reading an uploaded dataset zip, for the worst zips the server accepts.

    python -m benchmarks.upload_memory

An anonymous visitor of a public deployment can upload a zip on the Analysis page; what reading
it costs must stay bounded (target: at most 400 MB added at peak; the whole server has about
2.7 GB on Streamlit Community Cloud). Each zip is read in a fresh process through the page's own
path, :func:`training.analysis.load_zip` (unpack safely, check headers, decode, build the model
input), and the process's peak resident memory (``VmHWM``, reset just before the load through
``/proc/self/clear_refs``) is compared with its memory just before:

- ``huge-pngs``: the attack of issue 24, seven one-colour 30000×30000 PNGs (900 MB each decoded)
  in a zip of a few megabytes: left out by their headers, never decoded;
- ``largest-images``: 70 images of exactly 4096×4096 (the largest accepted), one of them a 16-bit
  RGBA PNG, the costliest kind to decode;
- ``most-images``: 20,000 48×48 images, as many as one upload may hold.

Linux only (``/proc``). Prints one line per zip: its size, images read and left out, seconds and
the memory added at peak.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from app.emotions import CLASS_NAMES
from training.archive import MAX_EVALUATION_IMAGES

TARGET_MB = 400


def png_claiming(width: int, height: int) -> bytes:
    """A valid one-colour 8-bit grey PNG of ``width``×``height``, compressed row by row.

    Encoding a 900-megapixel image with cv2 would need the 900 MB this benchmark is about; zlib
    streams the rows instead, and zeros compress about 1000:1, so the file is under a megabyte.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the pixels
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encoded(image: np.ndarray, suffix: str) -> bytes:
    ok, data = cv2.imencode(suffix, image)
    if not ok:
        raise RuntimeError(f"could not encode a {image.shape} {suffix}")
    return data.tobytes()


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def huge_pngs() -> bytes:
    png = png_claiming(30_000, 30_000)
    return zip_of({f"test/{name}/PrivateTest_0.png": png for name in CLASS_NAMES})


def largest_images() -> bytes:
    side = 4096
    flat = encoded(np.full((side, side), 128, np.uint8), ".png")
    deep = encoded(np.full((side, side, 4), 40_000, np.uint16), ".png")  # 16-bit RGBA: 128 MB decoded
    files = {f"test/{name}/PrivateTest_{n}.png": flat for name in CLASS_NAMES for n in range(10)}
    files["test/happy/PrivateTest_0.png"] = deep
    return zip_of(files)


def most_images() -> bytes:
    rng = np.random.default_rng(0)
    faces = [encoded(rng.integers(0, 256, (48, 48), np.uint8), ".jpg") for _ in range(200)]
    per_class = MAX_EVALUATION_IMAGES // len(CLASS_NAMES)
    names = [f"test/{name}/PrivateTest_{n}.jpg" for name in CLASS_NAMES for n in range(per_class)]
    return zip_of({name: faces[i % len(faces)] for i, name in enumerate(names)})


CASES: dict[str, Callable[[], bytes]] = {
    "huge-pngs": huge_pngs,
    "largest-images": largest_images,
    "most-images": most_images,
}


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(path: Path) -> dict[str, object]:
    """Load the zip at ``path`` as the Analysis page does; memory and what was read (in this process)."""
    from training.analysis import load_zip
    from training.data import DatasetError

    data = path.read_bytes()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    try:
        dataset = load_zip(data, path.name)
        outcome = {
            "images": len(dataset),
            "skipped": len(dataset.skipped),
            "too_large": len(dataset.too_large),
        }
    except DatasetError as err:
        outcome = {"refused": str(err)[:160]}
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM")
    return {
        **outcome,
        "seconds": round(seconds, 1),
        "before_mb": round(before),
        "added_mb": round(peak - before),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process's job
    parser.add_argument("--case", choices=sorted(CASES), action="append", help="only these zips")
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    cores, load = os.cpu_count(), os.getloadavg()[0]
    print(f"{cores} cores, load average {load:.1f}; target: at most {TARGET_MB} MB added at peak")
    worst = 0
    with tempfile.TemporaryDirectory(prefix="emojify-upload-memory-") as tmp:
        for name in args.case or CASES:
            path = Path(tmp) / f"{name}.zip"
            path.write_bytes(CASES[name]())
            child = subprocess.run(
                [sys.executable, "-m", "benchmarks.upload_memory", "--measure", str(path)],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            worst = max(worst, int(result["added_mb"]))
            read = (
                f"refused: {result['refused']}"
                if "refused" in result
                else f"{result['images']:,} images read, {result['too_large']} too large, "
                f"{result['skipped']} unreadable"
            )
            print(
                f"{name:15s} zip {path.stat().st_size / 1e3:8,.0f} kB  {result['seconds']:6.1f} s  "
                f"+{result['added_mb']:4d} MB at peak (from {result['before_mb']} MB)  {read}"
            )
    print(
        f"worst: +{worst} MB at peak ({'within' if worst <= TARGET_MB else 'OVER'} the {TARGET_MB} MB target)"
    )
    return 0 if worst <= TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
