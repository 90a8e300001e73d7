"""Turn whatever a user hands us into one well-formed RGB array, or a message saying why not.

Photos arrive as phone JPEGs with EXIF rotation, PNGs with alpha or 16-bit depth, CMYK scans,
animated GIFs, truncated downloads and the occasional renamed text file. Everything downstream
(detection, classification, overlay) can then assume ``uint8`` RGB of a sane size.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import ExifTags, Image, JpegImagePlugin, UnidentifiedImageError

#: Images above this many pixels are refused before decoding (decompression bombs); 120 MP
#: still admits the largest phone and DSLR photos (a 12000×9000 scan is 108 MP).
MAX_PIXELS = 120_000_000
#: Decoded images are shrunk so their long side is at most this: faces stay far larger than the
#: 48 px the model sees, and memory and drawing time stay bounded.
MAX_SIDE = 4096
#: The photo formats we read, by the name users know, with their file extensions: the one list
#: the Photo page's uploader accepts and the message for anything else names. (Pillow reads more,
#: but these are the ones tested.)
PHOTO_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": ("jpg", "jpeg"),
    "PNG": ("png",),
    "WebP": ("webp",),
    "BMP": ("bmp",),
    "GIF": ("gif",),
    "TIFF": ("tif", "tiff"),
}
#: The first bytes of each format in :data:`PHOTO_FORMATS`: a file that starts like one but does
#: not open is a damaged file of that format, not an unknown format.
_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "JPEG": lambda head: head.startswith(b"\xff\xd8\xff"),
    "PNG": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    "WebP": lambda head: head.startswith(b"RIFF") and head[8:12] == b"WEBP",
    "BMP": lambda head: (
        head.startswith(b"BM") and len(head) >= 15 and head[14] in (12, 40, 52, 56, 64, 108, 124)
    ),
    "GIF": lambda head: head.startswith((b"GIF87a", b"GIF89a")),
    "TIFF": lambda head: head.startswith((b"II*\x00", b"MM\x00*")),
}
_SNIFF_BYTES = 32
#: Pillow's decoded images above this size are refused before decoding: with the shrunk copy
#: and the work that follows, a photo then adds under 400 MB to the server (benchmarks.photo_memory).
MAX_DECODED_BYTES = 300_000_000
#: Bytes per pixel of Pillow's decoded image by mode: 1 for one 8-bit band, 2 for 16-bit
#: grayscale, 4 for everything else (Pillow stores RGB, RGBA, LA and CMYK alike as 4 bytes).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
#: Formats whose decoder holds more full-size buffers than Pillow's image: a 37.5 MP WebP added
#: 574 MB at peak, 3.5 times what Pillow's 4 bytes a pixel account for (benchmarks.photo_memory).
_DECODE_COPIES = {"WEBP": 4}
#: Grayscale modes wider than 8 bits (16-bit PNG and TIFF, 32-bit integer and float TIFF).
_WIDE_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
#: Side of the tiles an image is converted and shrunk in: a few MB each.
TILE_SIDE = 1024
#: EXIF orientations and the turn that shows the photo upright (as ``ImageOps.exif_transpose``).
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: Every extension in :data:`PHOTO_FORMATS`, lower case and without the dot (for uploaders).
PHOTO_EXTENSIONS: tuple[str, ...] = tuple(ext for exts in PHOTO_FORMATS.values() for ext in exts)


class ImageError(ValueError):
    """An input that is not a usable image; the message is meant for the user."""


def format_names() -> str:
    """The accepted formats as a user reads them: "JPEG, PNG, WebP, BMP, GIF or TIFF"."""
    *first, last = PHOTO_FORMATS
    return f"{', '.join(first)} or {last}"


def read_image(source: bytes | str | Path) -> np.ndarray:
    """Decode ``source`` (file path or raw bytes) to an upright ``(H, W, 3)`` uint8 RGB array.

    A path is read by the decoder as it goes, not loaded first: the file's bytes never sit in
    memory beside its pixels.
    """
    if isinstance(source, (str, Path)):
        try:
            file = open(source, "rb")  # noqa: SIM115 - closed below; errors inside are the image's
        except OSError as err:
            raise ImageError(f"cannot read {source}: {err.strerror or err}") from err
        with file:
            return _read(file)
    return _read(io.BytesIO(source))


def _read(file: BinaryIO) -> np.ndarray:
    head = file.read(_SNIFF_BYTES)
    if not head:
        raise ImageError("the file is empty (0 bytes)")
    file.seek(0)
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel limit below, before anything is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                return _to_rgb_array(image)
    except ImageError:
        raise
    except Image.DecompressionBombError as err:  # Pillow's own refusal, past 2 × its pixel limit
        raise ImageError(f"the image is far too large; {_limits(head)}") from err
    except UnidentifiedImageError as err:
        raise _unidentified(head) from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"the image is damaged or truncated ({err})") from err


def _sniffed_format(head: bytes) -> str | None:
    """The format ``head``, a file's first bytes, begins, whether or not Pillow can open it."""
    return next((name for name, test in _SIGNATURES.items() if test(head)), None)


def _limits(head: bytes) -> str:
    """The pixel limit that applies to a file of ``head``'s format, as the other messages say it."""
    fmt = _sniffed_format(head)
    if fmt in (None, "JPEG"):
        return f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
    colour = _decoded_limit_mp(4 * _DECODE_COPIES.get(fmt.upper(), 1))
    return f"the limit is {colour:.0f} megapixels for a {fmt} in colour (JPEG: {MAX_PIXELS / 1e6:.0f})"


def _decoded_limit_mp(pixel_bytes: int) -> float:
    """Megapixels an image decoded whole at ``pixel_bytes`` a pixel may have (:data:`MAX_DECODED_BYTES`)."""
    return MAX_DECODED_BYTES / pixel_bytes / 1e6


