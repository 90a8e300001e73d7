"""How do several live streams at once share one server? Simulated webcams against one pipeline.

    python -m benchmarks.live_load [--streams 1 2 4 8] [--seconds 5]

Each simulated stream is what streamlit-webrtc does per browser tab: a camera thread delivers a
640×480 frame every 1/30 s into a one-frame mailbox (a newer frame replaces one not yet taken),
and a worker thread processes the newest frame with the stream's own LiveProcessor. All streams
share one Pipeline (one model, one cascade per thread), as the Live page's ``st.cache_resource``
does. Per N it prints each stream's processed frames/s, p95 latency and share of frames dropped,
and how long a Photo-page analysis takes meanwhile (the server must stay responsive).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.classifier import EmotionClassifier
from app.detection import FaceDetector
from app.emotions import DEFAULT_MODEL_PATH, REPO_ROOT
from app.images import read_image
from app.live import LiveProcessor
from app.pipeline import Pipeline
from app.video import video_frames

VIDEO = REPO_ROOT / "tests" / "fixtures" / "video" / "pexels_woman_sad_to_happy.mp4"
PHOTO = REPO_ROOT / "tests" / "fixtures" / "faces" / "london_009_happy.jpg"
CAMERA_FPS = 30.0


@dataclass
class Mailbox:
    """Holds only the newest frame: what an async WebRTC track does when the worker is busy."""

    frame: tuple[float, np.ndarray] | None = None
    delivered: int = 0
    dropped: int = 0
    condition: threading.Condition = field(default_factory=threading.Condition)

    def put(self, item: tuple[float, np.ndarray]) -> None:
        with self.condition:
            self.dropped += self.frame is not None
            self.frame = item
            self.delivered += 1
            self.condition.notify()

    def take(self, timeout: float) -> tuple[float, np.ndarray] | None:
        with self.condition:
            self.condition.wait_for(lambda: self.frame is not None, timeout)
            item, self.frame = self.frame, None
            return item


def run_stream(
    pipeline: Pipeline, frames: list[np.ndarray], offset: int, stop: threading.Event, latencies: list[float]
) -> Mailbox:
    """Start one stream's camera and worker threads; returns its mailbox for the counts."""
    mailbox = Mailbox()
    processor = LiveProcessor(pipeline, background_scan=True)

    def camera() -> None:
        start = time.perf_counter()
        for index in itertools.count():
            if stop.is_set():
                return
            mailbox.put((index / CAMERA_FPS, frames[(index + offset) % len(frames)]))
            time.sleep(max(0.0, start + (index + 1) / CAMERA_FPS - time.perf_counter()))

    def worker() -> None:
        while not stop.is_set():
            item = mailbox.take(timeout=0.1)
            if item is not None:
                started = time.perf_counter()
                processor.process(item[1], timestamp=item[0])
                latencies.append(time.perf_counter() - started)

    for target in (camera, worker):
        threading.Thread(target=target, daemon=True).start()
    return mailbox


def load_level(pipeline: Pipeline, frames: list[np.ndarray], streams: int, seconds: float, photo) -> str:
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(streams)]
    mailboxes = [
        run_stream(pipeline, frames, offset=17 * i, stop=stop, latencies=latencies[i]) for i in range(streams)
    ]
    time.sleep(1.0)  # warm-up: each stream's first frames trace nothing new, but fill the tracker
    for box, lat in zip(mailboxes, latencies, strict=True):
        box.delivered = box.dropped = 0
        lat.clear()
    photo_times = []
    measuring = time.perf_counter()
    while time.perf_counter() < measuring + seconds:
        started = time.perf_counter()
        pipeline.analyze(photo)
        photo_times.append(time.perf_counter() - started)
        time.sleep(0.5)
    # The photo loop overruns ``seconds``: rates use the time really measured and the frames
    # finished within it.
    fps = [len(lat) / (time.perf_counter() - measuring) for lat in latencies]
    stop.set()
    time.sleep(0.2)
    p95 = [float(np.percentile(lat, 95)) * 1000 if lat else float("nan") for lat in latencies]
    dropped = [box.dropped / box.delivered if box.delivered else 0.0 for box in mailboxes]
    return (
        f"N={streams}: per-stream frames/s {min(fps):5.1f}–{max(fps):5.1f} (camera {CAMERA_FPS:.0f}), "
        f"p95 latency {statistics.median(p95):6.1f} ms, dropped {statistics.mean(dropped):4.0%}, "
        f"photo analysis meanwhile {statistics.median(photo_times) * 1000:5.0f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.live_load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4, 8], help="N values to run")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per N (default 5)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args(argv)

    frames = [rgb for _, rgb in video_frames(VIDEO, (640, 480), start_s=0.0, end_s=4.0)]
    pipeline = Pipeline(FaceDetector(), EmotionClassifier.load(args.model))
    photo = read_image(PHOTO)
    LiveProcessor(pipeline).process(frames[0])  # load the cascade and trace the model once
    print(f"{len(frames)} frames of {VIDEO.name} at 640×480, one shared model: {args.model}")
    for streams in args.streams:
        print(load_level(pipeline, frames, streams, args.seconds, photo), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
