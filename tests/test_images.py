"""Decoding: every odd file a user may hand us becomes an upright RGB image or a clear message."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from app import images
from app.detection import FaceDetector
from app.images import (
    MAX_SIDE,
    PHOTO_EXTENSIONS,
    PHOTO_FORMATS,
    ImageError,
    encode_image,
    format_names,
    read_image,
    to_gray,
)

from bad_inputs import FIXTURES, _png_header_only, cases

CASES = cases()


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_awkward_inputs_decode_or_explain(case, detector):
    if case.error:
        with pytest.raises(ImageError, match=case.error):
            read_image(case.data)
        return
    rgb = read_image(case.data)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert max(rgb.shape[:2]) <= MAX_SIDE
    assert len(detector.detect(to_gray(rgb))) == case.faces


def test_exif_rotation_is_applied():
    exif_case = next(case for case in CASES if case.name == "EXIF-rotated JPEG")
    original = read_image(FIXTURES / "faces" / "london_009_happy.jpg")
    upright = read_image(exif_case.data)
    assert upright.shape == original.shape
    assert np.abs(upright.astype(int) - original).mean() < 8  # same picture, JPEG noise only


def test_transparency_is_composited_on_white():
    rgba_case = next(case for case in CASES if case.name == "RGBA PNG")
    original = read_image(FIXTURES / "faces" / "london_009_happy.jpg").astype(float)
    blended = read_image(rgba_case.data).astype(float)
    expected = original * 200 / 255 + 255 * 55 / 255
    assert np.abs(blended - expected).mean() < 3


def test_missing_file_is_a_clear_message(tmp_path):
    with pytest.raises(ImageError, match="cannot read"):
        read_image(tmp_path / "nope.jpg")


def test_encode_round_trips_png():
    rgb = read_image(FIXTURES / "astronaut.png")
    assert np.array_equal(read_image(encode_image(rgb, "png")), rgb)


@pytest.mark.parametrize("name", list(PHOTO_FORMATS))
def test_every_accepted_format_decodes(name):
    """The formats the uploader accepts are the ones read_image reads (one list for both)."""
    picture = Image.fromarray(read_image(FIXTURES / "astronaut.png")[:64, :48])
    data = io.BytesIO()
    picture.save(data, format=name.upper())
    assert read_image(data.getvalue()).shape == (64, 48, 3)


def test_the_not_an_image_message_names_every_accepted_format():
    with pytest.raises(ImageError, match="not an image format") as caught:
        read_image(b"these are words, not pixels\n" * 20)
    message = str(caught.value)
    assert format_names() in message and all(name in message for name in PHOTO_FORMATS)
    assert {"gif", "tif", "tiff", "jpeg"} <= set(PHOTO_EXTENSIONS)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P", "I;16"])
def test_a_photo_larger_than_max_side_is_shrunk_as_a_whole_image_resize_would(
    mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large photos are converted and shrunk tile by tile (a 120 MP PNG once took 2-4 GB): the
    result must be the picture one resize of the whole converted image gives. (Small limits
    here, so that a small photo takes that path through many tiles.)"""
    monkeypatch.setattr(images, "MAX_SIDE", 500)
    monkeypatch.setattr(images, "TILE_SIDE", 96)
    portrait = Image.open(FIXTURES / "faces" / "london_009_happy.jpg").convert("RGB")
    big = portrait.resize((1100, 700), Image.Resampling.BILINEAR)
    if mode == "I;16":
        picture = Image.fromarray(np.asarray(big.convert("L"), np.uint16) * 257)
        whole = np.repeat(np.asarray(big.convert("L"))[:, :, None], 3, axis=2)
    else:
        picture = big.quantize(64, dither=Image.Dither.NONE) if mode == "P" else big.convert(mode)
        if mode in ("RGBA", "LA"):
            picture.putalpha(180)
        flat = Image.alpha_composite(Image.new("RGBA", picture.size, "white"), picture.convert("RGBA"))
        whole = np.asarray(flat.convert("RGB"))
    expected = cv2.resize(whole, (500, 318), interpolation=cv2.INTER_AREA)

    rgb = read_image(_save(picture, "PNG"))

    assert rgb.shape == expected.shape
    assert np.abs(rgb.astype(int) - expected).mean() < 1.0


def test_the_exif_turn_is_applied_to_a_shrunk_photo_too(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_SIDE", 300)
    portrait = Image.open(FIXTURES / "faces" / "london_009_happy.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter to the left: "rotate 90° clockwise to show"
    path = tmp_path / "sideways.png"
    portrait.crop((0, 0, 675, 450)).transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)

    rgb = read_image(path)  # read from the path, as the CLI does

    assert rgb.shape == (200, 300, 3)  # stood up again: wider than tall, as cropped
    original = cv2.resize(
        np.asarray(portrait.crop((0, 0, 675, 450))), (300, 200), interpolation=cv2.INTER_AREA
    )
    assert np.abs(rgb.astype(int) - original).mean() < 2


def _save(picture: Image.Image, fmt: str) -> bytes:
    data = io.BytesIO()
    picture.save(data, fmt)
    return data.getvalue()


@pytest.mark.parametrize("side", [11_000, 100_000], ids=["121 MP", "far too large"])
def test_a_colour_png_over_its_limit_is_told_that_limit_whatever_its_size(side: int) -> None:
    """A colour PNG is decoded whole: its limit is 75 megapixels, and every refusal says so (a
    121 MP one was told "the limit is 120 megapixels", the JPEG limit, as was a 10,000 MP one)."""
    with pytest.raises(ImageError) as refused:
        read_image(_png_header_only(side, side, color_type=2))
    assert "75 megapixels" in str(refused.value), refused.value
    assert "limit is 120" not in str(refused.value), refused.value
