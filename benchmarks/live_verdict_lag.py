"""Does the Live panel show the verdict drawn on the frame the browser presents? Every frame, timed.

    python -m benchmarks.live_verdict_lag [--seconds S] [--start S --end S] [--busy N] [--json]

Starts the app with ``EMOJIFY_LIVE_VERDICT_CODE=1`` (every frame then carries, in its corner, the
number, emotion and confidence of the verdict drawn on it), Debian's Chromium with a fake webcam
that loops part of the test clip (she laughs: 13-16.5 s, the default; the whole clip, sad to happy:
``--start 0 --end 19.6``), opens the Live page and presses Start. Then, for ``--seconds``, the page
itself logs

* every frame the returned ``<video>`` presents (``requestVideoFrameCallback``): the verdict code
  read from it and the panel's verdict at that instant: does the panel show the frame's verdict
  number, and its emotion?
* every change of the panel's verdict number (a ``MutationObserver``), so each verdict's *lag*
  is timed: when the video first presented it minus when the panel first showed it. Positive:
  the video is behind the panel (the panel led); negative: the panel followed the video.

Both are timed in the page (wall-clock milliseconds), so the server's clock plays no part; the
logging and the comparison are tests/test_browser_live_verdict.py's, whose frame-by-frame test
holds the page to the same numbers. The
load average before and after is printed with the numbers: the lag grows with a busy CPU, which
``--busy N`` makes busier (N processes spinning, as ``benchmarks.live_browser --busy``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from app.emotions import REPO_ROOT
from benchmarks.live_browser import busy_processes

sys.path.insert(0, str(REPO_ROOT / "tests"))
import test_browser_live_verdict as verdict_test

import browser


def measure(seconds: float, span: tuple[float, float], busy: int = 0) -> dict[str, object]:
    load_before = os.getloadavg()[0]
    with (
        busy_processes(busy),
        tempfile.TemporaryDirectory() as folder,
        browser.streamlit_server(env={"EMOJIFY_LIVE_VERDICT_CODE": "1", "EMOJIFY_RUNS_DIR": folder}) as url,
    ):
        camera = Path(folder) / "camera.y4m"
        browser.write_y4m(browser.FACE_VIDEO, camera, *span)
        with (
            browser.chromium(browser.fake_camera_args(camera)) as chromium,
            verdict_test.open_page(chromium, url, 1400, 1000) as page,
        ):
            verdict_test.start(page)  # installs the code reader on the video
            video = browser.webrtc_frame(page).locator("video").first
            video.evaluate(verdict_test.FRAME_LOG_JS)
            page.evaluate(verdict_test.PANEL_LOG_JS)
            time.sleep(seconds)
            frames = video.evaluate("(video) => video.emojifyLog")
            panel_changes = page.evaluate("() => window.emojifyPanelLog")
    return {
        "span_s": list(span),
        "seconds": seconds,
        "busy": busy,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    } | verdict_test.follow(frames, panel_changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="measured time (default 40)")
    parser.add_argument("--start", type=float, default=browser.LAUGHING[0], help="first second of the clip")
    parser.add_argument("--end", type=float, default=browser.LAUGHING[1], help="last second of the clip")
    parser.add_argument("--busy", type=int, default=0, help="processes spinning meanwhile (default 0)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args(argv)
    result = measure(args.seconds, (args.start, args.end), args.busy)
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"clip {args.start:g}-{args.end:g} s, {args.seconds:g} s, busy {args.busy}, load "
        f"{result['load_before']} -> {result['load_after']}: {result['presented']} frames presented, "
        f"{result['compared']} compared; "
        f"panel on another verdict {result['other_number']} (ahead {result['panel_ahead']}, behind "
        f"{result['panel_behind']}), another emotion {result['other_emotion']}"
    )
    if result["verdicts_timed"]:
        print(
            f"lag (video minus panel) over {result['verdicts_timed']} verdicts: median "
            f"{result['lag_ms_median']} ms, p10 {result['lag_ms_p10']}, p90 {result['lag_ms_p90']}, "
            f"min {result['lag_ms_min']}, max {result['lag_ms_max']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
