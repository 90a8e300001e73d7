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
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.emotions import CLASS_NAMES

import browser

pytestmark = pytest.mark.browser
if (_reason := browser.missing_browser()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect  # noqa: E402  (only once it is known to exist)

VIDEO = Path(__file__).parent / "fixtures" / "video" / "pexels_woman_sad_to_happy.mp4"
PHOTO = Path(__file__).parent / "fixtures" / "faces" / "london_009_happy.jpg"
LAUGHING = (13.0, 16.5)  # seconds of the clip in which she laughs
#: Connecting, loading TensorFlow in the server and the first frames: slow on 2 CI cores.
FIRST_RESULT_TIMEOUT_MS = 90_000
EMOTION_HEADING = re.compile(rf"^({'|'.join(CLASS_NAMES)})$")


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("camera") / "laughing.y4m"
    assert browser.write_y4m(VIDEO, path, *LAUGHING) > 60
    return path


@pytest.fixture
def app_url() -> Iterator[str]:
    """A fresh server per test: what a server has imported depends on the pages it served."""
    with browser.streamlit_server() as url:
        yield url


@pytest.fixture(scope="module")
def chromium(fake_camera: Path) -> Iterator[Browser]:
    with browser.chromium(browser.fake_camera_args(fake_camera)) as launched:
        yield launched


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def open_live(page: Page, app_url: str) -> None:
    page.goto(f"{app_url}/live")
    expect(page.get_by_role("heading", name="Live", exact=True)).to_be_visible(timeout=60_000)


def test_before_start_the_panel_says_what_to_do(page: Page, app_url: str):
    open_live(page, app_url)
    expect(page.get_by_text("Press Start and allow the camera")).to_be_visible(timeout=30_000)


def test_laughing_face_from_the_camera_reaches_the_panel_as_happy(page: Page, app_url: str):
    # A photo first on this fresh server, as a visitor might: TensorFlow is then loaded before
    # the WebRTC libraries, an order that once crashed the server (see app/main.py).
    page.goto(f"{app_url}/photo")
    browser.upload(page, PHOTO)
    expect(page.get_by_text("Face 1:")).to_be_visible(timeout=FIRST_RESULT_TIMEOUT_MS)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Live").click()
    expect(page.get_by_role("heading", name="Live", exact=True)).to_be_visible(timeout=60_000)
    browser.start_webrtc(page)

    emotion = page.get_by_test_id("stMain").get_by_role("heading", name=EMOTION_HEADING)
    expect(emotion).to_be_visible(timeout=FIRST_RESULT_TIMEOUT_MS)  # the callback ran on real frames
    expect(page.get_by_role("heading", name="happy", exact=True)).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("stMetric").first).to_contain_text("Frames/s")
    frames = page.get_by_test_id("stMetric").nth(2).get_by_test_id("stMetricValue")
    expect(frames).not_to_have_text("0", timeout=10_000)
    expect(page.get_by_test_id("stException")).to_have_count(0)
