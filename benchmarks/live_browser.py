"""What a user of the Live page sees, end to end: real server, real browser, a face on the webcam.

    python -m benchmarks.live_browser [--streams 1 2 4] [--seconds S] [--busy N] [--turn]
                                      [--video V --start S --end S]

Starts ``streamlit run app/main.py`` and Debian's Chromium with a fake webcam that loops part of a
face video (the Pexels clip's laughing part by default), opens the Live page in N tabs at once,
presses Start in each, and then for ``--seconds`` reads two things per stream:

* what the *browser* shows: frames presented by the returned ``<video>`` per second
  (``requestVideoFrameCallback``), the share of sampled presented frames that carry an emoji, and
  the time from the Start click to the first returned frame (the WebRTC connection) and to the
  first emojified one (tests/browser.py's video probe);
* what the *server* says in the side panel: frames processed per second and the latency
  (median and p95 over its last 2 s), sampled every few seconds;
* what the connection carries, from the browser's getStats(): the selected candidate pair
  (``host``, ``relay``…) and the video bitrate each way, i.e. what a TURN provider's quota sees.

The presented frames/s are also reported per 5 s window, with every *freeze*: a stretch of at least
``FREEZE_S`` in which the browser presented no new frame (the picture stood still on screen).

``--turn`` sends the video through a real TURN relay: Debian's coturn on a loopback port
(tests/turn_relay.py), the app configured with ``TURN_URL``/``TURN_USERNAME``/``TURN_CREDENTIAL``
as the README shows, and the browser told to use the relay only
(``EMOJIFY_ICE_TRANSPORT_POLICY=relay``), so every frame goes browser → coturn → server and back.

Then it replays the same frames through :class:`app.live.LiveProcessor` alone, as
``benchmarks.live_pipeline`` does, so the gap between the processor and the page is visible.
Chromium decodes, draws and encodes the video on the same CPU as the server, as on a laptop.
Targets (2-core machine): ≥ 20 frames/s presented, emoji on ≥ 95 % of them, first emojified frame
≤ 3 s after Start, server p95 ≤ 50 ms; with 2 streams ≥ 12 frames/s each.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from app.emotions import DEFAULT_MODEL_PATH, REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests"))
import turn_relay

import browser

DEFAULT_VIDEO = REPO_ROOT / "tests" / "fixtures" / "video" / "pexels_woman_sad_to_happy.mp4"
#: The part of the default clip looped as the webcam: she laughs, face always visible.
DEFAULT_SPAN = (13.0, 16.5)
#: How often the browser and the panel are read while measuring.
SAMPLE_EVERY_S = 5.0
#: Time allowed for any one step in a tab (loading the page, reading the probe) before it counts as failed.
PAGE_TIMEOUT_MS = 120_000
#: Time allowed for every stream's first emojified frame (TensorFlow loads on the first stream).
FIRST_EMOJI_TIMEOUT_S = 120.0
#: A gap of at least this long between two presented frames counts as a frozen picture.
FREEZE_S = 1.0
#: Per stream, on the returned <video>: each gap between presented frames that reaches FREEZE_S,
#: as [end time (ms, the iframe's clock), length (s)], and the last frame's time.
FREEZE_PROBE_JS = """(video) => {
  if (window.emojifyFreezes) return;
  const freezes = {gaps: [], last: null};
  const onFrame = (now) => {
    if (freezes.last !== null && (now - freezes.last) / 1000 >= FREEZE_S) {
      freezes.gaps.push([now, (now - freezes.last) / 1000]);
    }
    freezes.last = now;
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  window.emojifyFreezes = freezes;
}""".replace("FREEZE_S", str(FREEZE_S))
PANEL_NUMBER = {
    "fps": re.compile(r"Frames/s\s*\n\s*(\d+)"),
    "latency_ms": re.compile(r"Latency\s*\n\s*(\d+) ms"),
    "p95_ms": re.compile(r"Latency p95: (\d+) ms"),
}


@dataclass(frozen=True)
class StreamResult:
    """One tab's numbers over the measured window."""

    presented_fps: float
    worst_window_fps: float
    emoji_share: float
    first_frame_s: float | None
    first_emoji_s: float | None
    server_fps: float
    server_latency_ms: float
    server_p95_ms: float
    windows_fps: tuple[float, ...] = ()
    freezes: int = 0
    longest_freeze_s: float = 0.0
    frozen_s: float = 0.0
    pair: str = "?"  # local/remote candidate types (connection state)
    down_kbps: float = float("nan")
    up_kbps: float = float("nan")
    receiver: str = ""

    def line(self, index: int) -> str:
        frame, emoji = (
            "never" if at is None else f"{at:3.1f} s" for at in (self.first_frame_s, self.first_emoji_s)
        )
        megabytes_per_minute = (self.down_kbps + self.up_kbps) * 60 / 8 / 1000
        windows = " ".join(f"{fps:.0f}" for fps in self.windows_fps)
        return (
            f"  stream {index}: presented {self.presented_fps:5.1f} frames/s (worst {SAMPLE_EVERY_S:.0f} s: "
            f"{self.worst_window_fps:4.1f})   emoji on {self.emoji_share:4.0%}   first frame {frame}, "
            f"first emoji {emoji}   "
            f"server {self.server_fps:4.1f} frames/s, latency {self.server_latency_ms:3.0f} ms, "
            f"p95 {self.server_p95_ms:3.0f} ms\n"
            f"            freezes ≥ {FREEZE_S:g} s: {self.freezes} (longest {self.longest_freeze_s:.1f} s, "
            f"{self.frozen_s:.0f} s in all)   candidate pair {self.pair}   video "
            f"{self.down_kbps:.0f} kbit/s to the browser, {self.up_kbps:.0f} kbit/s to the server "
            f"({megabytes_per_minute:.1f} MB a minute)\n"
            f"            frames/s per {SAMPLE_EVERY_S:.0f} s: {windows}\n"
            f"            the browser's receiver: {self.receiver}"
        )


def panel_numbers(page: browser.Page) -> dict[str, float]:
    """The side panel's frames/s, median latency and p95 latency, as the user reads them."""
    text = page.get_by_test_id("stMain").inner_text()
    found = {name: pattern.search(text) for name, pattern in PANEL_NUMBER.items()}
    return {name: float(match[1]) for name, match in found.items() if match}


def read_freezes(page: browser.Page) -> dict:
    """FREEZE_PROBE_JS's gaps so far and, as ``now``, the time it was read."""
    return (
        browser.webrtc_frame(page)
        .locator("body")
        .evaluate("() => ({now: performance.now(), ...(window.emojifyFreezes || {gaps: [], last: null})})")
    )


def measure(
    camera: Path, streams: int, seconds: float, env: dict[str, str] | None = None
) -> list[StreamResult]:
    """Run ``streams`` tabs against one fresh server (``env``: its settings); the per-stream results."""
    with (
        browser.streamlit_server(env=env) as url,
        browser.chromium(browser.fake_camera_args(camera)) as chromium,
    ):
        pages = []
        for _ in range(streams):
            context = chromium.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(PAGE_TIMEOUT_MS)  # a starved server answers late, not never
            context.add_init_script(browser.PEER_CONNECTION_HOOK_JS)
            page = context.new_page()
            page.goto(f"{url}/live")
            page.locator('iframe[title*="webrtc_streamer"]').wait_for()
            browser.start_live_probe(page)
            browser.webrtc_frame(page).locator("video").first.evaluate(FREEZE_PROBE_JS)
            pages.append(page)
        deadline = time.monotonic() + FIRST_EMOJI_TIMEOUT_S
        while time.monotonic() < deadline:
            if all(browser.read_live_probe(page)["first_emoji_s"] is not None for page in pages):
                break
            time.sleep(0.5)
        start = [browser.read_live_probe(page) for page in pages]
        samples: list[list[dict]] = [[probe] for probe in start]
        panel: list[list[dict[str, float]]] = [[] for _ in pages]
        freezes_before = [read_freezes(page) for page in pages]
        stats_before = [browser.read_webrtc_stats(page) for page in pages]
        for _ in range(max(1, round(seconds / SAMPLE_EVERY_S))):
            time.sleep(SAMPLE_EVERY_S)
            for index, page in enumerate(pages):
                samples[index].append(browser.read_live_probe(page))
                panel[index].append(panel_numbers(page))
        freezes = [
            _difference(before, read_freezes(page))
            for before, page in zip(freezes_before, pages, strict=True)
        ]
        links = [
            link(before, browser.read_webrtc_stats(page))
            for before, page in zip(stats_before, pages, strict=True)
        ]
        return [
            replace(summarise(probes, numbers), **frozen, **carried)
            for probes, numbers, frozen, carried in zip(samples, panel, freezes, links, strict=True)
        ]


def _difference(before: dict, after: dict) -> dict[str, float]:
    """The freezes that ended within the measured window, and one still going on at its end."""
    gaps = [length for end, length in after["gaps"] if end > before["now"]]
    if after["last"] is None or (after["now"] - after["last"]) / 1000 >= FREEZE_S:
        since = after["last"] if after["last"] is not None else before["now"]
        gaps.append((after["now"] - since) / 1000)
    return {"freezes": len(gaps), "frozen_s": sum(gaps), "longest_freeze_s": max(gaps, default=0.0)}


def link(before: dict | None, after: dict | None) -> dict[str, object]:
    """The candidate pair and the video bitrate each way between two getStats() readings."""
    if not before or not after or after["now"] <= before["now"]:
        return {}
    seconds = (after["now"] - before["now"]) / 1000
    got = {name: after["inbound"][name] - before["inbound"][name] for name in after["inbound"]}
    buffered_ms = 1000 * got["jitterBufferDelay"] / max(got["jitterBufferEmittedCount"], 1)
    decode_ms = 1000 * got["totalDecodeTime"] / max(got["framesDecoded"], 1)
    receiver = (
        f"{got['framesReceived']:.0f} frames received, {got['framesDecoded']:.0f} decoded "
        f"({got['keyFramesDecoded']:.0f} keyframes, {decode_ms:.1f} ms each), "
        f"{got['framesDropped']:.0f} dropped; packets {got['packetsReceived']:.0f} received, "
        f"{got['packetsLost']:.0f} lost; sent {got['nackCount']:.0f} NACK, {got['pliCount']:.0f} PLI, "
        f"{got['firCount']:.0f} FIR; jitter buffer {buffered_ms:.0f} ms; its own freeze count "
        f"{got['freezeCount']:.0f} ({got['totalFreezesDuration']:.1f} s)"
    )
    return {
        "pair": f"{after['local_type']}/{after['remote_type']} ({after['connection']})",
        "down_kbps": (after["bytes_received"] - before["bytes_received"]) * 8 / 1000 / seconds,
        "up_kbps": (after["bytes_sent"] - before["bytes_sent"]) * 8 / 1000 / seconds,
        "receiver": receiver,
    }


def summarise(probes: list[dict], numbers: list[dict[str, float]]) -> StreamResult:
    """One stream's rates from its probe readings and panel samples."""
    first, last = probes[0], probes[-1]
    span_s = (last["now"] - first["now"]) / 1000
    windows = [
        (b["frames"] - a["frames"]) / ((b["now"] - a["now"]) / 1000) for a, b in itertools.pairwise(probes)
    ]
    sampled = last["sampled"] - first["sampled"]

    def median(name: str) -> float:
        values = [sample[name] for sample in numbers if name in sample]
        return statistics.median(values) if values else float("nan")

    return StreamResult(
        presented_fps=(last["frames"] - first["frames"]) / span_s if span_s > 0 else 0.0,
        worst_window_fps=min(windows, default=0.0),
        emoji_share=(last["emoji"] - first["emoji"]) / sampled if sampled else 0.0,
        first_frame_s=last["first_frame_s"],
        first_emoji_s=last["first_emoji_s"],
        server_fps=median("fps"),
        server_latency_ms=median("latency_ms"),
        server_p95_ms=median("p95_ms"),
        windows_fps=tuple(windows),
    )


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` processes spinning on the CPU for the duration of the block (contention test)."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def offline_line(video: Path, span: tuple[float, float]) -> str:
    """The same frames through LiveProcessor alone (no browser, no WebRTC, no Streamlit)."""
    from app.classifier import EmotionClassifier
    from app.detection import FaceDetector
    from app.live import LiveProcessor
    from app.pipeline import Pipeline
    from app.video import video_frames
    from benchmarks.live_pipeline import WEBCAM_SIZE, time_frames

    frames = list(video_frames(video, WEBCAM_SIZE, *span))
    pipeline = Pipeline(FaceDetector(), EmotionClassifier.load(DEFAULT_MODEL_PATH))
    live = LiveProcessor(pipeline, background_scan=True)  # as the Live page runs it
    timing = time_frames("offline", lambda t, rgb: len(live.process(rgb, timestamp=t)[1].faces), frames)
    return timing.line()


def relay_settings(relay: turn_relay.TurnServer) -> dict[str, str]:
    """The app's environment for a stream through ``relay`` only (the README's TURN settings)."""
    return {
        "TURN_URL": relay.url,
        "TURN_USERNAME": relay.username or "",
        "TURN_CREDENTIAL": relay.password or "",
        "EMOJIFY_ICE_TRANSPORT_POLICY": "relay",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.live_browser", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2], help="tabs at once (default 1 2)")
    parser.add_argument("--seconds", type=float, default=40.0, help="measured time per run (default 40)")
    parser.add_argument(
        "--busy", type=int, default=0, help="CPU-bound processes running alongside, as on a loaded laptop"
    )
    parser.add_argument(
        "--turn",
        action="store_true",
        help="through a real TURN relay (coturn on a loopback port), relay only",
    )
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="face video for the fake webcam")
    parser.add_argument("--start", type=float, default=DEFAULT_SPAN[0], help="first second of the video used")
    parser.add_argument("--end", type=float, default=DEFAULT_SPAN[1], help="last second of the video used")
    args = parser.parse_args(argv)
    if (
        reason := browser.missing_browser() or (turn_relay.missing_coturn() if args.turn else None)
    ) is not None:
        parser.error(reason)
    from playwright.sync_api import Error as PlaywrightError

    print(
        f"cpu cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}; fake webcam {args.video.name} "
        f"{args.start:g}-{args.end:g} s at 640×480, looped"
    )
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        camera = Path(tmp) / "camera.y4m"
        if browser.write_y4m(args.video, camera, args.start, args.end) == 0:
            parser.error(f"no frames in {args.video} between {args.start} and {args.end} s")
        env, path = None, "direct (host candidates, no STUN/TURN server)"
        if args.turn:
            relay = stack.enter_context(
                turn_relay.coturn(Path(tmp) / "coturn", user=("emojify", "bench-pass"))
            )
            env = relay_settings(relay)
            path = f"through coturn {turn_relay.TURNSERVER} at {relay.url}, relay only"
        print(f"connection: {path}")
        for streams in args.streams:
            load = f", {args.busy} busy process(es) alongside" if args.busy else ""
            try:
                with busy_processes(args.busy):
                    results = measure(camera, streams, args.seconds, env)
            except PlaywrightError as err:  # the page never came up: that is the result
                print(f"N={streams} browser stream(s){load}: FAILED, {str(err).splitlines()[0]}")
                continue
            print(f"N={streams} browser stream(s), {args.seconds:.0f} s measured{load}:")
            for index, result in enumerate(results, 1):
                print(result.line(index))
        if args.turn:
            print(f"coturn granted {len(relay.allocations())} allocations (browser and server, every stream)")
    print("processor alone, same frames: " + offline_line(args.video, (args.start, args.end)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
