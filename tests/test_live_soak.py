"""Soak: the Live page's returned video keeps moving for minutes on a CPU-starved machine.

Issue 25: on 2 cores with 2 busy processes alongside, the picture ran for a while and then
stood still in the browser (0 frames presented for 5 s windows and longer) while the server
kept processing ~21 frames/s: the VP8 encoder fell behind and streamlit-webrtc's relay queued
every frame for it, so each frame sent was older than the last until the browser dropped them
(app/webrtc_relay.py). A short run does not show it: the queue needs a minute or more to grow.

This runs the benchmark's own measurement (benchmarks/live_browser.py: real server, Chromium
with a fake camera playing a face video, the presented frames timed with
requestVideoFrameCallback) for SOAK_S seconds beside BUSY spinning processes, and asserts the
parts of the issue's targets a fix must hold on any machine: no 5 s window below
MIN_WINDOW_FPS and every freeze recovered within MAX_RECOVERY_S. The average rate depends on
how many cores the machine has left, so it is printed, not asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import browser

pytestmark = pytest.mark.browser
if (_reason := browser.missing_browser()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from benchmarks import live_browser  # noqa: E402  (only once the browser is known to exist)

SOAK_S = 120.0
BUSY = 2
MIN_WINDOW_FPS = live_browser.TARGET_WORST_WINDOW_FPS
MAX_RECOVERY_S = live_browser.TARGET_RECOVERY_S
LOG_TAIL_CHARS = 3000


def test_returned_video_keeps_moving_for_two_minutes_beside_two_busy_processes(tmp_path: Path):
    camera = tmp_path / "laughing.y4m"
    assert browser.write_y4m(live_browser.DEFAULT_VIDEO, camera, *live_browser.DEFAULT_SPAN) > 60
    log = tmp_path / "server.log"
    with live_browser.busy_processes(BUSY):
        (result,) = live_browser.measure(camera, 1, SOAK_S, log=log)
    print(result.line(1))
    print("the server's log ends:", log.read_text(errors="replace")[-LOG_TAIL_CHARS:], sep="\n")
    assert result.first_emoji_s is not None, "no emojified frame ever reached the browser"
    assert result.worst_window_fps >= MIN_WINDOW_FPS, (
        f"the picture stood (nearly) still: {result.worst_window_fps:.1f} frames/s presented in the "
        f"worst {live_browser.SAMPLE_EVERY_S:.0f} s window\n{result.line(1)}"
    )
    assert result.longest_recovery_s <= MAX_RECOVERY_S, (
        f"a frozen picture took {result.longest_recovery_s:.1f} s to move again\n{result.line(1)}"
    )
