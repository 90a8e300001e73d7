"""The Video page in headless Chromium: upload the Pexels clip, get a timeline, a player and downloads.

What only a browser shows: the uploader, the progress and Cancel during a long script run, the
Altair timeline's hover tooltip, and that Chromium really plays the H.264 MP4 the page made
(its ``<video>`` element loads the stream and its clock moves). The clip is processed at a frame
step of 4 (118 frames) to keep the test short.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.emotions import CLASS_NAMES
from app.video import CSV_COLUMNS

import browser

pytestmark = pytest.mark.browser
if (_reason := browser.missing_browser()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402  (only once it is known to exist)

VIDEO = Path(__file__).parent / "fixtures" / "video" / "pexels_woman_sad_to_happy.mp4"
STEP = 4
FRAMES = 472  # in the clip
#: Loading TensorFlow and the model inside the server, then the clip: slow on 2 busy CI cores.
RESULT_TIMEOUT_MS = 180_000
PAGE_TIMEOUT_MS = 60_000
PLAYER = "document.querySelector('[data-testid=stVideo]')"


@pytest.fixture
def video_page(chromium: Browser, app_url: str) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(f"{app_url}/video")
        expect(page.get_by_test_id("stFileUploader")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
        yield page
    finally:
        context.close()


def upload_at_step(page: Page, step: int) -> None:
    field = page.get_by_label("Frame step", exact=True)
    field.fill(str(step))
    field.press("Enter")
    browser.wait_until_idle(page)  # a file handed over during that rerun can be dropped
    browser.upload(page, VIDEO)
    expect(page.get_by_text(f"frames to process at frame step {step}")).to_be_visible(timeout=PAGE_TIMEOUT_MS)


def test_the_clip_gets_a_timeline_a_player_and_downloads(video_page: Page, tmp_path: Path):
    page = video_page
    upload_at_step(page, STEP)
    expect(page.get_by_text(re.compile(r"frames to process .* about \d+–\d+ s"))).to_be_visible()
    page.get_by_role("button", name="Start").click()

    expect(page.get_by_role("heading", name="Timeline")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    browser.wait_until_idle(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text(f"{math.ceil(FRAMES / STEP)} frames processed (every {STEP})")).to_be_visible()

    # Chromium decodes the emojified H.264 stream and plays it.
    page.wait_for_function(f"{PLAYER}.readyState >= 2", timeout=PAGE_TIMEOUT_MS)
    assert page.evaluate(f"[{PLAYER}.videoWidth, {PLAYER}.videoHeight]") == [640, 360]
    page.evaluate(f"{PLAYER}.muted = true, {PLAYER}.play()")
    page.wait_for_function(f"{PLAYER}.currentTime > 0.5", timeout=PAGE_TIMEOUT_MS)

    # Hovering the first face's timeline shows the time and every emotion's value there.
    timeline = page.get_by_test_id("stVegaLiteChart").nth(1)
    timeline.scroll_into_view_if_needed()
    box = timeline.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.4)
    tooltip = page.locator("#vg-tooltip-element")
    expect(tooltip).to_contain_text("time (s)")
    for name in CLASS_NAMES:
        expect(tooltip).to_contain_text(name)

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Per-frame results (CSV)").click()
    download = download_info.value
    assert download.suggested_filename == "pexels_woman_sad_to_happy_emotions.csv"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_text().splitlines()[0].split(",") == CSV_COLUMNS

    # A setting changed after the result: the page says the result is the earlier one.
    hint = page.get_by_test_id("stAlertContentInfo").filter(has_text="press Start")
    expect(hint).to_have_count(0)
    page.get_by_role("switch", name="Emotion labels").uncheck(force=True)
    expect(hint).to_contain_text("Overlay", timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()  # still shown, marked as earlier


def test_cancel_stops_processing_and_says_so(video_page: Page):
    page = video_page
    upload_at_step(page, 1)
    page.get_by_role("button", name="Start").click()
    cancel = page.get_by_role("button", name="Cancel")
    expect(page.get_by_test_id("stProgress")).to_be_visible(timeout=RESULT_TIMEOUT_MS)

    cancel.click()

    expect(page.get_by_text("Processing stopped before the end")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(cancel).to_have_count(0)
    expect(page.get_by_role("heading", name="Timeline")).to_have_count(0)


def test_a_text_file_named_mp4_is_refused_politely(video_page: Page, tmp_path: Path):
    fake = tmp_path / "not_a_video.mp4"
    fake.write_text("These are words, not moving pictures.\n")
    browser.upload(video_page, fake)

    error = video_page.get_by_test_id("stAlertContentError")
    expect(error).to_contain_text("not a video format", timeout=PAGE_TIMEOUT_MS)
    expect(error).to_contain_text("not_a_video.mp4")
    browser.wait_until_idle(video_page)
    expect(video_page.get_by_test_id("stException")).to_have_count(0)
    expect(video_page.get_by_role("button", name="Start")).to_have_count(0)


def test_a_reload_keeps_the_choices_and_the_work(video_page: Page):
    """Reloading while the clip is processed: the sidebar keeps its choices, the work goes on and
    its result is shown; reloading once more shows it again at once, without a new upload."""
    page = video_page
    upload_at_step(page, STEP)
    labels = page.get_by_role("switch", name="Emotion labels")
    labels.uncheck(force=True)
    browser.wait_until_idle(page)
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_test_id("stProgress")).to_be_visible(timeout=RESULT_TIMEOUT_MS)

    page.reload()

    expect(page.get_by_label("Frame step", exact=True)).to_have_value(str(STEP), timeout=PAGE_TIMEOUT_MS)
    expect(labels).not_to_be_checked()
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible(timeout=RESULT_TIMEOUT_MS)
    expect(page.get_by_text(f"{math.ceil(FRAMES / STEP)} frames processed (every {STEP})")).to_be_visible()
    browser.wait_until_idle(page)
    expect(page.get_by_test_id("stAlertContentInfo").filter(has_text="changed since")).to_have_count(0)

    page.reload()

    expect(page.get_by_role("heading", name="Timeline")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
    expect(page.get_by_test_id("stProgress")).to_have_count(0)
    expect(page.get_by_test_id("stException")).to_have_count(0)
