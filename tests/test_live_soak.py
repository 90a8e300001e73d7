"""Soak: the Live page's returned video keeps moving for minutes on a CPU-starved machine.

Issue 25: on 2 cores with 2 busy processes alongside, the picture ran for a while and then
stood still in the browser (0 frames presented for 5 s windows and longer) while the server
kept processing ~21 frames/s: the VP8 encoder fell behind and streamlit-webrtc's relay queued
every frame for it, so each frame sent was older than the last until the browser dropped them
(app/webrtc_relay.py). A short run does not show it: the queue needs a minute or more to grow.

This runs the benchmark's own measurement (benchmarks/live_browser.py: real server, Chromium
with a fake camera playing a face video, the presented frames timed with
requestVideoFrameCallback) for SOAK_S seconds beside BUSY spinning processes and asserts what a
fix must hold on any machine, however few cores are left: the picture never stands still for
MAX_FREEZE_S or longer. The rates (issue 25's targets: ≥ 15 frames/s on average, no 5 s window
below 5, recovered within 2 s) depend on the cores left to the stream, so they are printed, and
checked on a quiet machine with ``python -m benchmarks.live_browser --busy 2 --seconds 300``.
On this project's shared 2-core machine (load average 14-30 besides the 2 busy processes):
before the fix 0.2 frames/s, a 105 s freeze and the connection closed; after it 2.2 and 4.1
frames/s in two runs (the server itself managed 1.5), longest freeze 2.6 and 2.0 s, connected.
"""

from __future__ import annotations

from pathlib import Path

import browser

pytestmark = browser.browser_module()

from benchmarks import live_browser  # noqa: E402  (only once the browser is known to exist)

SOAK_S = 120.0
BUSY = 2
#: Longer than any stall a starved but working stream showed (2.6 s), far below the queue's (90 s+).
MAX_FREEZE_S = 5.0
LOG_TAIL_CHARS = 3000


def test_returned_video_keeps_moving_for_two_minutes_beside_two_busy_processes(tmp_path: Path):
    camera = browser.laughing_camera(tmp_path)
    log = tmp_path / "server.log"
    with live_browser.busy_processes(BUSY):
        (result,) = live_browser.measure(camera, 1, SOAK_S, log=log)
    print(result.line(1))
    print("the server's log ends:", log.read_text(errors="replace")[-LOG_TAIL_CHARS:], sep="\n")
    assert result.first_emoji_s is not None, "no emojified frame ever reached the browser"
    assert result.longest_freeze_s < MAX_FREEZE_S, (
        f"the picture stood still for {result.longest_freeze_s:.1f} s\n{result.line(1)}"
    )
