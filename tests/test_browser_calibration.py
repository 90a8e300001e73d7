"""Calibrate to my face on the Live page, in headless Chromium with the Pexels clip as the camera."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.emotions import CLASS_NAMES

import browser

pytestmark = browser.browser_module()

from playwright.sync_api import Browser, Page, expect  # noqa: E402  (only once it is known to exist)

#: Loading TensorFlow in a fresh server and the first result: minutes when 2 cores are shared.
FIRST_RESULT_TIMEOUT_MS = 150_000
EMOTION_HEADING = re.compile(rf"^({'|'.join(CLASS_NAMES)})$")


@pytest.fixture
def page(tmp_path: Path, app_url: str) -> Iterator[Page]:
    """The Live page with the laughing clip as the camera (a browser of its own for that switch)."""
    with browser.laughing_camera_chromium(tmp_path) as chromium, browser.new_page(chromium) as page:
        page.goto(f"{app_url}/live")
        yield page


def test_calibrating_on_the_camera_face_says_for_whom_and_reset_makes_it_generic(page: Page) -> None:
    main = page.get_by_test_id("stMain")
    expect(page.get_by_text("when you press Start and allow the camera")).to_be_visible(timeout=120_000)
    browser.start_webrtc(page)
    expect(main.get_by_role("heading", name=EMOTION_HEADING)).to_be_visible(timeout=FIRST_RESULT_TIMEOUT_MS)

    main.get_by_role("button", name="Calibrate to my face").click()

    expect(main.get_by_text("Calibrating: hold a neutral face")).to_be_visible(timeout=15_000)
    calibrated = main.get_by_text(re.compile(r"Verdicts are calibrated for face #\d+"))
    expect(calibrated).to_be_visible(timeout=60_000)
    expect(main.get_by_text("the model read that face as")).to_be_visible()  # she laughs: not neutral
    expect(main.get_by_role("button", name="Download my calibration")).to_be_visible()
    expect(page.get_by_test_id("stException")).to_have_count(0)

    main.get_by_role("button", name="Reset").click()

    expect(main.get_by_role("button", name="Calibrate to my face")).to_be_enabled(timeout=15_000)
    expect(calibrated).to_have_count(0)


def test_a_reference_photo_reads_a_closed_mouth_smile_as_happy_on_the_photo_page(
    chromium: Browser, app_url: str
) -> None:
    faces = Path(__file__).parent / "fixtures" / "faces"
    with browser.new_page(chromium) as page:
        page.goto(f"{app_url}/photo")
        expect(page.get_by_test_id("stFileUploader").first).to_be_visible(timeout=120_000)
        browser.upload(page, faces / "london_016_happy.jpg")
        expect(page.get_by_text("Face 1: neutral")).to_be_visible(timeout=FIRST_RESULT_TIMEOUT_MS)

        page.get_by_text("Use a reference photo of this person").click()
        reference = page.get_by_test_id("stFileUploader").filter(has_text="Neutral photo of this person")
        reference.locator("input[type=file]").set_input_files(faces / "london_016_neutral.jpg")

        expect(page.get_by_text("Face 1: happy")).to_be_visible(timeout=FIRST_RESULT_TIMEOUT_MS)
        expect(page.get_by_role("button", name="Download my calibration")).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)
