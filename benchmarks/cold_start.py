"""How soon after ``streamlit run`` does a first visitor get a photo's emojis? The cold start, end to end.

    python -m benchmarks.cold_start [--runs 3] [--photo tests/fixtures/faces/london_009_happy.jpg]

Per run: Debian's Chromium is started first (a visitor's browser is already open), then the clock
starts and ``streamlit run app/main.py`` with it. As soon as the server answers its health check,
the Photo page is opened; the portrait is handed to the uploader the moment it shows, as a visitor
who knows what to do would. Printed, in seconds from ``streamlit run``: the server healthy, and
from there the page's first words (any visible text in its main block: "Starting Emojify…", the
title), its title, its uploader, and the first face's verdict on screen. "Blank" is the longest
time the main block showed no words, from the start of the navigation until the title: Streamlit
draws its empty frame first, which is no content to a visitor. What the page showed is recorded in
the page itself on every animation frame (benchmarks.page_load.SEEN), not by Playwright's polling.
The server's side comes from its log (app.model_loading): when the model's background load
started and when the model was ready, in seconds from ``streamlit run`` too, and the runtime that
serves it (LiteRT from the derived ``.tflite``, or Keras and TensorFlow without one). Each run
has a fresh server, so nothing is imported or loaded yet. The load average is printed with the
numbers: on a busy machine every step is slower. Needs Debian's Chromium and Playwright, like
the browser tests.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from app.emotions import REPO_ROOT
from benchmarks.page_load import SEEN, drawn  # what the page showed, recorded in the page

sys.path.insert(0, str(REPO_ROOT / "tests"))
import browser  # the browser tests' helpers: server and Chromium

PHOTO = REPO_ROOT / "tests" / "fixtures" / "faces" / "london_009_happy.jpg"
TIMEOUT_MS = 180_000
#: Steps seen by the browser, then the server's (from its log), then the blank time.
STEPS = ("healthy", "words", "title", "uploader", "result")
SERVER_STEPS = ("load", "model")
#: Streamlit's log lines start with their local time, to the millisecond.
STAMP = r"(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})"
LOAD_STARTED = re.compile(STAMP + r".*Loading the emotion model")
MODEL_READY = re.compile(STAMP + r".*Emotion model ready in [\d.]+ s with (?P<runtime>\w+)")


def server_steps(log: str, started_at: float) -> tuple[dict[str, float], str]:
    """Seconds from ``streamlit run`` (``started_at``, a wall-clock time) to the loader's steps,
    and the runtime that serves the model."""

    def seconds(stamp: str) -> float:
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp() - started_at

    steps, runtime = {}, "?"
    if started := LOAD_STARTED.search(log):
        steps["load"] = seconds(started["stamp"])
    if ready := MODEL_READY.search(log):
        steps["model"] = seconds(ready["stamp"])
        runtime = ready["runtime"]
    return steps, runtime


def one_run(chromium: browser.Browser, photo: Path) -> tuple[dict[str, float], str]:
    """Seconds from ``streamlit run`` to each step (and the blank time after navigating)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(SEEN)
    page = context.new_page()
    with tempfile.TemporaryDirectory(prefix="cold-start-") as folder:
        log = Path(folder) / "server.log"
        try:
            started_at, started = time.time(), time.monotonic()
            with browser.streamlit_server(log=log) as url:
                healthy = time.monotonic() - started
                navigated = time.monotonic() - started
                page.goto(f"{url}/photo", wait_until="commit")
                page.get_by_role("heading", name="Photo", level=1).wait_for(timeout=TIMEOUT_MS)
                page.get_by_test_id("stFileUploader").first.wait_for(timeout=TIMEOUT_MS)
                uploader = time.monotonic() - started
                browser.upload(page, photo)
                page.get_by_text("Face 1:").first.wait_for(timeout=TIMEOUT_MS)
                result = time.monotonic() - started
                shown = drawn(page, "Photo")
        finally:
            context.close()
        times, runtime = server_steps(log.read_text(errors="replace"), started_at)
    return {
        **times,
        "healthy": healthy,
        "words": navigated + shown.words,
        "title": navigated + shown.title,
        "uploader": uploader,
        "result": result,
        "blank": shown.blank,
    }, runtime


def _line(times: dict[str, float]) -> str:
    browser_side = " / ".join(f"{times[step]:5.1f}" for step in STEPS)
    server_side = " / ".join(f"{times[step]:5.1f}" if step in times else "    -" for step in SERVER_STEPS)
    return f"{browser_side}   server {server_side}   blank {times['blank']:5.2f}"


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
    print("seconds from `streamlit run` to: " + " / ".join(STEPS) + "   server: " + " / ".join(SERVER_STEPS))
    print("(load: the model's background load started; blank: the longest the page showed no words)")
    runs = []
    with browser.chromium() as chromium:
        for number in range(1, args.runs + 1):
            times, runtime = one_run(chromium, args.photo)
            runs.append(times)
            print(
                f"run {number}: {_line(times)}   {runtime}   load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    if len(runs) > 1:
        keys = set.intersection(*(set(times) for times in runs))
        print(f"median: {_line({key: statistics.median(r[key] for r in runs) for key in keys})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
