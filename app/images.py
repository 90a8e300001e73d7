"""Turn whatever a user hands us into one well-formed RGB array, or a message saying why not.

Photos arrive as phone JPEGs with EXIF rotation, PNGs with alpha or 16-bit depth, CMYK scans,
animated GIFs, truncated downloads and the occasional renamed text file. Everything downstream
(detection, classification, overlay) can then assume ``uint8`` RGB of a sane size.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
#: Every extension in :data:`PHOTO_FORMATS`, lower case and without the dot (for uploaders).
PHOTO_EXTENSIONS: tuple[str, ...] = tuple(ext for exts in PHOTO_FORMATS.values() for ext in exts)


class ImageError(ValueError):
    """An input that is not a usable image; the message is meant for the user."""


def format_names() -> str:
    """The accepted formats as a user reads them: "JPEG, PNG, WebP, BMP, GIF or TIFF"."""
    *first, last = PHOTO_FORMATS
    return f"{', '.join(first)} or {last}"


def read_image(source: bytes | str | Path) -> np.ndarray:
    """Decode ``source`` (file path or raw bytes) to an upright ``(H, W, 3)`` uint8 RGB array."""
    if isinstance(source, (str, Path)):
        try:
            data = Path(source).read_bytes()
        except OSError as err:
            raise ImageError(f"cannot read {source}: {err.strerror or err}") from err
    else:
        data = source
    if not data:
        raise ImageError("the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel limit below, before anything is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return _to_rgb_array(image)
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageError(
            f"the image is far too large; the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
        ) from err
    except UnidentifiedImageError as err:
        raise ImageError(f"this is not an image format we can read (use {format_names()})") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"the image is damaged or truncated ({err})") from err


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError("the image has no pixels")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"the image is {width}×{height} ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels"
        )
    if image.format == "JPEG":
        # JPEG can decode straight to a reduced scale: a 100 MP photo costs what a 16 MP one does.
        image.draft("RGB", (MAX_SIDE, MAX_SIDE))
    image.seek(0)  # first frame of animated GIF/WebP/PNG
    image = ImageOps.exif_transpose(image)
    pixels = _flatten_to_rgb(image)
    return _shrink(pixels)


def _flatten_to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode → RGB uint8, compositing transparency onto white like a viewer would."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        high = values.max() if values.size else 0.0
        scale = 255.0 / (65535.0 if high > 255 else 255.0)
        gray = np.clip(values * scale, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def _shrink(pixels: np.ndarray) -> np.ndarray:
    height, width = pixels.shape[:2]
    scale = MAX_SIDE / max(height, width)
    if scale >= 1:
        return np.ascontiguousarray(pixels)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)


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
