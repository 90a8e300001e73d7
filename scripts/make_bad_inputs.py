"""Write the committed corpus of hostile and awkward inputs to ``tests/fixtures/bad/``.

    python scripts/make_bad_inputs.py [FOLDER]

Every entry point that reads a user's file (the photo CLI and page, the video CLI, the Analysis
page's and the evaluation CLI's zips, the Training page's uploads, the CSV loaders) is run over
these files by
``tests/test_bad_input_corpus.py``: none may end in a traceback, each must say what is wrong.
The files are small on purpose: the bombs *declare* huge sizes rather than hold them, and the
good-but-odd photos are a shrunk CC BY portrait from ``tests/fixtures/faces``. Output is
deterministic (fixed zip timestamps), so regenerating changes nothing unless this script did.
"""

from __future__ import annotations

import io
import stat
import struct
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PORTRAIT = ROOT / "tests" / "fixtures" / "faces" / "london_009_happy.jpg"
DEFAULT_FOLDER = ROOT / "tests" / "fixtures" / "bad"
#: Small enough to commit, large enough that the face is still found.
PORTRAIT_SIDE = 256
ZIP_TIME = (2026, 1, 1, 0, 0, 0)


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png(width: int, height: int, bit_depth: int, color_type: int, raw_rows: bytes) -> bytes:
    """A PNG written by hand, so its header can claim what no image library would write."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    body = zlib.compress(raw_rows, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def images() -> dict[str, bytes]:
    """Photos: the unreadable ones and the odd-but-fine ones (colour modes, rotation, animation)."""
    portrait = Image.open(PORTRAIT).convert("RGB")
    portrait.thumbnail((PORTRAIT_SIDE, PORTRAIT_SIDE))
    jpeg = _save(portrait, "JPEG", quality=85)
    gray16 = Image.fromarray(np.asarray(portrait.convert("L"), dtype=np.uint16) * 257)
    transparent = portrait.convert("RGBA")
    transparent.putalpha(Image.fromarray(np.full(portrait.size[::-1], 200, dtype=np.uint8)))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to show": stored sideways, as phones do
    second = portrait.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    side = 20_000  # 400 megapixels of 1-bit black: 50 MB as bits, 400 MB once decoded to bytes
    png = _save(portrait, "PNG")
    crc = png.index(b"IHDR") + 4 + 13  # the header's checksum, after its 13 bytes
    gif = _save(portrait, "GIF")
    stripes = np.tile(np.array([[40], [220]], np.uint8), (1000, 1))  # 1 pixel wide, 2000 high
    return {
        "zero-byte.jpg": b"",
        "text-named.png": b"just some text, not pixels\n" * 20,
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "huge-dimensions.png": _png(100_000, 100_000, 8, 2, b"\0" * 64),
        "decompression-bomb.png": _png(side, side, 1, 0, (b"\0" + bytes(side // 8)) * side),
        "tiny-1x1.png": _save(Image.new("RGB", (1, 1), "white"), "PNG"),
        "strip-1x2000.png": _save(Image.fromarray(stripes), "PNG"),
        "bad-checksum.png": png[:crc] + bytes([png[crc] ^ 1]) + png[crc + 1 :],
        "truncated.gif": gif[:400],  # cut off inside its palette
        "zero-size.png": _png(0, 0, 8, 2, b""),
        # Under the 120-megapixel limit, but 480 MB once decoded (Pillow's 4 bytes a pixel): the
        # pixels are not there, as the size is refused before decoding.
        "huge-16bit-rgba.png": _png(10_950, 10_950, 16, 6, b"\0" * 64),
        "cmyk.jpg": _save(portrait.convert("CMYK"), "JPEG", quality=85),
        "gray-16bit.png": _save(gray16, "PNG"),
        "alpha.png": _save(transparent, "PNG"),
        "animated.gif": _save(portrait, "GIF", save_all=True, append_images=[second]),
        "exif-rotated.jpg": _save(portrait.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif),
    }


def videos() -> dict[str, bytes]:
    """A clip of the portrait that breaks partway: its index is whole, its last quarter cut off."""
    portrait = Image.open(PORTRAIT).convert("RGB")
    portrait.thumbnail((160, 160))
    pixels = np.asarray(portrait)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"  # faststart rewrites the file: it can't be in memory
        with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
            # One thread: x264's output is then the same on every run.
            options = {"preset": "veryfast", "crf": "30", "threads": "1"}
            stream = container.add_stream("libx264", rate=Fraction(12), options=options)
            stream.width, stream.height, stream.pix_fmt = 160, 160, "yuv420p"
            for shift in range(0, 72, 2):  # 3 s panning slowly
                frame = np.ascontiguousarray(np.roll(pixels, shift, axis=1))
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))
        clip = path.read_bytes()
    return {"cut-off.mp4": clip[: len(clip) * 3 // 4]}


def _zip(fill: Callable[[zipfile.ZipFile], None]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        fill(archive)
    return buffer.getvalue()


def _entry(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _single(name: str, data: bytes, mode: int = stat.S_IFREG | 0o644) -> bytes:
    """A zip of one entry, ``mode`` telling a file from a symbolic link (whose data is its target)."""
    return _zip(lambda archive: archive.writestr(_entry(name, mode), data))


def _declaring(size: int) -> bytes:
    """A one-entry zip whose headers claim ``size`` unpacked bytes for a few real ones."""
    data = _single("test/happy/big.jpg", b"\xff" * 100)
    real = struct.pack("<I", 100)
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    # Uncompressed size: offset 22 in the local header, 24 in the central directory entry.
    for at in (local + 22, central + 24):
        assert data[at : at + 4] == real
        data = data[:at] + struct.pack("<I", size) + data[at + 4 :]
    return data


def zips() -> dict[str, bytes]:
    """Dataset uploads that try to escape, link, bomb or flood the folder they unpack into."""
    return {
        "not-a-zip.zip": b"this is a text file wearing a .zip name\n",
        "path-escape.zip": _single("test/happy/../../../evil.txt", b"gotcha"),
        "absolute-path.zip": _single("/tmp/emojify-evil.txt", b"gotcha"),
        "symlink.zip": _single("test/happy/passwd", b"/etc/passwd", stat.S_IFLNK | 0o777),
        "ten-thousand-files.zip": _zip(
            lambda a: [a.writestr(_entry(f"junk/{n:05d}.txt"), b"") for n in range(10_000)]
        ),
        "one-gigabyte-declared.zip": _declaring(1_000_000_000),
    }


def csvs() -> dict[str, bytes]:
    """``fer2013.csv`` look-alikes with the wrong columns or broken pixel strings."""
    row = " ".join(["128"] * 48 * 48)
    return {
        "wrong-columns.csv": f"label,image\n3,{row}\n".encode(),
        "malformed-pixels.csv": (
            f"emotion,pixels,Usage\n3,{row},Training\n4,12 ab 255 0,Training\n".encode()
        ),
    }


def corpus() -> dict[str, bytes]:
    """Every file of the corpus by its path below the corpus folder."""
    return {
        **{f"images/{name}": data for name, data in images().items()},
        **{f"videos/{name}": data for name, data in videos().items()},
        **{f"zips/{name}": data for name, data in zips().items()},
        **{f"csv/{name}": data for name, data in csvs().items()},
    }


def write(folder: Path) -> list[Path]:
    written = []
    for relative, data in corpus().items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else DEFAULT_FOLDER
    written = write(folder)
    total = sum(path.stat().st_size for path in written)
    print(f"{len(written)} files, {total / 1e6:.2f} MB in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
