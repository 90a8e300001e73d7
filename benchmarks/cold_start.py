"""How soon after ``streamlit run`` does a first visitor get a photo's emojis? The cold start, end to end.

    python -m benchmarks.cold_start [--runs 3] [--photo tests/fixtures/faces/london_009_happy.jpg]

Per run: Debian's Chromium is started first (a visitor's browser is already open), then the clock
starts and ``streamlit run app/main.py`` with it. As soon as the server answers its health check,
the Photo page is opened; the portrait is handed to the uploader the moment it shows, as a visitor
who knows what to do would. Printed, in seconds from ``streamlit run``: the server healthy, and
from there the page's first paint (any element in the main block), its title, its uploader, and
the first face's verdict on screen. "Blank" is how long the page showed nothing after navigating.
Each run has a fresh server, so nothing is imported or loaded yet. The load average is printed
with the numbers: on a busy machine every step is slower.
Needs Debian's Chromium and Playwright, like the browser tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from app.emotions import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests"))
import browser  # the browser tests' helpers: server and Chromium

PHOTO = REPO_ROOT / "tests" / "fixtures" / "faces" / "london_009_happy.jpg"
TIMEOUT_MS = 180_000
#: Anything the page has drawn in its main block: a title, a caption, a spinner.
PAINTED = '[data-testid="stMain"] [data-testid="stElementContainer"]'
STEPS = ("healthy", "paint", "title", "uploader", "result", "blank")


def one_run(chromium: browser.Browser, photo: Path) -> dict[str, float]:
    """Seconds from ``streamlit run`` to each step (and the blank time after navigating)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        started = time.monotonic()
        with browser.streamlit_server() as url:
            healthy = time.monotonic() - started
            page.goto(f"{url}/photo", wait_until="commit")
            navigated = time.monotonic() - started
            page.locator(PAINTED).first.wait_for(timeout=TIMEOUT_MS)
            paint = time.monotonic() - started
            page.get_by_role("heading", name="Photo", level=1).wait_for(timeout=TIMEOUT_MS)
            title = time.monotonic() - started
            page.get_by_test_id("stFileUploader").first.wait_for(timeout=TIMEOUT_MS)
            uploader = time.monotonic() - started
            browser.upload(page, photo)
            page.get_by_text("Face 1:").first.wait_for(timeout=TIMEOUT_MS)
            result = time.monotonic() - started
    finally:
        context.close()
    return {
        "healthy": healthy,
        "paint": paint,
        "title": title,
        "uploader": uploader,
        "result": result,
        "blank": paint - navigated,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cold_start", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=3, help="fresh servers to time (default 3)")
    parser.add_argument("--photo", type=Path, default=PHOTO, help="portrait to upload")
    args = parser.parse_args(argv)
    if (reason := browser.missing_browser()) is not None:
        parser.error(reason)
    print(f"cpu cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at the start")
    print("seconds from `streamlit run` to: " + " / ".join(STEPS[:-1]) + "   (blank: after navigating)")
    runs = []
    with browser.chromium() as chromium:
        for number in range(1, args.runs + 1):
            times = one_run(chromium, args.photo)
            runs.append(times)
            steps = " / ".join(f"{times[step]:5.1f}" for step in STEPS[:-1])
            print(
                f"run {number}: {steps}   blank {times['blank']:4.1f}   "
                f"load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    if len(runs) > 1:
        medians = " / ".join(f"{statistics.median(r[step] for r in runs):5.1f}" for step in STEPS[:-1])
        blank = statistics.median(r["blank"] for r in runs)
        print(f"median: {medians}   blank {blank:4.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
