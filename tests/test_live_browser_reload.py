"""benchmarks.live_browser outlives a new document in streamlit-webrtc's iframe.

A 300 s run once ended with Playwright's "Frame was detached": the component's iframe was
replaced while the benchmark read it, and with it went every presentation time gathered so
far. Here a plain page in headless Chromium stands in for the Live page: an iframe titled as
the component's, whose <video> plays a canvas stream, replaced on purpose while it is read.
"""

from __future__ import annotations

import time

import pytest

import browser

pytestmark = pytest.mark.browser
if (_reason := browser.missing_browser()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from benchmarks.live_browser import Tab, watch_presented  # noqa: E402  (only once it is known to exist)

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
        watch_presented(page)
        tab = Tab(page)
        assert presented_more_than(tab, 0), "the stand-in component presented no frame"
        before = len(tab.presented)

        answer = tab.read(
            lambda page: browser.webrtc_frame(page).locator("body").evaluate(READ_DURING_REPLACEMENT_JS)
        )
        assert answer == "answered"
        assert tab.reloads == 1

        assert presented_more_than(tab, before), "frames presented after the replacement were not counted"
        assert tab.presented == sorted(tab.presented), "times from both documents are on one clock"