def _unidentified(head: bytes) -> ImageError:
    """Why Pillow could not open a file: an unknown format, or a known one that is damaged or empty.

    Pillow says only "cannot identify image file" for both a text file and a PNG with one bad
    checksum; the file's first bytes tell them apart.
    """
    fmt = _sniffed_format(head)
    if fmt is None:
        return ImageError(f"this is not an image format we can read (use {format_names()})")
    size = _declared_size(fmt, head)
    if size is not None and 0 in size:
        return ImageError(f"the {fmt} image is empty: its header says {size[0]}×{size[1]} pixels")
    return ImageError(f"the file is a {fmt} image, but it is damaged or truncated")


def _declared_size(fmt: str, head: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's or GIF's header, where the file is long enough to hold it."""
    if fmt == "PNG" and len(head) >= 24 and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    if fmt == "GIF" and len(head) >= 10:
        return struct.unpack("<HH", head[6:10])
    return None


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError("the image has no pixels")
    image.seek(0)  # first frame of animated GIF/WebP/PNG
    if isinstance(image, JpegImagePlugin.JpegImageFile):  # JPEG and MPO (phone photos)
        # JPEG decodes straight to 1/2, 1/4 or 1/8 scale: a 100 MP photo costs what a 16 MP one does.
        image.draft("RGB", _shrunk_size(width, height))
    # First, since a format decoded whole has the lower limit (a colour PNG: 75 megapixels): the
    # general one below would quote 120 to a PNG of 121.
    _check_decoded_size(image, width, height)
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"the image is {width}×{height} ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
        )
    image.load()
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    pixels = _shrunk_rgb(image)
    if (method := _ORIENTATIONS.get(orientation)) is not None:  # turned after shrinking: cheap
        pixels = np.asarray(Image.fromarray(pixels).transpose(method))
    return np.ascontiguousarray(pixels)


def _check_decoded_size(image: Image.Image, width: int, height: int) -> None:
    """Refuse an image whose decoded pixels alone would exceed :data:`MAX_DECODED_BYTES`.

    Only JPEG decodes at a reduced scale; other formats decode whole, at Pillow's 4 bytes a pixel
    for anything in colour, so their limit in megapixels is lower than :data:`MAX_PIXELS`.
    """
    pixel_bytes = _PIXEL_BYTES.get(image.mode, 4) * _DECODE_COPIES.get(image.format or "", 1)
    if image.size[0] * image.size[1] * pixel_bytes > MAX_DECODED_BYTES:
        limit = _decoded_limit_mp(pixel_bytes)
        raise ImageError(
            f"the image is {width}×{height} ({width * height / 1e6:.0f} megapixels); a {image.format} "
            f"like this one is decoded whole, and its limit is {limit:.0f} megapixels "
            f"(JPEG: {MAX_PIXELS / 1e6:.0f})"
        )


def _shrunk_size(width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` with the long side at most :data:`MAX_SIDE`."""
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrunk_rgb(image: Image.Image) -> np.ndarray:
    """The decoded ``image`` as RGB uint8 with its long side at most :data:`MAX_SIDE`.

    It is converted tile by tile, each tile shrunk as soon as it is converted: nothing of the
    photo's full size exists but Pillow's own decoded image (a 120 MP PNG used to take 2-4 GB in
    float64 and RGBA copies). Each tile is resized to its share of the output with area
    averaging; where a tile's edge falls inside an output pixel, that pixel's weights differ
    from one whole-image resize by under an input pixel, which nothing downstream can see.
    """
    width, height = image.size
    out_width, out_height = _shrunk_size(width, height)
    high = image.getextrema()[1] if image.mode in _WIDE_GRAY else None
    out = np.empty((out_height, out_width, 3), np.uint8)
    for top, bottom, out_top, out_bottom in _spans(height, out_height):
        for left, right, out_left, out_right in _spans(width, out_width):
            rgb = _flatten_to_rgb(image.crop((left, top, right, bottom)), high)
            size = (out_right - out_left, out_bottom - out_top)
            if rgb.shape[1::-1] != size:
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            out[out_top:out_bottom, out_left:out_right] = rgb
    return out


def _spans(length: int, out_length: int) -> Iterator[tuple[int, int, int, int]]:
    """``(start, end, out_start, out_end)`` of the tiles along one axis: :data:`TILE_SIDE` input
    pixels, or more where that would shrink to under two output pixels (a span lost to rounding)."""
    step = max(TILE_SIDE, math.ceil(2 * length / out_length))
    for start in range(0, length, step):
        end = min(length, start + step)
        yield start, end, round(start * out_length / length), round(end * out_length / length)


def _flatten_to_rgb(image: Image.Image, high: float | None = None) -> np.ndarray:
    """Any Pillow mode → RGB uint8, compositing transparency onto white like a viewer would.

    ``high`` is the whole image's largest value for 16- and 32-bit grayscale (``image`` may be a
    tile of it): above 255 the values are taken as 16-bit, else as 8-bit.
    """
    if image.mode in _WIDE_GRAY:
        values = np.asarray(image, dtype=np.float32)
        scale = 255.0 / (65535.0 if (high or 0) > 255 else 255.0)
        gray = np.clip(values * scale, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Grayscale as FER2013 and the Haar cascade expect it (ITU-R 601 luma, uint8)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def encode_image(rgb: np.ndarray, fmt: str = "png") -> bytes:
    """Encode an RGB array as PNG or JPEG bytes (for downloads and the CLI's annotated copies)."""
    extension = ".jpg" if fmt.lower() in ("jpg", "jpeg") else ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if extension == ".jpg" else []
    ok, buffer = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageError(f"could not encode the image as {extension[1:].upper()}")
    return buffer.tobytes()
