"""Video files: decode, run through the Live page's processor, write an annotated MP4, summarise.

    python -m app.video VIDEO [--out OUT.mp4] [--csv OUT.csv] [--step N]

One code path: every processed frame goes through :class:`app.live.LiveProcessor`, so a video's
timeline has the same tracking, smoothing and steady labels as the Live page (only the webcam's
mirror view is off). With ``step`` N only every N-th frame is processed and written, so the
output keeps the video's duration at 1/N of its frame rate. The MP4 and the CSV are written
under temporary names and renamed when done, so neither is ever half written; a video that
breaks partway keeps what came before the damage in both, and the CLI says so and exits with 1.

A file, unlike a webcam, can be looked at twice, and two things are done afterwards that a live
stream cannot do: a face the tracker confirms is also drawn on the few frames it spent confirming
it (:class:`Backfill`), so the video opens with its emoji, not on a bare face; and a track that
ends and starts again where it was, moments later (hands over the face), is one face in the
timeline, not two (:func:`rejoin_tracks`).

PyAV (FFmpeg, already installed for streamlit-webrtc) decodes and encodes. It tells apart the
inputs users get wrong (empty, not a video, audio only) before any work starts, gives each frame
its presentation time and rotation (phones store portrait videos sideways), and writes H.264 in
MP4 as yuv420p at even dimensions: the one combination every browser's ``<video>`` plays.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import logging
import math
import secrets
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, TextIO

import av
import cv2
import numpy as np

from app.detection import Box
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH
from app.live import LiveProcessor, LiveSettings, SmoothedFace
from app.pipeline import OverlayOptions, Pipeline

LOGGER = logging.getLogger(__name__)
#: A file path, or the bytes of an upload as a seekable binary file: uploads never touch the disk.
VideoSource = str | Path | BinaryIO
#: Videos are processed and written with their long side at most this: faces stay far larger than
#: the 48 px the model sees, and a phone's 4K video costs what a 720p one does.
MAX_SIDE = 1280
#: The Live page's settings without its selfie mirror (a video file is already the right way
#: round), and with three detections, not two, before a face is shown: the cascade's brief second
#: hits on a forehead or a hand then stay hidden. The delay costs nothing here, as the confirming
#: frames are back-filled.
VIDEO_SETTINGS = LiveSettings(mirror=False, min_hits=3)
#: A track that starts within this long after another one ended, where that one was last seen,
#: continues it: the same person reappearing from behind a hand, not a new face.
REJOIN_GAP_S = 2.0
#: ... also when the two overlap this long: the old track is still shown for a few frames after
#: its face is lost, while the new one is being confirmed.
REJOIN_OVERLAP_S = 0.6
#: A label must hold this long to count as a moment of change (shorter runs are flicker).
MIN_STEADY_S = 0.5
#: H.264 options: "veryfast" keeps encoding a small share of the time per frame (a tenth or so, at
#: 640×360); CRF 23 is x264's default quality. ``faststart`` puts the index first, so a browser
#: starts playing before the whole file has arrived.
X264_OPTIONS = {"preset": "veryfast", "crf": "23"}
MP4_OPTIONS = {"movflags": "+faststart"}
#: The containers the Video page and the CLI take, as users name them, with their file extensions:
#: the one list behind the uploader, its help and the error for anything else.
VIDEO_FORMATS: dict[str, tuple[str, ...]] = {
    "MP4": ("mp4", "m4v"),
    "MOV": ("mov",),
    "WebM": ("webm",),
    "MKV": ("mkv",),
    "AVI": ("avi",),
}
VIDEO_EXTENSIONS: tuple[str, ...] = tuple(ext for exts in VIDEO_FORMATS.values() for ext in exts)
READABLE_FORMATS = f"{', '.join(list(VIDEO_FORMATS)[:-1])} or {list(VIDEO_FORMATS)[-1]}"
#: Processing speed to expect at :data:`REFERENCE_SIZE` on 2 CPU cores, frames/s: ~35 on an idle
#: machine with the shipped ensemble (the Pexels clip: 472 frames in 23 s with start-up, see the
#: README), 12–15 measured while a training ran on the same cores.
EXPECTED_FPS = (12, 35)
REFERENCE_SIZE = (640, 360)
#: The share of a reference frame's time that grows with its pixels (decoding, detection, drawing,
#: encoding); the rest (classifying the face, tracking) is the same at any size. Measured as CPU
#: time per frame with a face in view (the Pexels clip's laughing, 72 frames, on a busy machine):
#: 12.0, 16.0 and 41.2 ms at 320×240, 640×360 and 1280×720, i.e. 7.6 ms + 8.4 ms per 640×360.
PIXEL_SHARE = 0.5
CSV_COLUMNS = ["frame", "time_s", "face", "emotion", "confidence", "x", "y", "w", "h", *CLASS_NAMES]


class VideoError(ValueError):
    """An input that is not a usable video; the message is meant for the user."""


class CutShort(VideoError):
    """Decoding failed partway: the first ``seconds`` of the video could be read, no more."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the video is damaged after {seconds:.1f} s and can't be read beyond that")
        self.seconds = seconds


