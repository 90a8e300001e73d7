"""The live path: webcam frames → tracked, smoothed faces → annotated frames, at camera speed.

A photo can afford a fresh look at every face; a video stream cannot, and should not: a raw
per-frame verdict flickers between two close emotions and the emoji jitters with the detector's
boxes. So the live path keeps a small IoU tracker whose tracks carry an exponential moving average
(EMA) of the model's probabilities and of the box, both with a *half-life in seconds* — frames
arrive irregularly when slow ones are dropped, and a time constant keeps "a real change shows
within ~0.3 s" true at any frame rate. The Haar cascade runs only every few frames while the
tracker holds the faces, and then only around them (:meth:`app.detection.FaceDetector.detect_near`,
~5× cheaper); the whole frame, downscaled, is searched for new faces about once a second, for a
live stream on a thread of its own (:class:`BackgroundScan`) so no frame waits for it. The
tracked boxes are classified in one batched call (:meth:`app.pipeline.Pipeline.classify`).

Nothing here imports Streamlit: the Live page wraps :class:`LiveProcessor` in a WebRTC frame
callback and hands results to its own thread through :class:`LiveResults`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from app.calibration import LiveCalibrator
from app.detection import Box, DetectorSettings, FaceDetector
from app.emotions import CLASS_NAMES
from app.images import to_gray
from app.overlay import draw_verdict_code
from app.pipeline import Face, OverlayOptions, Pipeline

LOGGER = logging.getLogger(__name__)

#: Side of the Haar cascade's search window (haarcascade_frontalface_default.xml is 24×24):
#: the smallest face it can find in the image it is given.
HAAR_WINDOW = 24
#: Probability half-life at full smoothing strength: a clear change of expression then shows
#: ~0.3 s later (~0.2 s at the default strength).
MAX_PROBABILITY_HALF_LIFE_S = 0.2
#: How far another emotion must lead the shown one (in smoothed probability, at full strength)
#: before the label switches. Averaging alone still flips a near tie back and forth; this
#: hysteresis stops that (simulated: 76 label changes in 20 s of a noisy tie → 0 to 1).
MAX_SWITCH_MARGIN = 0.08
#: Box half-life at full smoothing strength; shorter, so the emoji follows a moving head.
MAX_BOX_HALF_LIFE_S = 0.08
#: How many times an error is logged with its traceback before the log is spared the rest.
LOGGED_ERRORS = 5
#: With held verdicts, the longest a verdict is drawn before the processor takes a new one itself:
#: the page takes one every half second while it shows the panel; a page that stopped asking (a
#: hidden tab, a busy browser) must not freeze the emojis.
MAX_VERDICT_HOLD_S = 1.5
#: How much later a frame reaches the user's screen than the panel's redraw does, counted from the
#: moment the frame callback finished drawing it: the VP8 encoder, the network, the browser's jitter
#: buffer and decoder, less the panel's own way (the websocket and React). Fixed, and measured
#: (benchmarks.live_verdict_lag, 2-core Xeon, browser and server on one computer): a verdict shown
#: in the panel as it was taken reached the video 99-135 ms (median) after the panel, the wait for
#: the next frame and its processing included; waiting for that frame and then 0.1 s, the panel
#: changed within 4 ms of the video (median, load 1.3-3.5), from 5 ms before it to 26 ms after it
#: at load 6-7 (the panel showed a newer verdict than the frame on at most 1.3 % of frames). Neither
#: aiortc nor streamlit-webrtc tells the server when the browser shows a frame, and RTCP's round
#: trip (~1 ms on one computer) misses the jitter buffer, the largest part. A browser on another
#: computer gets the panel and the video over the same network, so its delay mostly cancels; a TURN
#: relay's detour delays the video alone, and the panel then leads by that.
SCREEN_DELAY_S = 0.1
#: The longest the panel waits for the first frame to draw a verdict it took: a stream that is
#: slow or has stopped must not hold up the panel's redraw; the panel then shows the verdict still
#: on the frames.
FIRST_DRAWN_WAIT_S = 0.2
#: How many verdict changes the processor remembers (the panel needs the last few hundred ms).
DRAWN_KEPT = 16

Clock = Callable[[], float]


@dataclass(frozen=True)
class LiveSettings:
    """Everything the user can change while streaming; immutable, so it crosses threads safely.

    ``min_face`` is the smallest face to look for, as a fraction of the frame's shorter side, so
    it means the same at any camera resolution. ``smoothing`` runs from 0 (raw per-frame
    verdicts) to 1 (steadiest). ``detect_every`` is how often the cascade runs while every
    tracked face is confirmed, and then only near them; ``rescan_every_s`` is how often the whole
    frame is searched for new faces meanwhile; ``classify_every_s`` is how long a face's verdict
    is kept before the model looks at it again (ten looks a second still show a real change
    within a third of a second, and the hysteresis keeps the label steady; the shipped model makes
    four passes per look, ~9 ms on two cores, and every stream pays them, so each look fewer
    leaves the CPU to the video);
    ``max_missed`` is how many detection passes a face may be missed (turned away, a hand in
    front) before its track ends; ``min_hits`` is how many detections a
    new track needs before it is shown, which hides the cascade's one-frame false positives.
    ``verdict_code`` draws the main face's verdict as a machine-readable code in the frame's
    corner (:func:`app.overlay.draw_verdict_code`), so the browser tests can read what the video
    shows; users never see it.
    """

    min_face: float = 0.12
    min_neighbors: int = DetectorSettings.min_neighbors
    scale_factor: float = DetectorSettings.scale_factor
    overlay: OverlayOptions = field(default_factory=OverlayOptions)
    mirror: bool = True
    smoothing: float = 0.6
    detect_every: int = 3
    rescan_every_s: float = 1.0
    classify_every_s: float = 0.1
    max_missed: int = 2
    min_hits: int = 2
    iou_threshold: float = 0.3
    verdict_code: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing <= 1.0:
            raise ValueError("smoothing must be between 0 and 1")
        if not 0.0 < self.min_face <= 1.0:
            raise ValueError("min_face is a fraction of the frame: more than 0, at most 1")
        if self.detect_every < 1 or self.max_missed < 0 or self.min_hits < 1:
            raise ValueError("detect_every ≥ 1, max_missed ≥ 0 and min_hits ≥ 1 are required")
        if self.classify_every_s < 0 or self.rescan_every_s < 0:
            raise ValueError("classify_every_s and rescan_every_s must be ≥ 0")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError("iou_threshold must be in (0, 1]")

    @property
    def probability_half_life(self) -> float:
        return self.smoothing * MAX_PROBABILITY_HALF_LIFE_S

    @property
    def switch_margin(self) -> float:
        return self.smoothing * MAX_SWITCH_MARGIN

    @property
    def box_half_life(self) -> float:
        return self.smoothing * MAX_BOX_HALF_LIFE_S

    def detector_settings(self, height: int, width: int) -> DetectorSettings:
        """The cascade's settings for a frame of this size.

        The frame is shrunk until the smallest wanted face just fills the cascade's window:
        no wanted face is lost to shrinking, and none of the cost goes on smaller ones. A 640×480
        webcam frame with the default ``min_face`` is searched at 265×199, ~6× cheaper than at
        full size; a smaller ``min_face`` costs more. There is no second look (photos get one):
        a face the cascade misses for a frame is held by its track.
        """
        long_side = max(height, width)
        min_size = max(1, round(self.min_face * min(height, width)))
        side = max(64, min(long_side, round(long_side * HAAR_WINDOW / min_size)))
        return DetectorSettings(self.scale_factor, self.min_neighbors, min_size, side, look_again=False)


def ema(old: np.ndarray, new: np.ndarray, elapsed: float, half_life: float) -> np.ndarray:
    """Blend ``new`` into ``old`` so that ``old`` counts half after ``half_life`` seconds."""
    if half_life <= 0.0 or elapsed < 0.0:
        return new.copy()
    keep = 0.5 ** (elapsed / half_life)
    return keep * old + (1.0 - keep) * new


@dataclass(frozen=True)
class SmoothedFace(Face):
    """A tracked face: smoothed box and probabilities, and a label that is held steady.

    ``label`` is usually the most likely emotion, but in a near tie it stays what it was until
    another emotion leads clearly, so drawing code that reads ``emotion`` shows it steadily.
    """

    track_id: int = 0
    label: str = ""

    @property
    def emotion(self) -> str:
        return self.label or super().emotion

    @property
    def confidence(self) -> float:
        return self.probabilities[CLASS_NAMES.index(self.emotion)]

    @property
    def leader(self) -> str:
        """The most likely emotion now, which ``emotion`` follows once it leads clearly."""
        return super().emotion

    @property
    def held(self) -> bool:
        """Whether the shown emotion is being held although another one leads (by too little)."""
        return self.emotion != self.leader


@dataclass
class Track:
    """One face followed across frames (mutable, owned by one :class:`FaceTracker`)."""

    track_id: int
    box: Box  # the last detected box: where the face is cropped for the classifier
    smooth_box: np.ndarray  # x, y, w, h as floats: where the emoji is drawn
    seen_at: float
    hits: int = 1
    missed: int = 0
    probabilities: np.ndarray | None = None
    label: int = -1  # index of the shown emotion; -1 before the first classification
    classified_at: float = 0.0

    def shown_box(self) -> Box:
        x, y, w, h = self.smooth_box
        return Box(round(x), round(y), max(1, round(w)), max(1, round(h)))


def match_boxes(old: Sequence[Box], new: Sequence[Box], threshold: float) -> list[tuple[int, int]]:
    """Greedy IoU matching: pairs ``(old index, new index)``, best overlaps first.

    Greedy is optimal enough for the handful of faces in a webcam frame, and needs no solver.
    """
    pairs = sorted(
        ((a.iou(b), i, j) for i, a in enumerate(old) for j, b in enumerate(new)),
        reverse=True,
    )
    used_old: set[int] = set()
    used_new: set[int] = set()
    matches = []
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i not in used_old and j not in used_new:
            used_old.add(i)
            used_new.add(j)
            matches.append((i, j))
    return matches


class FaceTracker:
    """IoU tracks with EMA-smoothed boxes and probabilities; not thread-safe (one per stream)."""

    def __init__(self) -> None:
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks = []

    def all_confirmed(self, min_hits: int) -> bool:
        """Whether there are tracks and all are established, so detection may skip frames."""
        return bool(self.tracks) and all(track.hits >= min_hits for track in self.tracks)

    def update(self, boxes: Sequence[Box], now: float, settings: LiveSettings) -> None:
        """Feed one detection pass: match boxes to tracks, start new ones, end lost ones."""
        matches = match_boxes([t.box for t in self.tracks], boxes, settings.iou_threshold)
        matched_tracks = {i for i, _ in matches}
        for i, j in matches:
            track, box = self.tracks[i], boxes[j]
            elapsed = now - track.seen_at
            track.smooth_box = ema(track.smooth_box, _as_vector(box), elapsed, settings.box_half_life)
            track.box, track.seen_at = box, now
            track.hits += 1
            track.missed = 0
        survivors = []
        for index, track in enumerate(self.tracks):
            if index not in matched_tracks:
                track.missed += 1
                # A tentative track missed once was most likely a false detection.
                if track.missed > settings.max_missed or track.hits < settings.min_hits:
                    continue
            survivors.append(track)
        matched_boxes = {j for _, j in matches}
        for j, box in enumerate(boxes):
            if j not in matched_boxes:
                survivors.append(Track(self._next_id, box, _as_vector(box), now))
                self._next_id += 1
        self.tracks = survivors

    def in_view(self) -> list[Track]:
        """Tracks found by the latest detection pass: the ones worth classifying now."""
        return [track for track in self.tracks if track.missed == 0]

    def due(self, now: float, every_s: float) -> list[Track]:
        """Tracks in view that have no verdict yet, or one older than ``every_s`` seconds."""
        return [
            track
            for track in self.in_view()
            if track.probabilities is None or now - track.classified_at >= every_s
        ]

    def observe(
        self, track: Track, probabilities: Sequence[float], now: float, settings: LiveSettings
    ) -> None:
        """Blend a fresh classification into a track; switch its label only on a clear lead."""
        fresh = np.asarray(probabilities, dtype=np.float64)
        if track.probabilities is None:
            track.probabilities = fresh
        else:
            elapsed = now - track.classified_at
            track.probabilities = ema(track.probabilities, fresh, elapsed, settings.probability_half_life)
        track.classified_at = now
        top = int(np.argmax(track.probabilities))
        lead = track.probabilities[top] - track.probabilities[track.label]
        if track.label < 0 or lead > settings.switch_margin:
            track.label = top

    def shown(self, settings: LiveSettings) -> list[SmoothedFace]:
        """Confirmed, classified tracks as faces to draw and report, largest first."""
        faces = [
            SmoothedFace(
                track.shown_box(), _normalised(probabilities), track.track_id, CLASS_NAMES[track.label]
            )
            for track in self.tracks
            if (probabilities := track.probabilities) is not None and track.hits >= settings.min_hits
        ]
        return sorted(faces, key=lambda face: face.box.area, reverse=True)


@dataclass(frozen=True)
class Snapshot:
    """What one processed frame tells the page: faces (largest first), timing, any error."""

    faces: tuple[SmoothedFace, ...]
    latency_s: float
    timestamp: float
    detected: bool = False
    error: str | None = None

    @property
    def main_face(self) -> SmoothedFace | None:
        """The largest face: the one the side panel describes."""
        return self.faces[0] if self.faces else None


@dataclass(frozen=True)
class Verdict:
    """The faces' emotions as the video draws them and the panel shows them: one moment's.

    ``number`` counts the verdicts a processor has taken (0: none yet), so the page and the tests
    can tell one verdict from the next. The faces' boxes are where they were when it was taken; the
    video keeps drawing each face where it is now, with this verdict's emotion and confidence.
    """

    number: int = 0
    faces: tuple[SmoothedFace, ...] = ()

    @property
    def main_face(self) -> SmoothedFace | None:
        """The largest face: the one the side panel describes."""
        return self.faces[0] if self.faces else None


class BackgroundScan:
    """Whole-frame face searches on a thread of their own, one at a time.

    The once-a-second search for new faces costs 20–40 ms on two cores, several frames' worth
    of the live budget; run on the frame thread it sets the stream's p95 latency and makes that
    frame late. OpenCV releases the GIL while it searches, so on this thread it overlaps the
    next frames and its boxes join the tracker a frame or two later, which a face that just
    came into view cannot tell. Replays stay synchronous: their result must not depend on timing.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="face-scan")
        self._pending: Future[list[Box]] | None = None

    @property
    def busy(self) -> bool:
        """Whether a search is still running (a new one then waits for the next interval)."""
        return self._pending is not None and not self._pending.done()

    def start(self, detector: FaceDetector, gray: np.ndarray, settings: DetectorSettings) -> None:
        """Search ``gray`` (which the caller no longer changes) unless a search is running."""
        if not self.busy:
            self._pending = self._executor.submit(detector.detect, gray, settings)

    def take(self) -> list[Box]:
        """The finished search's boxes, once; nothing while none has finished. Its error is raised."""
        if self._pending is None or not self._pending.done():
            return []
        pending, self._pending = self._pending, None
        return pending.result()

    def discard(self) -> None:
        """Drop the running or finished search: its frame belongs to a stream that has ended."""
        self._pending = None


