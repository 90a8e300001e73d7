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
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # Playwright is optional: imported only where a browser is really launched.
    import pytest
    from playwright.sync_api import Browser, Locator, Page, Playwright

T = TypeVar("T")

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


def browser_module(*other_needs: str | None) -> pytest.MarkDecorator:
    """A browser test module's ``pytestmark``; skips the whole module where it cannot run.

    Called while the module is imported, before it imports Playwright: a machine without a
    browser, or without one of ``other_needs`` (each a skip reason, ``None`` when met), skips
    the module with that reason instead of failing to import it.
    """
    import pytest

    if (reason := missing_browser() or next(filter(None, other_needs), None)) is not None:
        pytest.skip(reason, allow_module_level=True)
    return pytest.mark.browser


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
    entry: str = ENTRY,
    timeout_s: float = SERVER_START_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
    *,
    secrets: Path | None = None,
    log: Path | None = None,
) -> Iterator[str]:
    """Serve ``entry`` with ``streamlit run`` from the repository root; yields the base URL.

    ``env`` adds environment variables for the server, e.g. public mode's settings. ``secrets``
    is a ``secrets.toml`` to read instead of the usual places (Streamlit's ``secrets.files``),
    so a test can serve an owner's secrets file without writing one into the repository.
    ``log`` keeps the server's output in that file, for a test that checks what it logged.

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
    if secrets is not None:
        env["STREAMLIT_SECRETS_FILES"] = str(secrets)
    url = f"http://127.0.0.1:{port}"
    with log.open("w+b") if log is not None else tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_until_healthy(url, process, output, timeout_s)
            yield url
        finally:
            stop(process)


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


def stop(process: subprocess.Popen) -> None:
    """End a server we started: politely, then for sure."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _Driver:
    """The one Playwright driver of this process and how many ``chromium()`` blocks use it: its sync
    API refuses a second driver in the same thread, and a test run keeps a shared browser open while
    a module launches one with its own switches."""

    playwright: Playwright | None = None
    users = 0


@contextlib.contextmanager
def chromium(extra_args: Sequence[str] = ()) -> Iterator[Browser]:
    """Headless Debian Chromium under Playwright's sync API; closed on exit.

    ``extra_args`` add command-line switches, e.g. the fake camera of the Live page's test.
    Several may be open at once; the driver behind them stops with the last one.
    """
    from playwright.sync_api import sync_playwright

    if _Driver.playwright is None:
        _Driver.playwright = sync_playwright().start()
    _Driver.users += 1
    try:
        browser = _Driver.playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()
    finally:
        _Driver.users -= 1
        if not _Driver.users:
            _Driver.playwright.stop()
            _Driver.playwright = None