def logged(error: VideoError, cause: av.FFmpegError) -> VideoError:
    """``error``, for the user, with FFmpeg's own words in the server log: an errno and the internal
    function that failed ("[Errno 1094995529] … 'avcodec_send_packet()'") mean nothing to a user,
    and help whoever looks into the file."""
    LOGGER.warning("%s: %s", error, cause)
    return error


class VideoDamaged(VideoError):
    """The video broke partway: ``result`` holds the frames before the damage, and the MP4 written
    (if any) holds them too and plays. What was done is kept, so the caller can say so."""

    def __init__(self, message: str, result: VideoResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream (size as displayed, after rotation)."""

    width: int
    height: int
    fps: Fraction
    duration_s: float
    frames: int

    def processing_size(self, max_side: int = MAX_SIDE) -> tuple[int, int]:
        """``(width, height)`` to decode to: at most ``max_side`` long and even, as yuv420p needs."""
        scale = min(1.0, max_side / max(self.width, self.height))
        width, height = (max(2, 2 * round(side * scale / 2)) for side in (self.width, self.height))
        return width, height


def _frame_cost(info: VideoInfo) -> float:
    """A processed frame's time at ``info``'s processing size, a reference frame's being 1."""
    width, height = info.processing_size()
    return 1 - PIXEL_SHARE + PIXEL_SHARE * width * height / (REFERENCE_SIZE[0] * REFERENCE_SIZE[1])


#: The slowest speed to expect, as a share of the fastest: a machine busy with a training
#: processed a third as many frames a second as when idle (:data:`EXPECTED_FPS`).
BUSY_SHARE = 1 / 3
#: Reference frames a second of this server's last video processed whole; None before the first.
_measured_fps: float | None = None


def record_speed(result: VideoResult, min_frames: int = 24) -> None:
    """Keep ``result``'s speed, in reference frames a second, for the next estimates: the fixed
    range was measured on one machine (35 frames/s at best), and a faster one took 7 s for a
    video it said would take 14-40."""
    global _measured_fps
    if not result.cancelled and result.damaged_after_s is None and len(result.frames) >= min_frames:
        _measured_fps = len(result.frames) * _frame_cost(result.info) / result.elapsed_s


def expected_fps() -> tuple[float, float, bool]:
    """Reference frames a second to expect at worst and at best, and whether they come from this
    server's last video (else :data:`EXPECTED_FPS`)."""
    if _measured_fps is None:
        return (*EXPECTED_FPS, False)
    return _measured_fps * BUSY_SHARE, _measured_fps, True


def expected_seconds(info: VideoInfo, step: int = 1) -> tuple[int, int]:
    """The shortest and longest time processing should take, for the frames to process at the
    size they are processed at (:meth:`VideoInfo.processing_size`): a 320×240 clip goes several
    times faster than a 640×360 one, a 4K one is shrunk to 1280×720 first. The speed measured
    while processing (:attr:`Progress.remaining_s`) is the better guide once frames are done."""
    work = math.ceil(info.frames / step) * _frame_cost(info)
    slowest_fps, fastest_fps, _ = expected_fps()
    return math.ceil(work / fastest_fps), math.ceil(work / slowest_fps)


@contextlib.contextmanager
def open_video(source: VideoSource) -> Iterator[av.container.InputContainer]:
    """The opened container, or a :class:`VideoError` that says what is wrong with the file."""
    name = Path(source).name if isinstance(source, (str, Path)) else "the upload"
    if _size(source) == 0:
        raise VideoError("the file is empty (0 bytes)")
    try:
        container = av.open(source if not isinstance(source, Path) else str(source))
    except FileNotFoundError as err:
        raise VideoError(f"{name} does not exist") from err
    except (av.FFmpegError, OSError) as err:
        raise VideoError(f"this is not a video format we can read (use {READABLE_FORMATS})") from err
    try:
        if not container.streams.video:
            kinds = sorted({stream.type for stream in container.streams})
            what = f"only {' and '.join(kinds)}" if kinds else "no streams at all"
            raise VideoError(f"the file has no video in it ({what})")
        yield container
    finally:
        container.close()


def probe(source: VideoSource) -> VideoInfo:
    """Size, frame rate, duration and frame count (an estimate where the container has none).

    Only the first frame is decoded: enough to know the video decodes and how it is rotated.
    """
    with open_video(source) as container:
        return _info(container)


def video_frames(
    source: VideoSource,
    size: tuple[int, int] | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """``(time in seconds, RGB frame)`` for every frame between ``start_s`` and ``end_s``.

    ``size`` is ``(width, height)`` to scale to, as displayed. Times are presentation times from
    the first frame on. A file that is not a video raises :class:`VideoError`.
    """
    for _, seconds, rgb in _decode(source, size, 1, start_s, end_s):
        yield seconds, rgb


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: its index in the video, its time and the tracked faces shown on it,
    largest first."""

    index: int
    time_s: float
    faces: tuple[SmoothedFace, ...]
    error: str | None = None


@dataclass(frozen=True)
class Progress:
    """How far processing has got; ``total`` is estimated from the container's frame count."""

    done: int
    total: int
    time_s: float
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def fps(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def remaining_s(self) -> float | None:
        """Seconds still to go at the speed measured so far; ``None`` before the first frame."""
        return (self.total - self.done) / self.fps if self.fps > 0 else None


@dataclass(frozen=True)
class Change:
    """The main face's emotion changed from ``before`` to ``after`` at ``time_s``, and held."""

    time_s: float
    before: str
    after: str


@dataclass(frozen=True)
class FaceTrack:
    """One tracked face across the video: when it was seen and what it mostly showed."""

    face: int
    first_s: float
    last_s: float
    seconds: float
    dominant: str


@dataclass(frozen=True)
class Summary:
    """The video in a few numbers, for its main face: what a user asks first.

    The main face (``main``, a track id) is the one on screen longest, the same person all
    through: taking each frame's largest face instead mixed people of one size, who take turns
    at being largest from frame to frame (a still group read as "76 % happy, 24 % neutral").
    ``share`` is the part of the time it was shown that each emotion was its label;
    ``seconds_with_face`` counts frames with any face.
    """

    seconds: float
    seconds_with_face: float
    share: dict[str, float]
    dominant: str | None
    changes: tuple[Change, ...]
    tracks: tuple[FaceTrack, ...]
    main: int | None = None


@dataclass(frozen=True)
class VideoResult:
    """Everything processing found; ``cancelled`` when it was stopped before the end,
    ``damaged_after_s`` when the video could be read only that far (:class:`VideoDamaged`)."""

    info: VideoInfo
    step: int
    frames: tuple[FrameResult, ...]
    elapsed_s: float
    cancelled: bool = False
    errors: int = 0
    damaged_after_s: float | None = None

    @property
    def covered_s(self) -> float | None:
        """Seconds from the video's start that the result covers when it stops short of the end
        (damaged partway, or cancelled), else ``None``: whatever shows such a result, its summary
        above all, must say it is of that part only."""
        if self.damaged_after_s is not None:
            return self.damaged_after_s
        return len(self.frames) * self.frame_s if self.cancelled else None

    @property
    def frame_s(self) -> float:
        """Video time each processed frame stands for."""
        return self.step / float(self.info.fps)

    @property
    def fps(self) -> float:
        """Processing speed in processed frames per second of wall-clock time."""
        return len(self.frames) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self, min_steady_s: float = MIN_STEADY_S) -> Summary:
        """Shares, dominant emotion and changes of the label shown on the main face (see
        :class:`Summary`)."""
        tracks = self._tracks()
        main = tracks[0].face if tracks else None
        shown = [
            (frame.time_s, face.emotion)
            for frame in self.frames
            for face in frame.faces
            if face.track_id == main
        ]
        labels = [label for _, label in shown]
        counts = {name: labels.count(name) for name in CLASS_NAMES}
        share = {name: count / len(labels) if labels else 0.0 for name, count in counts.items()}
        return Summary(
            seconds=len(self.frames) * self.frame_s,
            seconds_with_face=sum(1 for frame in self.frames if frame.faces) * self.frame_s,
            share=share,
            dominant=max(counts, key=counts.__getitem__) if labels else None,
            changes=steady_changes([t for t, _ in shown], labels, self.frame_s, min_steady_s),
            tracks=tracks,
            main=main,
        )

    def _tracks(self) -> tuple[FaceTrack, ...]:
        seen: dict[int, list[tuple[float, str]]] = {}
        for frame in self.frames:
            for face in frame.faces:
                seen.setdefault(face.track_id, []).append((frame.time_s, face.emotion))
        tracks = [
            FaceTrack(
                face=track_id,
                first_s=points[0][0],
                last_s=points[-1][0],
                seconds=len(points) * self.frame_s,
                dominant=max(CLASS_NAMES, key=[label for _, label in points].count),
            )
            for track_id, points in seen.items()
        ]
        return tuple(sorted(tracks, key=lambda track: track.seconds, reverse=True))

    def rows(self) -> Iterator[dict[str, object]]:
        """One row per face per processed frame, and one with empty face columns for a frame
        without faces, so the CSV accounts for every processed frame."""
        for frame in self.frames:
            base = {"frame": frame.index, "time_s": round(frame.time_s, 3)}
            if not frame.faces:
                yield base
            for face in frame.faces:
                row = {**base, "face": face.track_id, "emotion": face.emotion}
                row["confidence"] = round(face.confidence, 4)
                row.update(zip("xywh", face.box.as_list(), strict=True))
                row.update(zip(CLASS_NAMES, (round(p, 4) for p in face.probabilities), strict=True))
                yield row

    def write_csv(self, out: TextIO) -> None:
        writer = csv.DictWriter(out, CSV_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(self.rows())


def steady_changes(
    times: list[float], labels: list[str], frame_s: float, min_steady_s: float = MIN_STEADY_S
) -> tuple[Change, ...]:
    """Moments where the label changed to one that then held at least ``min_steady_s``.

    Runs of one label shorter than that are dropped first, so a blink of "surprise" inside a
    long "happy" is not reported as two changes.
    """
    runs: list[tuple[str, float, float]] = []  # label, first time, last time
    for seconds, label in zip(times, labels, strict=True):
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1], seconds)
        else:
            runs.append((label, seconds, seconds))
    steady = [run for run in runs if run[2] - run[1] + frame_s >= min_steady_s]
    merged: list[tuple[str, float, float]] = []
    for run in steady:
        if merged and merged[-1][0] == run[0]:
            merged[-1] = (run[0], merged[-1][1], run[2])
        else:
            merged.append(run)
    return tuple(Change(after[1], before[0], after[0]) for before, after in itertools.pairwise(merged))


def process_video(
    source: VideoSource,
    pipeline: Pipeline,
    output: str | Path | None = None,
    *,
    step: int = 1,
    settings: LiveSettings = VIDEO_SETTINGS,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> VideoResult:
    """Run every ``step``-th frame through a fresh :class:`LiveProcessor`; write them to ``output``.

    ``progress`` is called after every processed frame; ``should_stop`` is asked before each one,
    and when it says yes the result so far comes back with ``cancelled`` set (the MP4 is then
    complete and plays, only shorter). A video that breaks partway raises :class:`VideoDamaged`
    holding the result so far, with the MP4 of those frames in place; one that breaks before
    its first frame raises :class:`VideoError` and leaves no file. An exception raised inside
    ``progress`` (Streamlit stops a script that way) propagates, and no output file is left
    (:func:`mp4_writer`). Each face is drawn and reported from the first frame it was detected in
    (:class:`Backfill`), and each person is one track (:func:`rejoin_tracks`).
    """
    if step < 1:
        raise ValueError("step must be at least 1")
    settings = replace(settings, mirror=False)  # a file is the right way round; back-fill needs it so
    info = probe(source)
    if not isinstance(source, (str, Path)):
        source.seek(0)
    size = info.processing_size()
    processor = LiveProcessor(pipeline, settings)
    backfill = Backfill(pipeline, settings.overlay, depth=settings.min_hits - 1)
    total = math.ceil(info.frames / step)
    frames: list[FrameResult] = []
    errors, cancelled, started = 0, False, time.perf_counter()
    damage: CutShort | None = None
    with mp4_writer(output, size, info.fps / step) as write:
        try:
            for index, seconds, rgb in _decode(source, size, step):
                if should_stop is not None and should_stop():
                    cancelled = True
                    break
                annotated, snapshot = processor.process(rgb, timestamp=seconds)
                errors += snapshot.error is not None
                result = FrameResult(index, seconds, snapshot.faces, snapshot.error)
                for drawn, finished in backfill.add(rgb, annotated, result):
                    write(drawn)
                    frames.append(finished)
                if progress is not None:
                    done = len(frames) + backfill.held
                    progress(Progress(done, max(total, done), seconds, time.perf_counter() - started))
        except CutShort as err:
            if not frames and not backfill.held:
                raise  # nothing done to keep
            damage = err
        for drawn, finished in backfill.flush():
            write(drawn)
            frames.append(finished)
    elapsed = time.perf_counter() - started
    damaged_after_s = None if damage is None else damage.seconds
    result = VideoResult(info, step, rejoin_tracks(frames), elapsed, cancelled, errors, damaged_after_s)
    record_speed(result)
    if damage is not None:
        raise VideoDamaged(str(damage), result) from damage
    return result


class Backfill:
    """Holds back the last ``depth`` processed frames, to draw a newly confirmed face on them too.

    The tracker shows a face only after ``min_hits`` detections in a row, one per frame while it
    is tentative: the ``min_hits - 1`` frames before the one that confirms it already had the
    face. Holding them back until then costs a frame or two of memory and no processing; the
    first frames of a video then carry the emoji, and so do the results for them.
    """

    def __init__(self, pipeline: Pipeline, overlay: OverlayOptions, depth: int) -> None:
        self.pipeline = pipeline
        self.overlay = overlay
        self.depth = depth
        self._held: deque[tuple[np.ndarray, np.ndarray, FrameResult]] = deque()  # raw, drawn, result
        self._shown: set[int] = set()

    @property
    def held(self) -> int:
        """Frames processed but not yet handed out."""
        return len(self._held)

    def add(
        self, raw: np.ndarray, annotated: np.ndarray, result: FrameResult
    ) -> Iterator[tuple[np.ndarray, FrameResult]]:
        """Take one processed frame; yield the frames that can no longer change, oldest first."""
        new = [face for face in result.faces if face.track_id not in self._shown]
        self._shown.update(face.track_id for face in new)
        if new:
            self._held = deque(self._with_faces(held, new) for held in self._held)
        self._held.append((raw, annotated, result))
        while len(self._held) > self.depth:
            _, drawn, done = self._held.popleft()
            yield drawn, done

    def flush(self) -> Iterator[tuple[np.ndarray, FrameResult]]:
        """The frames still held, at the end of the video."""
        while self._held:
            _, drawn, done = self._held.popleft()
            yield drawn, done

    def _with_faces(
        self, held: tuple[np.ndarray, np.ndarray, FrameResult], new: list[SmoothedFace]
    ) -> tuple[np.ndarray, np.ndarray, FrameResult]:
        raw, _, result = held
        if result.error is not None:  # written as it came, as the processor left it
            return held
        faces = tuple(sorted((*result.faces, *new), key=lambda face: face.box.area, reverse=True))
        return raw, self.pipeline.annotate(raw, faces, self.overlay), replace(result, faces=faces)


@dataclass
class _Span:
    """Where and when one track was shown: its first and last frame's time and box."""

    first_s: float
    last_s: float
    first_box: Box
    last_box: Box


def rejoin_tracks(
    frames: Sequence[FrameResult], gap_s: float = REJOIN_GAP_S, overlap_s: float = REJOIN_OVERLAP_S
) -> tuple[FrameResult, ...]:
    """The frames with each person under one track number, numbered 1, 2, … as they appear.

    The live tracker ends a track when its face is missed a few detection passes in a row (hands
    over the face) and starts a new one when it reappears. Here a track that starts at most
    ``gap_s`` after another ended (or overlaps its end by at most ``overlap_s``), less than a
    face's width from where that one was last shown, continues it. Where both are shown in one
    frame, the newer (fresh) box is kept and the older (held) one dropped.
    """
    spans: dict[int, _Span] = {}
    for frame in frames:
        for face in frame.faces:
            span = spans.get(face.track_id)
            if span is None:
                spans[face.track_id] = _Span(frame.time_s, frame.time_s, face.box, face.box)
            else:
                span.last_s, span.last_box = frame.time_s, face.box
    person: dict[int, int] = {}  # track id -> the first track id of its person
    ends: dict[int, _Span] = {}  # person -> the span of its latest track
    for track_id, span in spans.items():  # in order of first appearance
        before = _continued(span, ends, gap_s, overlap_s)
        person[track_id] = track_id if before is None else before
        latest = ends.get(person[track_id])
        ends[person[track_id]] = span if latest is None or span.last_s >= latest.last_s else latest
    number = {first: n for n, first in enumerate(dict.fromkeys(person.values()), start=1)}
    return tuple(_renumbered(frame, person, number) for frame in frames)


def _continued(span: _Span, ends: dict[int, _Span], gap_s: float, overlap_s: float) -> int | None:
    """The person whose latest track ``span`` continues, if any (the nearest one)."""
    candidates = []
    for first, end in ends.items():
        gap = span.first_s - end.last_s
        moved = math.dist(span.first_box.center, end.last_box.center)
        if -overlap_s <= gap <= gap_s and end.first_s < span.first_s and moved < end.last_box.w:
            candidates.append((moved, first))
    return min(candidates)[1] if candidates else None


def _renumbered(frame: FrameResult, person: dict[int, int], number: dict[int, int]) -> FrameResult:
    """``frame`` with person numbers for track ids; of two tracks of one person, the newer."""
    kept: dict[int, SmoothedFace] = {}
    for face in sorted(frame.faces, key=lambda face: face.track_id):  # newer tracks have larger ids
        kept[number[person[face.track_id]]] = replace(face, track_id=number[person[face.track_id]])
    faces = tuple(sorted(kept.values(), key=lambda face: face.box.area, reverse=True))
    return frame if faces == frame.faces else replace(frame, faces=faces)


def video_frame(rgb: np.ndarray) -> av.VideoFrame:
    """``rgb`` as the yuv420p frame that video encoders (H.264 here, VP8 for WebRTC) take.

    Handed RGB, PyAV converts with swscale: ~4 ms for a 640×480 frame on this CPU, against
    ~0.6 ms for OpenCV's vectorised conversion (same BT.601 colours), a tenth of the Live
    page's server work per frame. Odd sizes, which 4:2:0 cannot halve, take the slow way.
    """
    height, width = rgb.shape[:2]
    if height % 2 or width % 2:
        return av.VideoFrame.from_ndarray(rgb, format="rgb24")
    return av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")


@contextlib.contextmanager
def mp4_writer(
    target: str | Path | None, size: tuple[int, int], rate: Fraction
) -> Iterator[Callable[[np.ndarray], None]]:
    """A function that appends an RGB frame to an H.264 MP4 at ``target`` (no-op for ``None``).

    Frames get consecutive timestamps at ``rate``. The file is written beside ``target`` under a
    temporary name and renamed to it when the ``with`` block ends normally, flushed and playable
    (with no frame written there is no video, and no file); an exception removes it instead.
    ``target`` never holds half a video, and an earlier file there stays until a whole new one
    replaces it.
    """
    if target is None:
        yield lambda rgb: None
        return
    target = Path(target)
    partial = partial_path(target)
    try:
        with av.open(str(partial), mode="w", format="mp4", options=MP4_OPTIONS) as container:
            stream = container.add_stream("libx264", rate=rate, options=X264_OPTIONS)
            stream.width, stream.height = size
            stream.pix_fmt = "yuv420p"

            written = 0

            def write(rgb: np.ndarray) -> None:
                nonlocal written
                container.mux(stream.encode(video_frame(rgb)))
                written += 1

            yield write
            container.mux(stream.encode(None))
        if written:  # no frame, no file (a Cancel before the first): the container wrote none
            partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def partial_path(target: Path) -> Path:
    """A hidden name beside ``target`` to write to before renaming: same folder (so the rename is
    atomic), unique (two runs never share one), and made with the user's usual permissions."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")


def _size(source: VideoSource) -> int | None:
    """Bytes in ``source``, or ``None`` when it can't be told (missing file: ``av.open`` says so)."""
    if isinstance(source, (str, Path)):
        try:
            return Path(source).stat().st_size
        except OSError:
            return None
    position = source.seek(0, 2)
    source.seek(0)
    return position


def _info(container: av.container.InputContainer) -> VideoInfo:
    """The stream's numbers; its first frame is decoded, for its rotation and to know it decodes."""
    stream = container.streams.video[0]
    fps = Fraction(stream.average_rate or stream.guessed_rate or 30)
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    else:
        duration = (container.duration or 0) / av.time_base
    try:
        first = next(container.decode(stream), None)
    except av.FFmpegError as err:
        raise logged(VideoError("the video stream can't be decoded"), err) from err
    if first is None:
        raise VideoError("the video has no frames")
    width, height = (first.height, first.width) if abs(first.rotation) == 90 else (first.width, first.height)
    return VideoInfo(width, height, fps, duration, stream.frames or max(1, round(duration * fps)))


def _decode(
    source: VideoSource,
    size: tuple[int, int] | None,
    step: int,
    start_s: float = 0,
    end_s: float | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(frame index, seconds, upright RGB)`` for every ``step``-th frame in the time window."""
    with open_video(source) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        first: float | None = None
        seconds = 0.0
        frames = enumerate(container.decode(stream))
        while True:
            try:
                index, frame = next(frames)
            except StopIteration:
                return
            except av.FFmpegError as err:  # up to the end of the last frame read, if any
                read_s = 0.0 if first is None else seconds + 1 / fps
                raise logged(CutShort(read_s), err) from err
            seconds = frame.time if frame.time is not None else index / fps
            first = seconds if first is None else first
            seconds -= first
            if end_s is not None and seconds >= end_s:
                return
            if seconds >= start_s and index % step == 0:
                yield index, seconds, _upright_rgb(frame, size)


def _upright_rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """The frame as RGB, scaled to ``size`` as displayed and turned as its rotation says."""
    turns = round(frame.rotation / 90) % 4
    if size is not None and turns % 2:
        size = (size[1], size[0])  # scale before turning: the decoded frame lies on its side
    width, height = size or (frame.width, frame.height)
    rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


# --- command line ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app.video", description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path, help=f"a video file ({READABLE_FORMATS})")
    parser.add_argument("--out", type=Path, help="write the annotated video here (H.264 MP4)")
    parser.add_argument("--csv", type=Path, help="write the per-frame results here")
    parser.add_argument("--step", type=int, default=1, help="process every N-th frame (default 1: all)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH, help="a .keras emotion model")
    parser.add_argument(
        "--smoothing", type=float, default=VIDEO_SETTINGS.smoothing, help="0 (raw) to 1 (steadiest)"
    )
    args = parser.parse_args(argv)
    if args.step < 1:
        parser.error("--step must be at least 1")
    if not 0.0 <= args.smoothing <= 1.0:
        parser.error("--smoothing must be between 0 and 1")
    for option, path in (("--out", args.out), ("--csv", args.csv)):
        if path is not None and not path.parent.is_dir():
            parser.error(f"{option}: the folder {path.parent} does not exist")
    return args


def progress_bar(width: int = 30, every_s: float = 0.25) -> Callable[[Progress], None]:
    """A text progress bar on stderr, redrawn in place at most every ``every_s`` seconds."""
    shown = {"at": -math.inf}

    def show(progress: Progress) -> None:
        now = time.monotonic()
        if now - shown["at"] < every_s and progress.done < progress.total:
            return
        shown["at"] = now
        filled = round(progress.fraction * width)
        bar = "#" * filled + "." * (width - filled)
        end = "\n" if progress.done >= progress.total else ""
        counts = f"{progress.done}/{progress.total} frames  {progress.fps:5.1f} frames/s"
        left = progress.remaining_s
        eta = f"  ~{left:.0f} s left " if left is not None and progress.done < progress.total else ""
        print(f"\r[{bar}] {progress.fraction:4.0%}  {counts}{eta}", end=end, file=sys.stderr, flush=True)

    return show


def report(result: VideoResult) -> str:
    """The summary as the CLI prints it."""
    summary = result.summary()
    info = result.info
    lines = [
        f"{len(result.frames)} frames processed (every {result.step}) of {info.width}×{info.height} "
        f"at {float(info.fps):.2f} fps in {result.elapsed_s:.1f} s: {result.fps:.1f} frames/s",
        f"face shown {summary.seconds_with_face:.1f} s of {summary.seconds:.1f} s; "
        f"dominant emotion: {summary.dominant or 'none (no face found)'}",
    ]
    if len(summary.tracks) > 1:
        lines.append(f"of face {summary.main}, on screen longest ({summary.tracks[0].seconds:.1f} s)")
    if summary.dominant:
        shares = sorted(summary.share.items(), key=lambda item: item[1], reverse=True)
        lines.append("share of time: " + ", ".join(f"{name} {share:.0%}" for name, share in shares if share))
    lines += [f"  {c.time_s:6.2f} s  {c.before} → {c.after}" for c in summary.changes]
    if result.errors:
        lines.append(f"warning: {result.errors} frame(s) failed and were written unprocessed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from app.classifier import EmotionClassifier, ModelError
    from app.detection import FaceDetector

    try:
        info = probe(args.video)
    except VideoError as err:
        print(f"error: {args.video.name}: {err}", file=sys.stderr)
        return 1
    try:
        pipeline = Pipeline(FaceDetector(), EmotionClassifier.load(args.model))
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    fastest, slowest = expected_seconds(info, args.step)
    print(
        f"{args.video}: {info.width}×{info.height}, {float(info.fps):.2f} fps, {info.duration_s:.1f} s; "
        f"{math.ceil(info.frames / args.step)} frames to process, about {fastest}–{slowest} s"
    )
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: keep what was done
    damage: VideoDamaged | None = None
    try:
        settings = replace(VIDEO_SETTINGS, smoothing=args.smoothing)
        result = process_video(
            args.video,
            pipeline,
            args.out,
            step=args.step,
            settings=settings,
            progress=progress_bar(),
            should_stop=stop.is_set,
        )
    except VideoDamaged as err:
        damage, result = err, err.result
        print(
            f"\nerror: {args.video.name}: {err}; what came before it was processed and kept", file=sys.stderr
        )
    except VideoError as err:
        print(f"\nerror: {args.video.name}: {err}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
    if args.csv:
        write_csv_file(result, args.csv)
    print(("\ncancelled: " if result.cancelled else "") + report(result))
    for path in filter(None, (args.out, args.csv)):
        print(f"wrote {path}" + (f" (the {len(result.frames)} frames before the damage)" if damage else ""))
    return 1 if damage is not None else 130 if result.cancelled else 0


def write_csv_file(result: VideoResult, path: Path) -> None:
    """The per-frame CSV, written under a temporary name and renamed: never half a table at ``path``."""
    partial = partial_path(path)
    try:
        with partial.open("x", newline="") as out:
            result.write_csv(out)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
