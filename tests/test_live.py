"""The live processor on real video frames: tracking, smoothing, and frames that go wrong.

The real-video tests use the shipped model and the Pexels clip in fixtures/video; the smoothing
tests swap in a scripted classifier (real detector, real frames) so that the probabilities are
known and the assertions are about the smoothing, not the model.
"""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest

from app.classifier import EmotionClassifier
from app.detection import Box, DetectorSettings, FaceDetector
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH
from app.images import read_image, to_gray
from app.live import MAX_VERDICT_HOLD_S, LiveProcessor, LiveResults, LiveSettings, Snapshot, Verdict
from app.overlay import CODE_BLOCK, CODE_CHECK_BITS, CODE_FIELDS, CODE_SYNC, NO_FACE_CODE
from app.pipeline import Pipeline
from app.video import video_frames

from bad_inputs import FIXTURES

VIDEO = FIXTURES / "video" / "pexels_woman_sad_to_happy.mp4"
WEBCAM = (640, 480)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(FaceDetector(), EmotionClassifier.load(DEFAULT_MODEL_PATH))


@pytest.fixture(scope="module")
def crying() -> list[tuple[float, np.ndarray]]:
    """The first 3 s of the clip: one woman, face to the camera, 24 frames/s at 640×480."""
    return list(video_frames(VIDEO, WEBCAM, end_s=3.0))


def run(processor: LiveProcessor, frames, settings: LiveSettings | None = None) -> list[Snapshot]:
    return [processor.process(rgb, settings, timestamp=t)[1] for t, rgb in frames]


def scripted(probabilities_at: callable):
    """A classifier whose answer depends only on the call number (one row per crop)."""
    calls = itertools.count()

    def classify(crops: np.ndarray) -> np.ndarray:
        row = np.asarray(probabilities_at(next(calls)), dtype=np.float32)
        return np.repeat(row[None, :], len(crops), axis=0)

    return classify


def one_hot_ish(emotion: str, weight: float) -> list[float]:
    """``weight`` on ``emotion``, the rest spread evenly."""
    rest = (1 - weight) / (len(CLASS_NAMES) - 1)
    return [weight if name == emotion else rest for name in CLASS_NAMES]


def test_one_steady_face_is_one_track_with_a_valid_verdict(pipeline, crying):
    snapshots = run(LiveProcessor(pipeline), crying)

    shown = [s for s in snapshots if s.faces]
    assert len(shown) >= len(snapshots) - 3  # only the first frames, before the track is confirmed
    assert all(len(s.faces) == 1 for s in shown)
    assert {s.faces[0].track_id for s in shown} == {1}
    face = shown[-1].main_face
    assert face.emotion in CLASS_NAMES and sum(face.probabilities) == pytest.approx(1)
    x, _, w, _ = face.box.as_list()
    assert 180 < x + w / 2 < 460 and w > 150  # her face fills the middle of the frame
    assert not any(s.error for s in snapshots)


