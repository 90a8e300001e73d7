"""The Live page's check on the picture the *browser* shows: has it stopped changing?

The side panel's numbers come from the server: it can process 21 frames a second while none of
them reaches the screen (late frames dropped by the browser, a lossy network, a starved
decoder), and then it says nothing is wrong. This component measures where the user looks: it
watches the returned ``<video>`` inside streamlit-webrtc's iframe (same origin as the app) with
``requestVideoFrameCallback``, which fires for each frame the browser presents, and while the
stream is on and no frame has been presented for ``STALLED_AFTER_S`` it shows, in the panel,
how long the picture has stood still. All of it runs in the browser: no rerun, no round trip,
so it stays true when the server or the connection is the thing that stalled.

The same watch keeps the panel itself honest. The panel is redrawn by a fragment that Streamlit's
frontend reruns every half second from a timer, armed by each full run of the page; when that
timer is lost, nothing reruns the fragment again and the panel keeps showing the moment it was
last drawn ("Looking for a face… 0 frames/s" for a whole minute while the video came back with
emojis). The cause seen was a fresh server's first run, which named the fragment differently from
later runs (fixed in app/streamlit_app.py); this watch is the safety net for any other. Each redraw numbers
the panel element (``data-drawn``, pages/live_panel.py); while the video presents frames and
that number (or the lack of a panel) has not changed for ``PANEL_STALE_AFTER_S``, the watch asks
for a full rerun (a trigger value), which redraws the panel and arms its timer again; it asks
again at most every ``PANEL_STALE_AFTER_S`` while the panel stays frozen.

A Streamlit v2 component (no iframe of its own): the JavaScript runs in the app's page. The
watch keeps one timer per page (``window.emojifyPresentedWatch``), so a rerun that mounts the
component again only points it at the new message element and the new trigger.
"""

from __future__ import annotations

import logging

import streamlit as st

LOGGER = logging.getLogger(__name__)

#: Seconds without a new frame before the panel says the stream has stalled: presented by the
#: browser (this watch) or processed by the server (the page's panel). A busy but working stream
#: presents a frame at least every ~0.2 s.
STALLED_AFTER_S = 1.5
#: Seconds the video may play while the panel shows the same redraw before the watch asks for a
#: full rerun: eight of the panel's half-second refreshes (the longest gap between two redraws in
#: 25 streams on 2 cores at load average 15-29 was 1.2 s).
PANEL_STALE_AFTER_S = 4.0

HTML = '<div class="stalled" data-testid="live-stalled" data-stalled="0" hidden></div>'
CSS = """
.stalled { padding: 0.75rem 1rem; margin: 0.5rem 0; border-radius: 0.5rem; font-size: 0.95rem;
  background: rgba(255, 189, 69, 0.2); color: rgb(146, 108, 5); }
"""
JS = """
export default function ({ parentElement, data, setTriggerValue }) {
  const box = parentElement.querySelector('.stalled');
  let watch = window.emojifyPresentedWatch;
  if (!watch) {
    watch = { video: null, last: null, box: null, after: 1.5, panelAfter: 4, ask: null,
              drawn: null, drawnAt: 0, askedAt: 0 };
    const onFrame = (video) => () => {
      if (video !== watch.video) return;
      watch.last = performance.now();
      video.requestVideoFrameCallback(onFrame(video));
    };
    // The panel's redraw number, and whether to ask for a full rerun: the video plays and the
    // panel has shown the same redraw (or none) for panelAfter seconds.
    const checkPanel = (now, presenting) => {
      const panel = document.querySelector('[data-testid="live-panel"]');
      const drawn = panel ? panel.dataset.drawn : null;
      if (drawn !== watch.drawn || !presenting) {
        watch.drawn = drawn;
        watch.drawnAt = now;
        return;
      }
      const frozen = (now - watch.drawnAt) / 1000;
      if (frozen >= watch.panelAfter && (now - watch.askedAt) / 1000 >= watch.panelAfter && watch.ask) {
        watch.askedAt = now;
        watch.ask(Math.round(frozen));
      }
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
      const now = performance.now();
      const still = watch.last === null ? 0 : (now - watch.last) / 1000;
      checkPanel(now, watch.last !== null && still < watch.after);
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
  watch.panelAfter = data.panel_stale_after_s;
  watch.ask = (seconds) => setTriggerValue('stale_panel', seconds);
}
"""

_presented_watch = st.components.v2.component("emojify_live_watch", html=HTML, css=CSS, js=JS)


def presented_watch() -> None:
    """Mount the watch once per run, outside the panel's fragment (a fragment rerun would remount it).

    Outside the fragment its trigger reruns the whole page, the only rerun that arms the panel's
    timer again; the run it causes says so in the server's log.
    """
    watched = _presented_watch(
        key="live_presented_watch",
        data={"stalled_after_s": STALLED_AFTER_S, "panel_stale_after_s": PANEL_STALE_AFTER_S},
        on_stale_panel_change=lambda: None,  # the rerun itself is the remedy
    )
    if stale_s := watched.get("stale_panel"):
        LOGGER.warning(
            "The Live panel had shown the same redraw for %s s while the video played (its "
            "periodic rerun had stopped): this full run redraws it and restarts the reruns.",
            stale_s,
        )
