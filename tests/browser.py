"""Run the real app and drive it in headless Chromium: shared by the browser tests and screenshots.

AppTest exercises a page's script but not what the user gets: the uploader, the websocket reruns,
media files, the rendered layout. These helpers start ``streamlit run app/main.py`` as a real server
and open it in Debian's Chromium through Playwright. Playwright must never download a browser
of its own (CI and developer machines have no internet beyond package registries), so Chromium is
always launched from ``/usr/bin/chromium``, and both Playwright and Chromium are optional: callers
ask ``missing_browser()`` first and skip with its reason.

``scripts/screenshot.py`` imports this module by putting ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:  # Playwright is optional: imported only where a browser is really launched.
    from playwright.sync_api import Browser, Page

REPO_ROOT = Path(__file__).resolve().parent.parent
ENTRY = "app/main.py"
CHROMIUM = Path("/usr/bin/chromium")
#: Without the background-networking flags Chromium keeps dialling Google services, and on a closed
#: network those refused connections also break its connections to the local app.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Starting Streamlit is quick, but importing TensorFlow on a 2-core CI machine is not.
SERVER_START_TIMEOUT_S = 90.0
#: Selector that matches once the page is connected and no script run is in progress.
APP_IDLE = (
    '[data-testid="stApp"][data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]'
)


def missing_browser() -> str | None:
    """Why a browser can't be driven here (a skip reason), or ``None`` when it can."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright Python package is missing: pip install -r requirements-dev.txt"
    if not CHROMIUM.is_file():
        return f"{CHROMIUM} is missing: apt-get install chromium (Playwright's own browsers are not used)"
    return None


def chromium_available() -> bool:
    """True when Playwright and Debian's Chromium are both installed."""
    return missing_browser() is None


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it, so parallel runs don't collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(
    entry: str = ENTRY, timeout_s: float = SERVER_START_TIMEOUT_S, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Serve ``entry`` with ``streamlit run`` from the repository root; yields the base URL.

    ``env`` adds environment variables for the server, e.g. public mode's settings.

    The server's output goes to a temporary file rather than a pipe (a full pipe would stall a
    chatty server) and is quoted if it fails to start. It only listens on 127.0.0.1, and its file
    watcher is off so that edits made to the tree during a test run cannot trigger reruns.
    The server is always stopped, whatever happens inside the ``with`` block.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        entry,
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_healthy(url, process, log, timeout_s)
            yield url
        finally:
            _stop(process)


def _wait_until_healthy(url: str, process: subprocess.Popen, log: IO[bytes], timeout_s: float) -> None:
    """Poll Streamlit's health endpoint until it answers "ok"; fail early if the server dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)  # polling interval, not a wait for something to happen
    raise RuntimeError(f"streamlit did not become healthy at {url} within {timeout_s:.0f} s:\n{_tail(log)}")


def _tail(log: IO[bytes], chars: int = 4000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-chars:]


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def chromium(extra_args: Sequence[str] = ()) -> Iterator[Browser]:
    """Headless Debian Chromium under Playwright's sync API; closed on exit.

    ``extra_args`` add command-line switches, e.g. the fake camera of the Live page's test.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()


def wait_until_idle(page: Page, timeout_ms: float = 60_000) -> None:
    """Wait until the app is connected and no script run is in progress.

    Only meaningful once the run to wait for is known to have started (e.g. its first output is
    visible): right after an interaction the previous run's idle state may still be showing.
    """
    from playwright.sync_api import expect

    expect(page.locator(APP_IDLE)).to_be_attached(timeout=timeout_ms)


def upload(page: Page, file: Path) -> None:
    """Hand ``file`` to the page's (first) Streamlit file uploader, as a user's file picker would."""
    page.get_by_test_id("stFileUploader").locator("input[type=file]").first.set_input_files(file)


def write_y4m(
    video: Path, path: Path, start_s: float, end_s: float, size: tuple[int, int] = (640, 480)
) -> int:
    """Part of ``video`` as a Y4M file for Chromium's fake camera; returns the frame count.

    Chromium's fake capture reads uncompressed 4:2:0 with a plain ``C420`` header and loops it.
    """
    import cv2

    from app.video import video_frames

    count = 0
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F24:1 Ip A1:1 C420\n".encode())
        for _, rgb in video_frames(video, size, start_s, end_s):
            out.write(b"FRAME\n" + cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
            count += 1
    return count


def fake_camera_args(y4m: Path) -> list[str]:
    """Chromium switches that grant camera access and play ``y4m`` as the webcam."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        # Offer the real host address, not an mDNS name the server could not resolve.
        "--disable-features=WebRtcHideLocalIpsWithMdns",
    ]


def start_webrtc(page: Page, timeout_ms: float = 60_000) -> None:
    """Press the streamlit-webrtc component's Start button (inside the component's iframe)."""
    import re

    from playwright.sync_api import expect

    component = page.frame_locator('iframe[title*="webrtc_streamer"]')
    button = component.get_by_role("button", name=re.compile("^start$", re.IGNORECASE))
    expect(button).to_be_visible(timeout=timeout_ms)
    button.click()