def outside_playwright(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` on a fresh thread: its result, or its exception raised here.

    While a browser is open (the run's shared Chromium stays open until the end), Playwright's sync
    API keeps an asyncio loop running in the main thread, so ``asyncio.run`` there fails. Code under
    test that runs its own loop (a TURN check, an aiortc sender) runs on threads in the app too.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args, **kwargs).result()


def wait_until_idle(page: Page, timeout_ms: float = 60_000) -> None:
    """Wait until the app is connected and no script run is in progress.

    Only meaningful once the run to wait for is known to have started (e.g. its first output is
    visible): right after an interaction the previous run's idle state may still be showing.
    """
    from playwright.sync_api import expect

    expect(page.locator(APP_IDLE)).to_be_attached(timeout=timeout_ms)


def switch_on(switch: Locator, attempts: int = 3, timeout_ms: float = 15_000) -> None:
    """Turn a Streamlit toggle on, clicking again only if a click was lost.

    A click that lands while a rerun redraws the widget can be dropped; Playwright's ``check()``
    then fails with "did not change its state". Only an unchecked switch is clicked, so a late
    click is never undone by the next one.
    """
    from playwright.sync_api import expect

    for _ in range(attempts):
        if not switch.is_checked():
            switch.click(force=True)
        try:
            expect(switch).to_be_checked(timeout=timeout_ms)
            return
        except AssertionError:
            continue
    expect(switch).to_be_checked(timeout=timeout_ms)


def upload(page: Page, file: Path) -> None:
    """Hand ``file`` to the page's (first) Streamlit file uploader, as a user's file picker would."""
    page.get_by_test_id("stFileUploader").locator("input[type=file]").first.set_input_files(file)


def write_y4m(
    video: Path, path: Path, start_s: float, end_s: float, size: tuple[int, int] = (640, 480)
) -> int:
    """Part of ``video`` as a Y4M file for Chromium's fake camera; returns the frame count.

    Chromium's fake capture reads uncompressed 4:2:0 with a plain ``C420`` header and loops it.
    Each frame keeps its aspect ratio, scaled to fit ``size`` with black bars: scaling a 16:9
    clip straight to 4:3 makes every face a third taller, and the model then reads a broad laugh
    as fear; cropping it would cut off a face near the edge.
    """
    import cv2
    import numpy as np

    from app.video import video_frames

    width, height = size
    count = 0
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F24:1 Ip A1:1 C420\n".encode())
        for _, rgb in video_frames(video, None, start_s, end_s):
            scale = min(width / rgb.shape[1], height / rgb.shape[0])
            fitted = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)))
            frame = np.zeros((height, width, 3), np.uint8)
            top, left = (height - fitted.shape[0]) // 2, (width - fitted.shape[1]) // 2
            frame[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
            out.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
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


#: The test clip, and the seconds of it in which she laughs: the fake webcam of the Live tests.
FACE_VIDEO = REPO_ROOT / "tests" / "fixtures" / "video" / "pexels_woman_sad_to_happy.mp4"
LAUGHING = (13.0, 16.5)


def laughing_camera(folder: Path) -> Path:
    """The laughing part of the test clip as a fake webcam's Y4M file, written into ``folder``."""
    camera = folder / "laughing.y4m"
    assert write_y4m(FACE_VIDEO, camera, *LAUGHING) > 60
    return camera


@contextlib.contextmanager
def laughing_camera_chromium(folder: Path) -> Iterator[Browser]:
    """Chromium whose webcam plays the laughing part of the test clip (written into ``folder``)."""
    with chromium(fake_camera_args(laughing_camera(folder))) as launched:
        yield launched


@contextlib.contextmanager
def new_page(launched: Browser, width: int = 1400, height: int = 1000) -> Iterator[Page]:
    """A page in a fresh context of ``launched`` (a new Streamlit session); the context is closed on exit."""
    context = launched.new_context(viewport={"width": width, "height": height})
    try:
        yield context.new_page()
    finally:
        context.close()


def start_webrtc(page: Page, timeout_ms: float = 60_000) -> None:
    """Press the streamlit-webrtc component's Start button (inside the component's iframe)."""
    import re

    from playwright.sync_api import expect

    component = page.frame_locator('iframe[title*="webrtc_streamer"]')
    button = component.get_by_role("button", name=re.compile("^start$", re.IGNORECASE))
    expect(button).to_be_visible(timeout=timeout_ms)
    button.click()


#: Yellow pixels (at 160×120) from which a sampled frame counts as carrying an emoji.
MIN_YELLOW_PIXELS = 40
#: Installed on the Live page's returned <video> (inside the component's iframe): counts the frames
#: the browser presents (requestVideoFrameCallback) and samples every third one into a small canvas
#: to tell whether it carries an emoji. The shipped emojis are a saturated yellow (#FDDF30) that
#: skin, hair and rooms rarely reach, so a frame "carries an emoji" when enough pixels are that
#: yellow (a 100-pixel emoji in a 640×480 frame is hundreds of such pixels at 160×120).
VIDEO_PROBE_JS = """(video) => {
  if (window.emojifyProbe) return;
  const probe = {frames: 0, sampled: 0, emoji: 0, firstFrame: null, firstEmoji: null};
  const canvas = document.createElement('canvas');
  canvas.width = 160; canvas.height = 120;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const onFrame = (now) => {
    probe.frames += 1;
    if (probe.firstFrame === null) probe.firstFrame = now;
    if (probe.frames % 3 === 0) {
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      let yellow = 0;
      for (let i = 0; i < px.length; i += 4) {
        if (px[i] > 200 && px[i + 1] > 170 && px[i + 2] < 110 && px[i] - px[i + 2] > 120) yellow += 1;
      }
      probe.sampled += 1;
      if (yellow >= MIN_YELLOW) {
        probe.emoji += 1;
        if (probe.firstEmoji === null) probe.firstEmoji = now;
      }
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  window.emojifyProbe = probe;
}""".replace("MIN_YELLOW", str(MIN_YELLOW_PIXELS))


def webrtc_frame(page: Page):
    """The streamlit-webrtc component's iframe (where its Start button and <video> live)."""
    return page.frame_locator('iframe[title*="webrtc_streamer"]')


def start_live_probe(page: Page, timeout_ms: float = 90_000) -> None:
    """Press Start, then watch the returned video with VIDEO_PROBE_JS as soon as it exists.

    The click time is kept in the iframe's own clock, so ``read_live_probe`` can tell how long
    the first emojified frame took from the user's click.
    """
    import re

    from playwright.sync_api import expect

    component = webrtc_frame(page)
    # Stamp the click time only once the component's own document is there (its Start button
    # shows): a stamp put on the iframe's first, blank document is lost when the component loads.
    start = component.get_by_role("button", name=re.compile("^start$", re.IGNORECASE))
    expect(start).to_be_visible(timeout=timeout_ms)
    component.locator("body").evaluate("() => { window.emojifyStartedAt = performance.now(); }")
    start_webrtc(page)
    video = component.locator("video").first
    expect(video).to_be_attached(timeout=timeout_ms)
    video.evaluate(VIDEO_PROBE_JS)


def read_live_probe(page: Page) -> dict[str, float | None]:
    """The probe's counters now: frames presented, sampled, with an emoji, and their times (ms).

    ``now`` and the times are in the iframe's clock; ``first_emoji_s`` counts from the Start click.
    """
    return (
        webrtc_frame(page)
        .locator("body")
        .evaluate(
            """() => {
          const p = window.emojifyProbe || {frames: 0, sampled: 0, emoji: 0};
          const since = (t) => (t === null || t === undefined) ? null : (t - window.emojifyStartedAt) / 1000;
          return {now: performance.now(), frames: p.frames, sampled: p.sampled, emoji: p.emoji,
                  first_frame_s: since(p.firstFrame), first_emoji_s: since(p.firstEmoji)};
        }"""
        )
    )


#: Installed with ``context.add_init_script`` before the Live page loads: keeps every
#: RTCPeerConnection a frame creates in ``window.emojifyPeers``, so its getStats() can be read
#: (streamlit-webrtc keeps its connection inside a React ref).
PEER_CONNECTION_HOOK_JS = """(() => {
  const Original = window.RTCPeerConnection;
  if (!Original || Original.emojifyHooked) return;
  window.emojifyPeers = [];
  const Hooked = function (...args) {
    const pc = new Original(...args);
    window.emojifyPeers.push(pc);
    return pc;
  };
  Hooked.prototype = Original.prototype;
  Object.setPrototypeOf(Hooked, Original);
  Hooked.emojifyHooked = true;
  window.RTCPeerConnection = Hooked;
})();"""


#: The returned video's getStats() counters (RTCInboundRtpStreamStats) that read_webrtc_stats sums.
INBOUND_COUNTERS = (
    "framesReceived",
    "framesDecoded",
    "framesDropped",
    "keyFramesDecoded",
    "packetsReceived",
    "packetsLost",
    "nackCount",
    "pliCount",
    "firCount",
    "freezeCount",
    "totalFreezesDuration",
    "jitterBufferDelay",
    "jitterBufferEmittedCount",
    "totalDecodeTime",
)


def read_webrtc_stats(page: Page) -> dict | None:
    """The Live stream's WebRTC numbers from the browser's getStats() (needs PEER_CONNECTION_HOOK_JS).

    ``None`` before a peer connection exists. Otherwise: ``policy`` (iceTransportPolicy),
    ``connection`` (connectionState), ``local_type``/``remote_type`` of the selected candidate
    pair (``host``, ``srflx``, ``relay``; ``None`` until one is selected), ``remote_types`` (every
    candidate type the server offered in its answer), ``bytes_sent``/``bytes_received`` on the video
    RTP streams and ``now`` (ms, the iframe's clock), so two readings give the bitrate; ``inbound`` holds the
    returned video's INBOUND_COUNTERS (decoded, dropped, freezes, PLIs sent…), which tell a
    network loss from a starved decoder.
    """
    return (
        webrtc_frame(page)
        .locator("body")
        .evaluate(
            """async () => {
          const peers = window.emojifyPeers || [];
          const pc = peers[peers.length - 1];
          if (!pc) return null;
          const stats = [...(await pc.getStats()).values()];
          const byId = Object.fromEntries(stats.map((s) => [s.id, s]));
          const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
          const pair = transport ? byId[transport.selectedCandidatePairId] : null;
          const sum = (type, field) => stats.filter((s) => s.type === type && s.kind === 'video')
            .reduce((total, s) => total + (s[field] || 0), 0);
          return {
            now: performance.now(),
            policy: pc.getConfiguration().iceTransportPolicy,
            connection: pc.connectionState,
            local_type: pair ? byId[pair.localCandidateId].candidateType : null,
            remote_type: pair ? byId[pair.remoteCandidateId].candidateType : null,
            // From the server's answer: getStats() drops the candidates of pairs it has pruned.
            remote_types: [...new Set([...((pc.remoteDescription || {}).sdp || '')
              .matchAll(/ typ (\\w+)/g)].map((m) => m[1]))],
            bytes_sent: sum('outbound-rtp', 'bytesSent'),
            bytes_received: sum('inbound-rtp', 'bytesReceived'),
            inbound: Object.fromEntries(INBOUND_COUNTERS.map((name) => [name, sum('inbound-rtp', name)])),
          };
        }""".replace("INBOUND_COUNTERS", str(list(INBOUND_COUNTERS)))
        )
    )
