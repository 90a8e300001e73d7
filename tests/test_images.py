"""Decoding: every odd file a user may hand us becomes an upright RGB image or a clear message."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

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

from bad_inputs import FIXTURES, cases

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