def test_detection_skips_frames_while_the_face_is_tracked(pipeline, crying):
    snapshots = run(LiveProcessor(pipeline), crying)
    detected = sum(s.detected for s in snapshots)
    assert detected < len(snapshots) / 2  # the cascade ran on ~1 frame in 3
    assert all(s.faces for s in snapshots[len(snapshots) // 2 :])  # and no face was lost for it


def test_between_whole_frame_searches_the_cascade_looks_only_near_the_tracked_face(pipeline, crying):
    searches: list[str] = []

    class Spy(FaceDetector):
        def detect(self, gray, settings=None):
            searches.append("whole")
            return super().detect(gray, settings)

        def detect_near(self, gray, box, settings=None):
            searches.append("near")
            return super().detect_near(gray, box, settings)

    snapshots = run(LiveProcessor(Pipeline(Spy(), pipeline.classifier), LiveSettings()), crying)

    seconds = crying[-1][0] - crying[0][0]
    assert searches.count("whole") <= 2 + seconds / LiveSettings().rescan_every_s + 1  # start, then ~1/s
    assert searches.count("near") >= 15  # every third frame in between
    assert all(s.faces for s in snapshots[3:])  # and the face was never lost for it


class ThreadSpy(FaceDetector):
    """Records which thread ran each whole-frame search."""

    def __init__(self) -> None:
        super().__init__()
        self.whole_on: list[str] = []

    def detect(self, gray, settings=None):
        self.whole_on.append(threading.current_thread().name)
        return super().detect(gray, settings)


def test_with_a_background_scan_no_frame_waits_for_a_whole_frame_search(pipeline, crying):
    spy = ThreadSpy()
    processor = LiveProcessor(Pipeline(spy, pipeline.classifier), background_scan=True)
    snapshots = run(processor, crying)

    confirmed = next(i for i, s in enumerate(snapshots) if s.faces)
    on_frame_thread = [name for name in spy.whole_on if not name.startswith("face-scan")]
    assert len(on_frame_thread) <= confirmed + 1  # only until her face was held
    assert any(name.startswith("face-scan") for name in spy.whole_on)  # then on its own thread
    assert all(s.faces for s in snapshots[confirmed:])  # and she was never lost for it
    assert not any(s.error for s in snapshots)


def test_a_face_that_comes_into_view_is_found_by_the_background_scan(pipeline, crying):
    gray_half = np.full_like(crying[0][1], 128)
    joins_at = 1.0
    frames = [
        (t, np.concatenate([rgb, rgb[:, ::-1] if t >= joins_at else gray_half], axis=1)) for t, rgb in crying
    ]
    spy = ThreadSpy()
    processor = LiveProcessor(
        Pipeline(spy, pipeline.classifier), LiveSettings(mirror=False), background_scan=True
    )
    shown = []
    for t, rgb in frames:
        shown.append((t, len(processor.process(rgb, timestamp=t)[1].faces)))
        time.sleep(0.005)  # a frame's worth of wall time at most: the scan runs alongside

    assert all(count == 1 for t, count in shown[3:] if t < joins_at)
    both_from = min(t for t, count in shown if count == 2)
    assert both_from - joins_at <= LiveSettings().rescan_every_s + 0.5  # at the next search, give or take
    assert all(count == 2 for t, count in shown if t >= both_from)


def test_a_search_that_outlasts_the_interval_is_followed_by_the_next_one_at_once(pipeline, crying):
    gate = threading.Event()

    class SlowScan(FaceDetector):
        started = 0

        def detect(self, gray, settings=None):
            if threading.current_thread().name.startswith("face-scan"):
                SlowScan.started += 1
                gate.wait(10)  # the first background search lasts as long as the test wants
            return super().detect(gray, settings)

    interval = LiveSettings().rescan_every_s
    processor = LiveProcessor(Pipeline(SlowScan(), pipeline.classifier), background_scan=True)
    (t0, _), frames = crying[0], itertools.cycle(rgb for _, rgb in crying)
    step = interval / 10
    for i in range(25):  # two and a half intervals: one search starts, then blocks past the next
        processor.process(next(frames), timestamp=t0 + i * step)
    assert SlowScan.started == 1
    gate.set()
    deadline = time.monotonic() + 10
    while SlowScan.started == 1:
        processor.process(next(frames), timestamp=t0 + 25 * step)  # the same moment: no interval passes
        assert time.monotonic() < deadline, "no search followed the one that outlasted its interval"
        time.sleep(0.01)


def test_stopping_a_stream_drops_its_unfinished_background_scan(pipeline, crying):
    processor = LiveProcessor(pipeline, background_scan=True)
    run(processor, crying[:24])
    processor.reset()
    t, rgb = crying[30]
    assert processor.process(rgb, timestamp=t)[1].faces == ()  # a new stream starts unconfirmed


def test_the_search_near_a_face_finds_it_moved_and_resized_and_nothing_where_there_is_none():
    detector = FaceDetector()
    portraits = sorted((FIXTURES / "faces").glob("*.jpg"))
    for path in portraits:
        gray = to_gray(read_image(path.read_bytes()))
        (face,) = detector.detect(gray, DetectorSettings(look_again=False))
        # Where the face was a moment ago: a fifth of its size away, and a fifth bigger.
        before = Box(face.x - face.w // 5, face.y + face.h // 5, face.w * 6 // 5, face.h * 6 // 5)
        found = detector.detect_near(gray, before)
        assert found and found[0].iou(face) > 0.6, path.name
    coffee = to_gray(read_image((FIXTURES / "coffee.png").read_bytes()))
    height, width = coffee.shape
    for side in (height // 4, height // 2):
        for x, y in itertools.product(range(0, width - side, side // 2), range(0, height - side, side // 2)):
            assert detector.detect_near(coffee, Box(x, y, side, side)) == []


def test_face_leaving_and_coming_back_gets_a_new_track(pipeline, crying):
    empty = np.full((WEBCAM[1], WEBCAM[0], 3), 128, np.uint8)
    away = [(3.0 + i / 24, empty) for i in range(12)]  # half a second with nobody in the frame
    back = [(t + 3.5, rgb) for t, rgb in crying[:24]]
    snapshots = run(LiveProcessor(pipeline), crying[:24] + away + back)

    assert snapshots[23].faces[0].track_id == 1
    assert not snapshots[23 + 12].faces  # gone while she is away
    assert snapshots[-1].faces[0].track_id == 2  # back, as a new track


def test_several_faces_are_tracked_apart_and_classified_in_one_call(pipeline, crying):
    calls: list[int] = []

    def counting(crops: np.ndarray) -> np.ndarray:
        calls.append(len(crops))
        return pipeline.classifier(crops)

    two = [(t, np.concatenate([rgb, rgb[:, ::-1]], axis=1)) for t, rgb in crying[:24]]
    processor = LiveProcessor(Pipeline(pipeline.detector, counting))
    last = run(processor, two)[-1]

    assert len(last.faces) == 2
    assert len({face.track_id for face in last.faces}) == 2
    centers = sorted(face.box.center[0] for face in last.faces)
    assert centers[0] < WEBCAM[0] < centers[1]  # one in each half
    assert calls[-1] == 2  # both faces in one batch


def test_smoothing_stops_a_near_tie_from_flickering(pipeline, crying):
    """Each frame the model flips between two close verdicts; the shown label must not."""
    others = [0.048] * 5
    tie = [[0, 0, 0, 0.40, 0.36, 0, 0], [0, 0, 0, 0.36, 0.40, 0, 0]]  # happy vs neutral
    for row in tie:
        for index in (0, 1, 2, 5, 6):
            row[index] = others.pop() if others else 0.048

    def label_changes(smoothing: float) -> int:
        processor = LiveProcessor(Pipeline(pipeline.detector, scripted(lambda n: tie[n % 2])))
        # Every frame classified: this is about the smoothing, not about how often the model looks.
        snapshots = run(processor, crying, LiveSettings(smoothing=smoothing, classify_every_s=0))
        labels = [s.faces[0].emotion for s in snapshots if s.faces]
        return sum(a != b for a, b in itertools.pairwise(labels))

    assert label_changes(0.0) > 40  # raw verdicts flicker on nearly every frame
    assert label_changes(LiveSettings().smoothing) <= 1


def test_the_model_looks_at_a_tracked_face_about_ten_times_a_second(pipeline, crying):
    calls: list[int] = []

    def counting(crops: np.ndarray) -> np.ndarray:
        calls.append(len(crops))
        return pipeline.classifier(crops)

    snapshots = run(LiveProcessor(Pipeline(pipeline.detector, counting)), crying)

    seconds = crying[-1][0] - crying[0][0]
    assert len(calls) < 0.5 * len(crying)  # the clip is 24 frames/s: not every frame
    assert 8 <= len(calls) / seconds <= 12
    assert all(s.faces for s in snapshots[len(snapshots) // 4 :])  # every frame still shows a verdict


def test_a_real_change_of_expression_shows_within_a_third_of_a_second(pipeline, crying):
    verdict = {"now": "happy"}

    def classifier(crops: np.ndarray) -> np.ndarray:
        return np.repeat([one_hot_ish(verdict["now"], 0.7)], len(crops), axis=0).astype(np.float32)

    processor = LiveProcessor(Pipeline(pipeline.detector, classifier))
    switch_at, shown = 1.5, []
    for t, rgb in crying:
        verdict["now"] = "sad" if t >= switch_at else "happy"
        snapshot = processor.process(rgb, LiveSettings(smoothing=1.0), timestamp=t)[1]
        shown.append((t, snapshot.faces[0].emotion if snapshot.faces else None))

    before = {label for t, label in shown if t < switch_at and label}
    sad_from = min(t for t, label in shown if label == "sad")
    assert before == {"happy"}
    assert 0 < sad_from - switch_at <= 0.3  # smoothed, so not instantly, but promptly


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((479, 641, 3), np.uint8),
        np.full((240, 320), 90, np.uint8),
        np.full((240, 320, 1), 90, np.uint8),
        np.full((240, 320, 4), 90, np.uint8),
    ],
    ids=["1x1", "odd-size", "gray", "gray-1-channel", "rgba"],
)
def test_odd_frames_are_processed_without_error(pipeline, frame):
    annotated, snapshot = LiveProcessor(pipeline).process(frame)
    assert snapshot.error is None and snapshot.faces == ()
    assert annotated.shape[:2] == frame.shape[:2] and annotated.shape[2] == 3


@pytest.mark.parametrize(
    "frame", [np.zeros((48, 64, 3), np.float32), np.zeros((48, 64, 2), np.uint8)], ids=["float", "2-channel"]
)
def test_a_frame_that_cannot_be_processed_comes_back_as_it_was(pipeline, frame):
    processor = LiveProcessor(pipeline)
    annotated, snapshot = processor.process(frame)
    assert annotated is frame
    assert snapshot.error and processor.errors == 1


def test_a_failing_model_never_stops_the_stream(pipeline, crying):
    def broken(crops: np.ndarray) -> np.ndarray:
        raise RuntimeError("model exploded")

    processor = LiveProcessor(Pipeline(pipeline.detector, broken))
    for t, rgb in crying[:10]:
        annotated, snapshot = processor.process(rgb, timestamp=t)
        assert annotated is rgb and "model exploded" in snapshot.error
    assert processor.errors == 10


def test_mirror_view_flips_the_frame_and_the_face(pipeline, crying):
    t, rgb = crying[0]
    plain = LiveProcessor(pipeline, LiveSettings(mirror=False))
    mirrored = LiveProcessor(pipeline, LiveSettings(mirror=True))
    for _ in range(3):  # confirm the tracks
        snap_plain = plain.process(rgb, timestamp=t)[1]
        snap_mirror = mirrored.process(rgb, timestamp=t)[1]
    x_plain = snap_plain.faces[0].box.center[0]
    x_mirror = snap_mirror.faces[0].box.center[0]
    assert abs((WEBCAM[0] - x_plain) - x_mirror) < 8


def test_results_channel_reports_rate_and_latest_across_threads():
    clock_now = [100.0]
    results = LiveResults(window_s=2.0, clock=lambda: clock_now[0])

    def publisher() -> None:
        for i in range(30):
            results.publish(Snapshot((), latency_s=0.01, timestamp=i / 30))

    worker = threading.Thread(target=publisher)
    worker.start()
    worker.join()
    assert results.read().frames == 30

    results.reset()
    for i in range(31):
        clock_now[0] = 200 + i / 30
        results.publish(Snapshot((), latency_s=0.02, timestamp=i / 30))
    stats = results.read()
    assert stats.fps == pytest.approx(30, rel=0.01) and stats.latency_ms == pytest.approx(20)
    assert stats.latency_p95_ms == pytest.approx(20) and stats.frame_age_s == pytest.approx(0)
    clock_now[0] += 5  # no frames for a while: the rate falls to zero and the panel can tell why
    stalled = results.read()
    assert stalled.fps == 0 and stalled.frame_age_s == pytest.approx(5)
    assert stalled.snapshot is not None  # the last result stays known, marked old by its age
    results.reset()
    assert results.read().frame_age_s is None and results.read().snapshot is None


def test_a_streams_first_burst_is_not_read_as_a_high_frame_rate():
    """A stream's first frames come together (the camera's queue): 5 within 0.14 s, read half a
    second after the first, are 8 frames a second, not the 29 the burst's own span gave."""
    clock_now = [10.0]
    results = LiveResults(window_s=2.0, clock=lambda: clock_now[0])
    for i in range(5):
        clock_now[0] = 10 + i * 0.035
        results.publish(Snapshot((), latency_s=0.01, timestamp=i * 0.035))
    clock_now[0] = 10.5
    stats = results.read()
    assert stats.frames == 5 and stats.fps == pytest.approx(8)


def test_streams_in_parallel_threads_share_the_model_but_not_their_faces(pipeline, crying):
    """Two browser sessions: each stream's processor on its own thread, one shared pipeline."""
    unmirrored = LiveSettings(mirror=False)
    left_only = [(t, np.concatenate([rgb, np.full_like(rgb, 128)], axis=1)) for t, rgb in crying[:36]]
    right_only = [(t, np.concatenate([np.full_like(rgb, 128), rgb], axis=1)) for t, rgb in crying[:36]]
    expected = {
        name: run(LiveProcessor(pipeline), frames, unmirrored)[-1]
        for name, frames in (("left", left_only), ("right", right_only))
    }
    got: dict[str, Snapshot] = {}

    def stream(name: str, frames) -> None:
        got[name] = run(LiveProcessor(pipeline), frames, unmirrored)[-1]

    threads = [
        threading.Thread(target=stream, args=args) for args in (("left", left_only), ("right", right_only))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for name in ("left", "right"):
        assert [f.box for f in got[name].faces] == [f.box for f in expected[name].faces]
        assert got[name].faces[0].probabilities == pytest.approx(
            expected[name].faces[0].probabilities, abs=1e-5
        )
    assert got["left"].faces[0].box.x < WEBCAM[0] <= got["right"].faces[0].box.x


def drifting(pipeline: Pipeline) -> Pipeline:
    """The real detector with a model whose confidence in happy swings on every call."""
    return Pipeline(pipeline.detector, scripted(lambda n: one_hot_ish("happy", 0.5 + 0.4 * (n % 2))))


def verdicts(faces) -> list[tuple[int, str, float]]:
    return [(face.track_id, face.emotion, face.confidence) for face in faces]


def test_held_verdicts_draw_what_the_panel_took_until_it_takes_the_next(pipeline, crying):
    now = [0.0]
    processor = LiveProcessor(drifting(pipeline), clock=lambda: now[0], hold_verdicts=True)
    drawn, taken = [], []
    for i, (t, rgb) in enumerate(crying):
        now[0] = t
        if i and i % 12 == 0:  # the page's panel, twice a second
            taken.append((i, processor.take_verdict()))
        drawn.append(processor.process(rgb, timestamp=t)[1])

    for (first, verdict), (end, _) in itertools.pairwise([*taken, (len(crying), None)]):
        assert verdict.main_face is not None
        for snapshot in drawn[first:end]:
            assert verdicts(snapshot.faces) == verdicts(verdict.faces)
    assert len({verdict.main_face.confidence for _, verdict in taken}) > 1  # the verdicts follow the model
    boxes = {snapshot.faces[0].box for snapshot in drawn[taken[0][0] : taken[1][0]]}
    assert len(boxes) > 1  # the emoji still follows the face between verdicts
    numbers = [verdict.number for _, verdict in taken]
    assert numbers == sorted(set(numbers))


def test_without_held_verdicts_each_frame_draws_its_own_numbers(pipeline, crying):
    """The Video page and replays: every frame's verdict, as before (the held test's contrast)."""
    snapshots = run(LiveProcessor(drifting(pipeline)), crying[:36])
    assert len({snapshot.faces[0].confidence for snapshot in snapshots[12:]}) > 3


def test_a_face_is_drawn_exactly_while_the_verdict_holds_it(pipeline, crying):
    now = [0.0]
    processor = LiveProcessor(pipeline, clock=lambda: now[0], hold_verdicts=True)

    def process(t: float, rgb: np.ndarray) -> Snapshot:
        now[0] = t
        return processor.process(rgb, timestamp=t)[1]

    first = [process(t, rgb) for t, rgb in crying[:12]]
    assert not any(snapshot.faces for snapshot in first)  # she is tracked, but no verdict has her yet
    held = processor.take_verdict().main_face
    assert held is not None
    empty = np.full((WEBCAM[1], WEBCAM[0], 3), 128, np.uint8)
    away = [process(0.5 + i / 24, empty) for i in range(12)]
    # Gone from the frame, but the panel still describes her: her emoji stays where she was seen.
    assert all(verdicts(snapshot.faces) == verdicts([held]) for snapshot in away)
    assert processor.take_verdict().faces == ()
    assert not process(1.1, empty).faces


def test_held_verdicts_move_on_by_themselves_when_the_page_stops_taking_them(pipeline, crying):
    now = [0.0]
    processor = LiveProcessor(pipeline, clock=lambda: now[0], hold_verdicts=True)
    shown_from = None
    for t, rgb in crying:
        now[0] = t
        if processor.process(rgb, timestamp=t)[1].faces and shown_from is None:
            shown_from = t
    assert shown_from is not None and shown_from <= MAX_VERDICT_HOLD_S + 0.1


def test_the_verdict_code_in_the_corner_is_the_verdict_drawn(pipeline, crying):
    now = [0.0]
    processor = LiveProcessor(pipeline, clock=lambda: now[0], hold_verdicts=True)
    settings = LiveSettings(verdict_code=True)
    for t, rgb in crying[:12]:
        now[0] = t
        processor.process(rgb, settings, timestamp=t)
    verdict = processor.take_verdict()
    annotated, snapshot = processor.process(crying[12][1], settings, timestamp=crying[12][0])

    face = verdict.main_face
    percent = int(f"{face.confidence:.0%}".rstrip("%"))
    assert read_verdict_code(annotated) == (verdict.number, face.emotion, percent)
    assert verdicts(snapshot.faces) == verdicts(verdict.faces)
    processor.reset()
    assert processor.take_verdict().number == verdict.number + 1  # numbers never repeat in a session


def test_the_panel_shows_a_verdict_once_the_frames_drawing_it_reach_the_screen(pipeline, crying):
    """The panel follows the video: a taken verdict is on screen only a moment after its first frame."""
    now = [0.0]
    processor = LiveProcessor(pipeline, clock=lambda: now[0], hold_verdicts=True)
    for t, rgb in crying[:12]:
        now[0] = t
        processor.process(rgb, timestamp=t)
    before = processor.take_verdict()
    now[0] = 0.52
    processor.process(crying[12][1], timestamp=0.52)
    taken = processor.take_verdict()  # taken at 0.52, first drawn by the frame at 0.56
    assert processor.drawn_before(0.55) == before
    now[0] = 0.56
    processor.process(crying[13][1], timestamp=0.56)
    assert processor.drawn_before(0.559) == before  # the frames on screen still carry the old one
    assert processor.drawn_before(0.56) == taken
    processor.reset()
    assert processor.drawn_before(1.0) == Verdict(taken.number)  # nothing of the old stream is on screen


def test_the_panel_waits_for_the_first_frame_of_its_verdict_and_no_longer_than_it_may(pipeline, crying):
    """on_screen on the real clock: waits for the frame callback's thread, then the way to the screen."""
    processor = LiveProcessor(pipeline, hold_verdicts=True)
    for _, rgb in crying[:12]:
        processor.process(rgb)
    earlier = processor.take_verdict()
    processor.process(crying[12][1])
    taken = processor.take_verdict()
    frame = threading.Timer(0.1, processor.process, (crying[13][1],))
    started = time.monotonic()
    frame.start()
    assert processor.on_screen(taken, delay_s=0.05, wait_s=1.0) == taken
    assert time.monotonic() - started >= 0.15  # the frame came after 0.1 s, on screen 0.05 s later
    frame.join()

    started = time.monotonic()
    assert processor.on_screen(processor.take_verdict(), delay_s=0.05, wait_s=0.1) == taken  # no frame came
    assert 0.1 <= time.monotonic() - started < 0.5
    assert earlier.number < taken.number


def read_verdict_code(image: np.ndarray) -> tuple[int, str | None, int]:
    """What app.overlay.draw_verdict_code wrote (the browser test reads it the same way)."""
    count = len(CODE_SYNC) + sum(CODE_FIELDS) + CODE_CHECK_BITS
    middle = CODE_BLOCK // 2
    bits = [int(image[middle, b * CODE_BLOCK + middle].mean() > 127) for b in range(count)]
    assert tuple(bits[: len(CODE_SYNC)]) == CODE_SYNC
    values, at = [], len(CODE_SYNC)
    for width in (*CODE_FIELDS, CODE_CHECK_BITS):
        values.append(int("".join(map(str, bits[at : at + width])), 2))
        at += width
    number, emotion, percent, check = values
    assert check == sum(bits[len(CODE_SYNC) : -CODE_CHECK_BITS]) % 2**CODE_CHECK_BITS
    return number, None if emotion == NO_FACE_CODE else CLASS_NAMES[emotion], percent