class LiveProcessor:
    """One stream's frame processor: ``process(rgb) -> (annotated, snapshot)``, never raises.

    The pipeline (model, cascade) is shared by every stream; the tracker state is this stream's
    own. A lock makes ``reset`` from another thread (the page, on stop) safe against ``process``.
    ``background_scan`` moves the periodic whole-frame search off the frame thread (the Live
    page); without it (replays, tests) every frame's result depends on the frames alone.

    ``hold_verdicts`` (the Live page) draws each face's emotion and confidence from one
    :class:`Verdict` at a time, the one the page's panel took last with :meth:`take_verdict`,
    instead of from each frame's newest numbers: the panel refreshes twice a second, the numbers
    ten times, so the label on the video and the panel used to disagree. The tracker keeps
    smoothing every frame meanwhile; the boxes still follow the faces on every frame, and a face
    the verdict does not know yet (it came into view since) is drawn from the next verdict on, as
    the panel then describes it.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        settings: LiveSettings | None = None,
        clock: Clock = time.monotonic,
        *,
        background_scan: bool = False,
        hold_verdicts: bool = False,
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings or LiveSettings()
        self.clock = clock
        self.tracker = FaceTracker()
        self.errors = 0
        self._lock = threading.Lock()
        self._frames_since_detection = 0
        self._scanned_at = self._looked_again_at = -math.inf
        self._layout: tuple | None = None
        self._background = BackgroundScan() if background_scan else None
        self.calibrator = LiveCalibrator()  # this stream's face calibration (app.calibration)
        self._hold_verdicts = hold_verdicts
        self._verdict = Verdict()
        self._verdict_at = -math.inf
        # (when the first frame drawing it was finished, verdict), oldest first: what the video shows when
        self._drawn_log: deque[tuple[float, Verdict]] = deque(maxlen=DRAWN_KEPT)
        self._frame_drawn = threading.Condition(self._lock)

    def reset(self) -> None:
        """Forget every face, as for a new stream."""
        with self._lock:
            self.tracker.reset()
            self._frames_since_detection = 0
            self._scanned_at = self._looked_again_at = -math.inf
            self._layout = None
            self.calibrator.unbind()
            # Numbers go on counting: a frame of the old stream still on its way is never taken
            # for one of the new stream's.
            self._verdict, self._verdict_at = Verdict(self._verdict.number), -math.inf
            self._drawn_log.clear()
            if self._background is not None:
                self._background.discard()

    def take_verdict(self) -> Verdict:
        """A new verdict from the tracked faces now; the frames processed from now on draw it.

        The page calls this when it redraws the panel, then shows :meth:`on_screen`'s verdict,
        which becomes this one once the video shows it.
        """
        with self._lock:
            return self._next_verdict(self.tracker.shown(self.settings), self.clock())

    def on_screen(
        self, taken: Verdict, delay_s: float = SCREEN_DELAY_S, wait_s: float = FIRST_DRAWN_WAIT_S
    ) -> Verdict:
        """The verdict on the frames the user sees once the caller's redraw arrives, ``taken`` if it can.

        Waits (at most ``wait_s``) for the first frame drawn with ``taken``, then ``delay_s`` more,
        the time such a frame needs to reach the screen beyond the panel's own redraw
        (:data:`SCREEN_DELAY_S`); then returns the newest verdict drawn at least ``delay_s`` ago.
        Shown at once, a taken verdict reached the panel 99-135 ms (median) before the video, and
        while she went from sad to happy 2-3 % of the frames presented showed another emotion than
        the panel. A stream that draws no frame in time keeps the panel on the verdict its frames
        still carry.
        """
        with self._frame_drawn:
            self._frame_drawn.wait_for(lambda: self._first_drawn(taken.number) is not None, wait_s)
            drawn_at = self._first_drawn(taken.number)
        if drawn_at is not None:
            time.sleep(max(0.0, drawn_at + delay_s - self.clock()))
        return self.drawn_before(self.clock() - delay_s)

    def drawn_before(self, moment: float) -> Verdict:
        """The newest verdict whose first frame was drawn by ``moment``: the one on screen then.

        Before any, the oldest one drawn (the video shows it in a moment), or the current verdict.
        """
        with self._lock:
            seen = [verdict for drawn_at, verdict in self._drawn_log if drawn_at <= moment]
            if seen:
                return seen[-1]
            return self._drawn_log[0][1] if self._drawn_log else self._verdict

    def _first_drawn(self, number: int) -> float | None:
        return next((drawn_at for drawn_at, verdict in self._drawn_log if verdict.number == number), None)

    def _next_verdict(self, faces: Sequence[SmoothedFace], now: float) -> Verdict:
        self._verdict = Verdict(self._verdict.number + 1, tuple(faces))
        self._verdict_at = now
        return self._verdict

    def _drawn(self, faces: list[SmoothedFace], now: float) -> list[SmoothedFace]:
        """The held verdict's faces, each where it is now if still tracked, else where it was.

        Exactly the verdict's faces are drawn, so the video never shows a face the panel does not
        describe, or misses one it does: a face that came into view waits for the next verdict, and
        one whose track ended keeps its emoji where it was seen last until then.
        """
        if now - self._verdict_at > MAX_VERDICT_HOLD_S:
            self._next_verdict(faces, now)
        current = {face.track_id: face for face in faces}
        return [
            replace(current[held.track_id], probabilities=held.probabilities, label=held.label)
            if held.track_id in current
            else held
            for held in self._verdict.faces
        ]

    def process(
        self, frame: np.ndarray, settings: LiveSettings | None = None, timestamp: float | None = None
    ) -> tuple[np.ndarray, Snapshot]:
        """Annotate one frame; on any error return the frame as it came and say why.

        ``timestamp`` (seconds) is when the frame was taken: replays pass their video time, the
        live stream leaves it to the clock. The smoothing is measured in this time.
        """
        settings = settings or self.settings
        started = self.clock()
        now = started if timestamp is None else timestamp
        with self._lock:
            try:
                annotated, faces, detected = self._process(frame, settings, now, started)
                if self._hold_verdicts:
                    self._note_drawn()
            except Exception as err:  # one bad frame must never end the stream
                self.errors += 1
                if self.errors <= LOGGED_ERRORS:
                    LOGGER.exception("live frame failed (%d so far); showing it unprocessed", self.errors)
                message = f"{type(err).__name__}: {err}"
                return frame, Snapshot((), self.clock() - started, now, error=message)
        return annotated, Snapshot(tuple(faces), self.clock() - started, now, detected)

    def _note_drawn(self) -> None:
        """Remember when the held verdict's first frame was finished, and wake :meth:`on_screen`."""
        if not self._drawn_log or self._drawn_log[-1][1].number != self._verdict.number:
            self._drawn_log.append((self.clock(), self._verdict))
            self._frame_drawn.notify_all()

    def _process(
        self, frame: np.ndarray, settings: LiveSettings, now: float, started: float
    ) -> tuple[np.ndarray, list[SmoothedFace], bool]:
        rgb = as_rgb(frame)
        if settings.mirror:
            rgb = cv2.flip(rgb, 1)  # a copy like [:, ::-1] would be, but 30× faster
        layout = (rgb.shape, settings.mirror)
        if layout != self._layout:  # new resolution or flipped view: old boxes mean nothing
            self.tracker.reset()
            self._layout = layout
            if self._background is not None:
                self._background.discard()
        gray = to_gray(rgb)
        detection_due = self._frames_since_detection + 1 >= settings.detect_every
        detect = detection_due or not self.tracker.all_confirmed(settings.min_hits)
        if detect:
            self.tracker.update(self._detect(gray, settings, now), now, settings)
            self._frames_since_detection = 0
        else:
            self._frames_since_detection += 1
        due = self.tracker.due(now, settings.classify_every_s)
        fresh = [face.probabilities for face in self.pipeline.classify(gray, [track.box for track in due])]
        confirmed = sum(track.hits >= settings.min_hits for track in self.tracker.tracks)
        fresh = self.calibrator.process([track.track_id for track in due], fresh, confirmed, now)
        for track, probabilities in zip(due, fresh, strict=True):
            self.tracker.observe(track, probabilities, now, settings)
        faces = self.tracker.shown(settings)
        if self._hold_verdicts:
            faces = self._drawn(faces, started)  # the clock's time: the page's takes are in it
        annotated = self.pipeline.annotate(rgb, faces, settings.overlay)
        self.calibrator.draw(annotated)
        if settings.verdict_code:
            main = faces[0] if faces else None
            number = self._verdict.number
            draw_verdict_code(
                annotated, number, main.emotion if main else None, main.confidence if main else 0.0
            )
        return annotated, faces, detect

    def _detect(self, gray: np.ndarray, settings: LiveSettings, now: float) -> list[Box]:
        """Faces in the whole frame when new ones may have come, else only near the tracked ones."""
        detector = self.pipeline.detector
        rescan = now - self._scanned_at >= settings.rescan_every_s
        if not self.tracker.all_confirmed(settings.min_hits) or (rescan and self._background is None):
            # No face held yet (or no thread to search on): this frame waits for the search.
            self._scanned_at = now
            whole = settings.detector_settings(*gray.shape[:2])
            boxes = detector.detect(gray, whole)
            if not boxes and now - self._looked_again_at >= settings.rescan_every_s:
                # A face filling the frame (leaning in) needs the second look; an empty room
                # would pay for it on every frame, so it comes once per rescan interval.
                self._looked_again_at = now
                boxes = detector.look_again(gray, whole)
            return boxes
        cascade = DetectorSettings(settings.scale_factor, settings.min_neighbors)
        near = (detector.detect_near(gray, track.box, cascade)[:1] for track in self.tracker.tracks)
        found = [box for boxes in near for box in boxes]
        if self._background is not None:
            found += self._background.take()  # after the tracked faces: they keep their fresher boxes
            # A search still running when the next is due (a busy CPU) is followed by the next one
            # as soon as it ends, not a whole interval later.
            if rescan and not self._background.busy:
                self._scanned_at = now
                self._background.start(detector, gray, settings.detector_settings(*gray.shape[:2]))
        return distinct(found, settings.iou_threshold)


