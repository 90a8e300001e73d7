"""The Live page in headless Chromium with a fake webcam that plays a real face video.

AppTest cannot run ``webrtc_streamer``, so this is the test of the whole live path: the page,
the component's Start button, the WebRTC connection between Chromium and the server (no STUN or
TURN server: host candidates on this machine), the frame callback, the results channel and the
side panel that polls it. The fake camera is the laughing part of the Pexels clip, written as
a Y4M file (Chromium's fake capture reads uncompressed 4:2:0 with a plain ``C420`` header) and
looped by Chromium.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.emotions import CLASS_NAMES

import browser

pytestmark = browser.browser_module()

from playwright.sync_api import Page, expect  # noqa: E402  (only once it is known to exist)

PHOTO = Path(__file__).parent / "fixtures" / "faces" / "london_009_happy.jpg"
#: Connecting, loading TensorFlow in the server and the first frames: slow on 2 CI cores.
FIRST_RESULT_TIMEOUT_MS = 90_000
#: The stall check: windows of this length, each presenting at least this many frames per second.
STALL_WINDOWS = 3
STALL_WINDOW_S = 3.0
MIN_PRESENTED_FPS = 6.0
EMOTION_HEADING = re.compile(rf"^({'|'.join(CLASS_NAMES)})$")


@pytest.fixture
def app_url() -> Iterator[str]:
    """A fresh server per test: what a server has imported depends on the pages it served."""
    with browser.streamlit_server() as url:
        yield url


def open_live(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}/live")
    expect(page.get_by_role("heading", name="Live", exact=True)).to_be_visible(timeout=60_000)


def test_before_start_the_panel_says_what_to_do(camera_page: Page, app_url: str):
    open_live(camera_page, app_url)
    # A fresh server loads the model first (the page says so meanwhile).
    hint = camera_page.get_by_text("when you press Start and allow the camera")
    expect(hint).to_be_visible(timeout=FIRST_RESULT_TIMEOUT_MS)


def test_laughing_face_from_the_camera_reaches_the_panel_as_happy_and_the_video_keeps_moving(
    camera_page: Page, app_url: str
):
    # A photo first on this fresh server, as a visitor might: TensorFlow is then loaded before
    # the WebRTC libraries, an order that once crashed the server (see app/streamlit_app.py).
    camera_page.goto(f"{app_url}/photo")
    browser.upload(camera_page, PHOTO)
    expect(camera_page.get_by_text("Face 1:")).to_be_visible(timeout=FIRST_RESULT_TIMEOUT_MS)
    camera_page.get_by_test_id("stSidebarNav").get_by_role("link", name="Live").click()
    expect(camera_page.get_by_role("heading", name="Live", exact=True)).to_be_visible(timeout=60_000)
    browser.start_live_probe(camera_page)

    emotion = camera_page.get_by_test_id("stMain").get_by_role("heading", name=EMOTION_HEADING)
    expect(emotion).to_be_visible(timeout=FIRST_RESULT_TIMEOUT_MS)  # the callback ran on real frames
    expect(camera_page.get_by_role("heading", name="happy", exact=True)).to_be_visible(timeout=60_000)
    expect(camera_page.get_by_test_id("stMetric").first).to_contain_text("Frames/s")
    expect(camera_page.get_by_test_id("stException")).to_have_count(0)
    assert_video_keeps_moving_with_emojis(camera_page)
    assert_panel_says_when_the_picture_stops(camera_page)


def assert_panel_says_when_the_picture_stops(page: Page) -> None:
    """The panel's stall message follows what the browser presents, not what the server counts.

    Pausing the returned <video> stops its presented frames while the server goes on processing
    every frame: exactly the frozen picture users saw. The message must come within a few
    seconds and go once frames are presented again.
    """
    stalled = page.get_by_test_id("live-stalled")
    expect(stalled).to_be_hidden()
    video = browser.webrtc_frame(page).locator("video").first
    video.evaluate("(video) => video.pause()")
    expect(stalled).to_be_visible(timeout=10_000)
    expect(stalled).to_contain_text("has stood still for")
    video.evaluate("(video) => video.play()")
    expect(stalled).to_be_hidden(timeout=10_000)


def assert_video_keeps_moving_with_emojis(page: Page) -> None:
    """A stall shows here: the browser's presented frames and the server's count must keep rising.

    Read from the <video> the user watches (tests/browser.py's probe), not from the server alone:
    a panel polling a frozen stream once looked alive. Each window must present at least
    MIN_PRESENTED_FPS frames per second (a healthy stream on 2 cores: 15-25; the stalled one: 0-3)
    with an emoji on most sampled frames, and the panel must never say it is looking for a face.
    """
    frames = page.get_by_test_id("stMetric").nth(2).get_by_test_id("stMetricValue")
    before, counted = browser.read_live_probe(page), int(frames.inner_text().replace(",", ""))
    for _ in range(STALL_WINDOWS):
        time.sleep(STALL_WINDOW_S)
        after, now_counted = browser.read_live_probe(page), int(frames.inner_text().replace(",", ""))
        seconds = (after["now"] - before["now"]) / 1000
        presented = (after["frames"] - before["frames"]) / seconds
        sampled = after["sampled"] - before["sampled"]
        with_emoji = (after["emoji"] - before["emoji"]) / max(sampled, 1)
        assert presented >= MIN_PRESENTED_FPS, f"the video stalled: {presented:.1f} frames/s presented"
        assert sampled and with_emoji >= 0.8, f"{with_emoji:.0%} of {sampled} sampled frames had an emoji"
        assert now_counted > counted, f"the server's frame count stopped at {now_counted}"
        expect(page.get_by_text("Looking for a face")).to_have_count(0)
        before, counted = after, now_counted
