"""Awkward inputs made from a real portrait, for every entry point that reads images.

Each case says what a user must get: an error message containing some words, or a number of
faces found (an odd colour mode or an EXIF rotation must not lose the face).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"
PORTRAIT = FIXTURES / "faces" / "london_009_happy.jpg"


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    suffix: str
    #: Words the error message must contain, or None when the image must be read fine.
    error: str | None = None
    #: Faces that must be found when it is read fine.
    faces: int = 1


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_header_only(width: int, height: int, bit_depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG that declares a size but holds almost no pixel data: a decompression-bomb probe."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def _bad_checksum(png: bytes) -> bytes:
    """``png`` with one bit of its header's checksum flipped, as a bad disk or download leaves it."""
    at = png.index(b"IHDR") + 4 + 13  # the CRC after the 13 header bytes
    return png[:at] + bytes([png[at] ^ 1]) + png[at + 1 :]


def cases() -> list[Case]:
    portrait = Image.open(PORTRAIT).convert("RGB")
    jpeg = PORTRAIT.read_bytes()
    gray16 = Image.fromarray(np.asarray(portrait.convert("L"), dtype=np.uint16) * 257)
    transparent = portrait.convert("RGBA")
    transparent.putalpha(Image.fromarray(np.full(portrait.size[::-1], 200, dtype=np.uint8)))
    # Stored sideways with an EXIF "rotate 90° clockwise" tag, as phones do: upright only if honoured.
    sideways = portrait.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    second = portrait.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    gif = _save(portrait, "GIF")
    stripes = np.tile(np.array([[40], [220]], np.uint8), (1000, 1))  # 1 wide, 2000 high
    return [
        Case("zero-byte", b"", ".jpg", error="empty"),
        Case("text named .png", b"just some text, not pixels\n" * 20, ".png", error="not an image"),
        Case("truncated JPEG", jpeg[: len(jpeg) // 2], ".jpg", error="damaged or truncated"),
        Case("decompression bomb", _png_header_only(40_000, 40_000), ".png", error="megapixels"),
        Case("1×1 pixel", _save(Image.new("RGB", (1, 1), "white"), "PNG"), ".png", faces=0),
        Case("1×2000 PNG", _save(Image.fromarray(stripes), "PNG"), ".png", faces=0),
        Case(
            "PNG with a bad checksum",
            _bad_checksum(_save(portrait, "PNG")),
            ".png",
            error="PNG image, but it is damaged",
        ),
        Case(
            "GIF cut off in its palette", gif[:400], ".gif", error="GIF image, but it is damaged or truncated"
        ),
        Case("GIF cut off in its pixels", gif[: len(gif) // 2], ".gif", error="damaged or truncated"),
        Case("0×0 PNG", _png_header_only(0, 0), ".png", error="PNG image is empty"),
        Case(
            "10950×10950 16-bit RGBA PNG",
            _png_header_only(10950, 10950, 16, 6),
            ".png",
            error="decoded whole",
        ),
        Case("12000×9000 JPEG", _save(portrait.resize((12000, 9000)), "JPEG", quality=70), ".jpg"),
        Case("CMYK JPEG", _save(portrait.convert("CMYK"), "JPEG"), ".jpg"),
        Case("16-bit grayscale PNG", _save(gray16, "PNG"), ".png"),
        Case("RGBA PNG", _save(transparent, "PNG"), ".png"),
        Case("palette GIF, animated", _save(portrait, "GIF", save_all=True, append_images=[second]), ".gif"),
        Case("EXIF-rotated JPEG", _save(sideways, "JPEG", exif=exif), ".jpg"),
        Case("WebP", _save(portrait, "WEBP"), ".webp"),
        Case("BMP", _save(portrait, "BMP"), ".bmp"),
    ]


def write_cases(folder: Path) -> list[tuple[Case, Path]]:
    """Write every case to ``folder`` and return it with its path."""
    written = []
    for index, case in enumerate(cases()):
        path = folder / f"case{index:02d}{case.suffix}"
        path.write_bytes(case.data)
        written.append((case, path))
    return written
