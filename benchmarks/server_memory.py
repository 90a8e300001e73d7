"""How much memory does the app's server need? RSS with the model loaded and one live stream.

    python -m benchmarks.server_memory [--seconds 20]

Starts ``streamlit run app/main.py`` as a user would, then in headless Chromium: opens Home, runs
one photo through the Photo page, and streams the Pexels clip through the Live page's fake camera
for ``--seconds``. Prints the server process's resident memory (VmRSS and peak VmHWM from
/proc) after each step, and every minute of the stream. Community Cloud gives an app
690 MB–2.7 GB; the target is under 1 GB.
Needs Debian's Chromium and Playwright, like the browser tests (Linux only: it reads /proc).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from app.emotions import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests"))
import browser  # the browser tests' helpers: server, Chromium, fake camera

VIDEO = REPO_ROOT / "tests" / "fixtures" / "video" / "pexels_woman_sad_to_happy.mp4"
PHOTO = REPO_ROOT / "tests" / "fixtures" / "faces" / "london_009_happy.jpg"
TIMEOUT_MS = 120_000
#: How often the server's memory is reported during the stream.
REPORT_EVERY_S = 60.0


def server_pid(url: str) -> int:
    """The pid of the ``streamlit run`` process serving ``url`` (found by its --server.port)."""
    port = str(urlparse(url).port)
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(args) and port.encode() in args:
            return int(cmdline.parent.name)
    raise RuntimeError(f"no streamlit process found for {url}")


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of ``pid`` in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a training's, while one runs)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # it has just exited
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def proportional_mb(pid: int) -> float:
    """``pid``'s proportional set size in MB (the pages it shares count by their share)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise KeyError(f"no Pss in /proc/{pid}/smaps_rollup")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.server_memory", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to stream (default 20)")
    args = parser.parse_args(argv)
    if reason := browser.missing_browser():
        print(f"error: {reason}", file=sys.stderr)
        return 2
    from playwright.sync_api import expect

    with tempfile.TemporaryDirectory() as tmp:
        camera = Path(tmp) / "camera.y4m"
        browser.write_y4m(VIDEO, camera, 13.0, 16.5)
        with (
            browser.streamlit_server() as url,
            browser.chromium(browser.fake_camera_args(camera)) as chromium,
        ):
            pid = server_pid(url)

            def report(step: str) -> None:
                rss, peak = memory_mb(pid)
                print(f"{step:<34} RSS {rss:6.0f} MB   peak {peak:6.0f} MB", flush=True)

            report("server started")
            page = chromium.new_page()
            page.goto(url)
            expect(page.get_by_role("heading", name="Emojify", level=1)).to_be_visible(timeout=TIMEOUT_MS)
            report("home page shown")
            page.goto(f"{url}/photo")
            browser.upload(page, PHOTO)
            expect(page.get_by_text("Face 1:")).to_be_visible(timeout=TIMEOUT_MS)
            report("photo analysed (model loaded)")
            page.goto(f"{url}/live")
            browser.start_webrtc(page, TIMEOUT_MS)
            expect(page.get_by_test_id("stMetric").first).to_be_visible(timeout=TIMEOUT_MS)
            # Every minute (and at the end), so a slow leak shows as a rising line, not one number.
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < args.seconds:
                time.sleep(min(REPORT_EVERY_S, args.seconds - elapsed))
                report(f"live stream for {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
