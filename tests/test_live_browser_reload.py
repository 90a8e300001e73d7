"""benchmarks.live_browser outlives a new document in streamlit-webrtc's iframe, and reads the live panel.

A 300 s run once ended with Playwright's "Frame was detached": the component's iframe was
replaced while the benchmark read it, and with it went every presentation time gathered so
far; an N=1 run on a fresh server printed "first frame nan s", the Start click's time having
gone with the replaced document. Here a plain page in headless Chromium stands in for the Live
page: an iframe titled as the component's, whose <video> plays a canvas stream, replaced on
purpose while it is read or when Start is pressed. A page with a stale copy of the side panel
beside the live one stands in for a busy server's rerun.
"""

from __future__ import annotations

import math
import time

import pytest

import browser

pytestmark = pytest.mark.browser
if (_reason := browser.missing_browser()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from benchmarks.live_browser import Tab, panel_numbers, start_stream, watch_presented  # noqa: E402

#: The component's stand-in: a video that keeps presenting frames (a canvas drawn every frame).
COMPONENT = """<video autoplay muted playsinline></video><canvas width="64" height="48"></canvas>
<script>
  const canvas = document.querySelector('canvas'), ctx = canvas.getContext('2d');
  let n = 0;
  const draw = () => { ctx.fillStyle = `hsl(${n++ % 360} 80% 50%)`; ctx.fillRect(0, 0, 64, 48);
                       requestAnimationFrame(draw); };
  draw();
  document.querySelector('video').srcObject = canvas.captureStream(30);
</script>"""
#: The same with the component's Start button, which replaces the iframe when pressed (once), as a
#: rerun on a fresh server remounted the component around the click.
COMPONENT_WITH_START = COMPONENT + "<button onclick='parent.emojifyReplace()'>Start</button>"
#: The page replaces the component's iframe by a new one (a remount), once.
REPLACE_ONCE_JS = """() => { window.emojifyReplace = () => {
  if (window.emojifyReplaced) return;
  window.emojifyReplaced = true;
  const old = document.querySelector('iframe');
  const fresh = document.createElement('iframe');
  fresh.title = old.title;
  fresh.srcdoc = old.srcdoc;
  old.replaceWith(fresh);
}; }"""
#: A read that is under way in the component when its iframe is replaced (on the first try).
READ_DURING_REPLACEMENT_JS = """() => new Promise((done) => {
  setTimeout(() => parent.emojifyReplace(), 100);
  setTimeout(() => done('answered'), 1500);
})"""
#: Time for the stand-in to present its frames on a busy machine.
FRAMES_TIMEOUT_S = 30.0


def presented_more_than(tab: Tab, count: int) -> bool:
    """Drains presented frames until there are more than ``count``; False after FRAMES_TIMEOUT_S."""
    deadline = time.monotonic() + FRAMES_TIMEOUT_S
    while time.monotonic() < deadline:
        tab.drain_presented()
        if len(tab.presented) > count:
            return True
        time.sleep(0.2)
    return False


def test_a_replaced_component_is_read_again_and_its_frames_still_counted():
    with browser.chromium() as chromium:
        page = chromium.new_page()
        page.set_content('<iframe title="streamlit_webrtc.component.webrtc_streamer"></iframe>')
        page.evaluate(REPLACE_ONCE_JS)
        page.locator("iframe").evaluate("(frame, html) => { frame.srcdoc = html; }", COMPONENT)
        browser.webrtc_frame(page).locator("video").wait_for(state="attached")
        watch_presented(page, 0.0)
        tab = Tab(page, 0.0)
        assert presented_more_than(tab, 0), "the stand-in component presented no frame"
        before = len(tab.presented)

        answer = tab.read(
            lambda page: browser.webrtc_frame(page).locator("body").evaluate(READ_DURING_REPLACEMENT_JS)
        )
        assert answer == "answered"
        assert tab.reloads == 1

        assert presented_more_than(tab, before), "frames presented after the replacement were not counted"
        assert tab.presented == sorted(tab.presented), "times from both documents are on one clock"


def test_the_first_frame_is_timed_from_the_click_across_a_replaced_component():
    with browser.chromium() as chromium:
        page = chromium.new_page()
        page.set_content('<iframe title="streamlit_webrtc.component.webrtc_streamer"></iframe>')
        page.evaluate(REPLACE_ONCE_JS)
        page.locator("iframe").evaluate("(frame, html) => { frame.srcdoc = html; }", COMPONENT_WITH_START)

        tab = start_stream(page)  # the click replaces the component's document

        deadline = time.monotonic() + FRAMES_TIMEOUT_S
        while (first := tab.probe()["first_frame_s"]) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert page.evaluate("window.emojifyReplaced"), "the stand-in's Start did not replace its document"
        assert first is not None, "no frame was seen after the click"
        assert math.isfinite(first) and 0 <= first < FRAMES_TIMEOUT_S, (
            f"first frame {first} s after the click"
        )


#: Two copies of the Live page's side panel (pages/live.py): the verdict element, then the metrics
#: and the p95 caption, each in an element container as Streamlit draws them. A busy server's rerun
#: left the stale copy (an older redraw, data-drawn 3) first on the page.
PANEL_COPY = """<div data-testid="stElementContainer"><div data-testid="live-panel" data-drawn="{drawn}">
  <h3>happy</h3></div></div>
<div data-testid="stElementContainer"><div><div>Frames/s</div><div>{fps}</div></div>
  <div><div>Latency</div><div>{latency} ms</div></div></div>
<div data-testid="stElementContainer"><p>Latency p95: {p95} ms</p></div>"""


def test_the_panel_numbers_are_read_from_the_newest_panel():
    stale = PANEL_COPY.format(drawn=3, fps=2, latency=400, p95=900)
    live = PANEL_COPY.format(drawn=11, fps=21, latency=18, p95=35)
    with browser.chromium() as chromium:
        page = chromium.new_page()
        page.set_content(f'<div data-testid="stMain">{stale}{live}</div>')
        assert panel_numbers(page) == {"fps": 21.0, "latency_ms": 18.0, "p95_ms": 35.0}
        page.set_content(f'<div data-testid="stMain">{live}{stale}</div>')
        assert panel_numbers(page) == {"fps": 21.0, "latency_ms": 18.0, "p95_ms": 35.0}
