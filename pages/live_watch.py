"""The Live page's check on the picture the *browser* shows: has it stopped changing?

The side panel's numbers come from the server: it can process 21 frames a second while none of
them reaches the screen (late frames dropped by the browser, a lossy network, a starved
decoder), and then it says nothing is wrong. This component measures where the user looks: it
watches the returned ``<video>`` inside streamlit-webrtc's iframe (same origin as the app) with
``requestVideoFrameCallback``, which fires for each frame the browser presents, and while the
stream is on and no frame has been presented for ``STALLED_AFTER_S`` it shows, in the panel,
how long the picture has stood still. All of it runs in the browser: no rerun, no round trip,
so it stays true when the server or the connection is the thing that stalled.

A Streamlit v2 component (no iframe of its own): the JavaScript runs in the app's page. The
watch keeps one timer per page (``window.emojifyPresentedWatch``), so a rerun that mounts the
component again only points it at the new message element.
"""

from __future__ import annotations

import streamlit as st

#: Seconds without a new frame before the panel says the stream has stalled: presented by the
#: browser (this watch) or processed by the server (the page's panel). A busy but working stream
#: presents a frame at least every ~0.2 s.
STALLED_AFTER_S = 1.5

HTML = '<div class="stalled" data-testid="live-stalled" data-stalled="0" hidden></div>'
CSS = """
.stalled { padding: 0.75rem 1rem; margin: 0.5rem 0; border-radius: 0.5rem; font-size: 0.95rem;
  background: rgba(255, 189, 69, 0.2); color: rgb(146, 108, 5); }
"""
JS = """
export default function ({ parentElement, data }) {
  const box = parentElement.querySelector('.stalled');
  let watch = window.emojifyPresentedWatch;
  if (!watch) {
    watch = { video: null, last: null, box: null, after: 1.5 };
    const onFrame = (video) => () => {
      if (video !== watch.video) return;
      watch.last = performance.now();
      video.requestVideoFrameCallback(onFrame(video));
    };
    const tick = () => {
      const frame = document.querySelector('iframe[title*="webrtc_streamer"]');
      let video = null;
      try { video = frame && frame.contentDocument && frame.contentDocument.querySelector('video'); }
      catch (err) { video = null; }
      if (video !== watch.video) {
        watch.video = video;
        watch.last = null;
        if (video) video.requestVideoFrameCallback(onFrame(video));
      }
      // A stream whose tracks ended (the connection dropped) still counts: its picture stands still.
      // Stop removes the <video> itself.
      const on = !!(video && video.srcObject);
      if (!on) watch.last = null;
      const still = watch.last === null ? 0 : (performance.now() - watch.last) / 1000;
      const target = watch.box;
      if (!target || !target.isConnected) return;
      if (still >= watch.after) {
        target.hidden = false;
        target.dataset.stalled = still.toFixed(1);
        target.textContent = `The video in this browser has stood still for ${Math.floor(still)} s: `
          + 'its frames are not reaching your screen (a busy computer or a lossy connection). '
          + 'It resumes by itself; if it does not, press Stop and Start.';
      } else if (!target.hidden) {
        target.hidden = true;
        target.dataset.stalled = '0';
      }
    };
    watch.timer = setInterval(tick, 250);
    window.emojifyPresentedWatch = watch;
  }
  watch.box = box;
  watch.after = data.stalled_after_s;
}
"""

_presented_watch = st.components.v2.component("emojify_live_watch", html=HTML, css=CSS, js=JS)


def presented_watch() -> None:
    """Mount the watch once per run, outside the panel's fragment (a fragment rerun would remount it)."""
    _presented_watch(key="live_presented_watch", data={"stalled_after_s": STALLED_AFTER_S})
