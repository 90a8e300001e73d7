"""The Live panel keeps up with the video even when Streamlit's timer that redraws it is lost.

Issue 23: during a whole benchmark run the panel said "Looking for a face… 0 frames/s" while
the video came back with emojis. The panel is a fragment that Streamlit's frontend reruns every
half second from a timer; each full run of the page arms that timer with an ``auto_rerun``
message. Streaming causes no full run once the stream plays, so when the timer is lost at Start
nothing redraws the panel again and it shows the first moment of the stream for good.

Here the loss is made deterministic: between Start and the full run that first draws the playing
panel (the one with the Frames/s metric), every ``auto_rerun`` message the server sends is
dropped on its way to the browser (Playwright stands between the page and its websocket), so the
browser holds no timer for the panel when the video starts; after that run every message passes
again. Real Chromium, the real server, the face video as the camera.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import browser

pytestmark = browser.browser_module()

from playwright.sync_api import Page, WebSocketRoute, expect  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

#: A fresh server loads the model and the WebRTC libraries before the component shows.
PAGE_READY_TIMEOUT_MS = 300_000
#: Connecting and the first frames on 2 busy cores.
PLAYING_TIMEOUT_MS = 120_000
#: The panel must show the face and count on within this long after the playing run: the
#: watch asks after 4 s of a frozen panel, plus a full run on a busy server.
REVIVED_TIMEOUT_MS = 30_000
POLL_MS = 250


class TimerLoss:
    """Stands between the page and the server's websocket; drops ``auto_rerun`` while armed.

    Armed by :meth:`arm`; disarmed by the first full run that draws a metric (the playing
    panel's Frames/s), after that run's own ``auto_rerun`` went the same way as the others.
    """

    def __init__(self) -> None:
        self.armed = False
        self.dropped = 0
        self.in_full_run = False

    def route(self, page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()
        page_side.on_message(server_side.send)

        def to_page(message: str | bytes) -> None:
            if isinstance(message, bytes) and self.armed and self.drop(ForwardMsg.FromString(message)):
                return
            page_side.send(message)

        server_side.on_message(to_page)

    def arm(self) -> None:
        self.armed = True

    def drop(self, msg: ForwardMsg) -> bool:
        """Whether ``msg`` is dropped; follows the runs to know when to disarm."""
        kind = msg.WhichOneof("type")
        if kind == "new_session":
            self.in_full_run = not msg.metadata.run.fragment_ids
        elif kind == "auto_rerun":
            self.dropped += 1
            return True
        elif (
            kind == "delta"
            and self.in_full_run
            and msg.delta.WhichOneof("type") == "new_element"
            and msg.delta.new_element.WhichOneof("type") == "metric"
        ):
            self.armed = False
        return False


def wait_until(page: Page, condition: Callable[[], bool], timeout_ms: float, what: str) -> None:
    """Poll ``condition`` while Playwright keeps serving the websocket route (a plain sleep would
    hold every message the route forwards)."""
    for _ in range(int(timeout_ms / POLL_MS)):
        if condition():
            return
        page.wait_for_timeout(POLL_MS)
    raise AssertionError(f"{what} within {timeout_ms / 1000:.0f} s")


def frames_counted(page: Page) -> int:
    """The panel's Frames metric (the third one), as the user reads it."""
    value = page.get_by_test_id("stMetric").nth(2).get_by_test_id("stMetricValue").inner_text()
    return int(value.replace(",", ""))


def test_the_panel_is_redrawn_when_its_timer_is_lost_at_start(camera_page: Page, app_url: str):
    loss = TimerLoss()
    camera_page.route_web_socket(re.compile(r".*/_stcore/stream$"), loss.route)
    camera_page.goto(f"{app_url}/live")
    start = browser.webrtc_frame(camera_page).get_by_role("button", name=re.compile("^start$", re.IGNORECASE))
    expect(start).to_be_visible(timeout=PAGE_READY_TIMEOUT_MS)
    loss.arm()
    browser.start_live_probe(camera_page)
    wait_until(camera_page, lambda: not loss.armed, PLAYING_TIMEOUT_MS, "the playing panel was drawn")
    assert loss.dropped, "no auto_rerun message was dropped: the test would prove nothing"

    # The video plays with emojis; the panel must follow it, not stay at the stream's first moment.
    wait_until(
        camera_page,
        lambda: browser.read_live_probe(camera_page)["emoji"] > 0,
        PLAYING_TIMEOUT_MS,
        "the video showed an emoji",
    )
    panel = camera_page.get_by_test_id("live-panel")
    expect(panel).to_have_attribute("data-state", "face", timeout=REVIVED_TIMEOUT_MS)
    counted = frames_counted(camera_page)
    wait_until(
        camera_page, lambda: frames_counted(camera_page) > counted, REVIVED_TIMEOUT_MS, "the panel counted on"
    )
    fps = camera_page.get_by_test_id("stMetric").first.get_by_test_id("stMetricValue")
    expect(fps).not_to_have_text("0", timeout=REVIVED_TIMEOUT_MS)
    expect(camera_page.get_by_text("Looking for a face")).to_have_count(0)