def distinct(boxes: Sequence[Box], threshold: float) -> list[Box]:
    """``boxes`` without those overlapping an earlier one by ``threshold`` IoU or more.

    Two tracks close together can each find the same face near them; it is one face.
    """
    kept: list[Box] = []
    for box in boxes:
        if all(box.iou(other) < threshold for other in kept):
            kept.append(box)
    return kept


def as_rgb(frame: np.ndarray) -> np.ndarray:
    """A uint8 ``(H, W, 3)`` view of a gray, gray+1, RGB or RGBA frame; others are refused."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {frame.dtype}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_GRAY2RGB)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGBA2RGB)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise ValueError(f"expected a gray, RGB or RGBA frame, got shape {frame.shape}")


@dataclass(frozen=True)
class LiveStats:
    """What the side panel shows: the latest frame's result and the recent rate and latency.

    ``frame_age_s`` is how long ago the latest frame was processed (None before the first), so
    the panel can tell a stream that stalled from one that shows no face.
    """

    snapshot: Snapshot | None
    fps: float
    latency_ms: float
    latency_p95_ms: float
    frames: int
    errors: int
    last_error: str | None
    frame_age_s: float | None = None


class LiveResults:
    """Latest result of a stream, written by its callback thread and read by the page's thread.

    A lock guards a few fields; the page polls, so nothing queues up if it reads slowly.
    Frame rate and latency are over the last ``window_s`` seconds, so they fall to zero when
    frames stop arriving.
    """

    def __init__(self, window_s: float = 2.0, clock: Clock = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, float]] = deque()  # (arrival time, latency seconds)
        self._latest: Snapshot | None = None
        self._latest_at: float | None = None
        self._frames = 0
        self._errors = 0
        self._last_error: str | None = None

    def publish(self, snapshot: Snapshot) -> None:
        now = self.clock()
        with self._lock:
            self._latest, self._latest_at = snapshot, now
            self._frames += 1
            if snapshot.error:
                self._errors += 1
                self._last_error = snapshot.error
            self._recent.append((now, snapshot.latency_s))
            self._forget_before(now - self.window_s)

    def read(self) -> LiveStats:
        now = self.clock()
        with self._lock:
            self._forget_before(now - self.window_s)
            recent = list(self._recent)
            latest, latest_at = self._latest, self._latest_at
            frames, errors, last_error = self._frames, self._errors, self._last_error
        # Up to now, not to the last frame: the first frames of a stream come in a burst (5 in
        # 0.14 s read as 35 frames/s beside "5 frames"), and a rate should fall as frames thin out.
        span = now - recent[0][0] if recent else 0.0
        fps = (len(recent) - 1) / span if span > 0 else 0.0
        latencies = np.array([lat for _, lat in recent]) * 1000
        median, p95 = (float(np.median(latencies)), float(np.percentile(latencies, 95))) if recent else (0, 0)
        age = None if latest_at is None else now - latest_at
        return LiveStats(latest, fps, median, p95, frames, errors, last_error, age)

    def reset(self) -> None:
        """Start counting afresh, for a new stream."""
        with self._lock:
            self._recent.clear()
            self._latest = self._latest_at = None
            self._frames = self._errors = 0
            self._last_error = None

    def _forget_before(self, cutoff: float) -> None:
        while self._recent and self._recent[0][0] < cutoff:
            self._recent.popleft()


def _as_vector(box: Box) -> np.ndarray:
    return np.array(box.as_list(), dtype=np.float64)


def _normalised(probabilities: np.ndarray) -> tuple[float, ...]:
    """Probabilities as a tuple summing to exactly 1 (an EMA drifts by float rounding)."""
    return tuple(float(p) for p in probabilities / probabilities.sum())
