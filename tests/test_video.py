"""Video files: the Pexels clip's emotion timeline, the emojified MP4, the CLI, and bad inputs.

The clip (fixtures/video) shows one woman crying (0–3 s), hands over her face (4–9.5 s) and
laughing (13–16.5 s). Which emotion the model names for each moment depends on the model, so the
timeline tests ask only what any reasonable model shows: sad-like emotions weigh more early than
while she laughs, and "happy" leads while she laughs. The clip is processed once for the module,
at a frame step of 2 to keep the test quick on two cores.
"""

from __future__ import annotations

import csv
import io
import math
import re
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from app import video, video_jobs
from app.classifier import EmotionClassifier
from app.detection import Box, FaceDetector
from app.emotions import CLASS_NAMES, DEFAULT_MODEL_PATH
from app.images import read_image
from app.live import SmoothedFace
from app.overlay import BOTTOM_CLEARANCE, draw_label
from app.pipeline import Pipeline
from app.video import (
    VIDEO_SETTINGS,
    FrameResult,
    VideoDamaged,
    VideoError,
    VideoResult,
    mp4_writer,
    probe,
    process_video,
    rejoin_tracks,
    steady_changes,
    video_frame,
)
from app.video_jobs import VideoJob

from bad_inputs import FIXTURES

VIDEO = FIXTURES / "video" / "pexels_woman_sad_to_happy.mp4"
FRAMES = 472  # 19.7 s at 23.976 frames/s
STEP = 2
UPSET = ("angry", "disgust", "fear", "sad")
EARLY = (0.0, 9.5)  # crying, then hands over her face
LAUGHING = (13.0, 16.5)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(FaceDetector(), EmotionClassifier.load(DEFAULT_MODEL_PATH))


@pytest.fixture(scope="module")
def processed(pipeline: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> tuple[VideoResult, Path, list]:
    """The whole clip at step 2: its result, the emojified MP4 and every progress report."""
    out = tmp_path_factory.mktemp("video") / "emojified.mp4"
    reports: list[video.Progress] = []
    result = process_video(VIDEO, pipeline, out, step=STEP, progress=reports.append)
    return result, out, reports


def mean_probabilities(result: VideoResult, start: float, end: float) -> dict[str, float]:
    """The main face's smoothed probabilities, averaged over the frames between two times."""
    rows = [f.faces[0].probabilities for f in result.frames if f.faces and start <= f.time_s < end]
    assert len(rows) > 10, f"no face shown between {start} and {end} s"
    return dict(zip(CLASS_NAMES, np.mean(rows, axis=0), strict=True))


def decoded_frames(path: Path) -> list[np.ndarray]:
    return [rgb for _, rgb in video.video_frames(path)]


def test_timeline_is_upset_early_and_happy_while_she_laughs(processed):
    result, _, _ = processed
    early, laughing = mean_probabilities(result, *EARLY), mean_probabilities(result, *LAUGHING)

    assert sum(early[name] for name in UPSET) > sum(laughing[name] for name in UPSET) + 0.2
    assert max(laughing, key=laughing.get) == "happy"
    shown = [f.faces[0].emotion for f in result.frames if f.faces and LAUGHING[0] <= f.time_s < LAUGHING[1]]
    assert shown.count("happy") >= 0.8 * len(shown)

    summary = result.summary()
    assert summary.seconds_with_face > 0.8 * summary.seconds  # her face is tracked nearly throughout
    assert sum(summary.share.values()) == pytest.approx(1)
    assert summary.changes and summary.changes[-1].after == "happy"
    assert summary.tracks[0].seconds > 10  # one long track, not one per detection pass


def test_output_has_one_frame_per_step_and_plays_as_h264(processed):
    result, out, _ = processed
    assert len(result.frames) == math.ceil(FRAMES / STEP)
    assert [f.index for f in result.frames[:3]] == [0, STEP, 2 * STEP]

    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert stream.average_rate == Fraction(24000, 1001) / STEP  # same duration, 1/STEP the frames
    frames = decoded_frames(out)
    assert len(frames) == len(result.frames)
    assert frames[0].shape == (360, 640, 3)
    assert probe(out).duration_s == pytest.approx(probe(VIDEO).duration_s, abs=0.2)


def test_the_emojified_video_opens_with_the_emoji_on_her_face(processed):
    """The tracker confirms a face only after a few frames; those frames get the emoji too."""
    result, out, _ = processed
    first = result.frames[0]
    assert first.index == 0 and first.faces

    original, emojified = decoded_frames(VIDEO)[0], decoded_frames(out)[0]
    x, y, w, h = first.faces[0].box.as_list()
    changed = np.abs(emojified[y : y + h, x : x + w].astype(int) - original[y : y + h, x : x + w]).max(axis=2)
    assert (changed > 60).mean() > 0.3  # an emoji covers her face, not just compression noise


def test_she_is_one_face_although_her_hands_hide_her_face_for_a_moment(processed):
    """One woman, one timeline: no "Face 1" and "Face 3" with a short "Face 2" between them."""
    result, _, _ = processed
    assert [track.face for track in result.summary().tracks] == [1]
    assert {face.track_id for frame in result.frames for face in frame.faces} == {1}


def _faces(track_id: int, x: int, frames: range, step_s: float = 0.1) -> list[tuple[float, SmoothedFace]]:
    probabilities = (0.1, 0.0, 0.0, 0.6, 0.3, 0.0, 0.0)
    box = Box(x, 50, 100, 100)
    return [(i * step_s, SmoothedFace(box, probabilities, track_id, "happy")) for i in frames]


def _frames(*tracks: list[tuple[float, SmoothedFace]]) -> list[FrameResult]:
    by_time: dict[float, list[SmoothedFace]] = {}
    for track in tracks:
        for time_s, face in track:
            by_time.setdefault(time_s, []).append(face)
    return [FrameResult(round(t * 10), t, tuple(by_time[t])) for t in sorted(by_time)]


def test_a_face_that_reappears_where_it_was_keeps_its_number():
    hidden = _faces(1, 100, range(0, 20)) + _faces(4, 110, range(25, 40))  # 0.5 s behind a hand
    overlapping = _faces(6, 600, range(0, 30)) + _faces(7, 620, range(27, 40))  # held box, new track
    elsewhere = _faces(9, 350, range(41, 50))  # someone else, in the middle of the frame

    frames = rejoin_tracks(_frames(hidden, overlapping, elsewhere))

    numbers = {(face.box.x, face.track_id) for frame in frames for face in frame.faces}
    assert numbers == {(100, 1), (110, 1), (600, 2), (620, 2), (350, 3)}
    assert all(len({f.track_id for f in frame.faces}) == len(frame.faces) for frame in frames)
    assert [f.box.x for f in frames[28].faces if f.track_id == 2] == [620]  # the fresh box, not the held one


@pytest.mark.parametrize("size", [(640, 480), (641, 479)], ids=["webcam", "odd"])
def test_frames_go_to_the_encoder_with_their_colours(size):
    """The emoji's colours survive the fast RGB → yuv420p conversion as they did the slow one."""
    rgb = read_image((FIXTURES / "faces" / "london_009_happy.jpg").read_bytes())
    rgb = np.ascontiguousarray(cv2.resize(rgb, size))
    rgb[:64, :64] = (255, 200, 0)  # an emoji's yellow, unblurred

    frame = video_frame(rgb)

    assert (frame.width, frame.height) == size
    assert frame.format.name == ("yuv420p" if size == (640, 480) else "rgb24")
    back = frame.reformat(format="rgb24").to_ndarray()
    slow = (
        av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray(format="rgb24")
    )
    assert np.abs(back.astype(int) - rgb).mean() <= np.abs(slow.astype(int) - rgb).mean() + 0.5
    assert np.abs(back[8:56, 8:56].astype(int) - (255, 200, 0)).max() <= 4


def test_labels_stay_clear_of_the_bottom_where_player_controls_are():
    """A face filling the frame's height gets its label at the top, not at the bottom edge."""
    frame = np.zeros((360, 640, 3), np.uint8)
    draw_label(frame, Box(300, 10, 330, 330), "happy 93%")
    rows = np.flatnonzero((frame == 255).all(axis=2).any(axis=1))  # the label's white band
    assert rows.size and rows.max() < 360 * (1 - BOTTOM_CLEARANCE)


def test_progress_is_reported_after_every_frame(processed):
    result, _, reports = processed
    assert [r.done for r in reports] == list(range(1, len(result.frames) + 1))
    assert reports[-1].fraction == 1.0 and reports[-1].time_s == pytest.approx(result.frames[-1].time_s)


def test_csv_has_a_row_per_face_per_processed_frame(processed):
    result, _, _ = processed
    text = io.StringIO()
    result.write_csv(text)
    rows = list(csv.DictReader(io.StringIO(text.getvalue())))

    assert list(rows[0]) == video.CSV_COLUMNS
    assert {int(row["frame"]) for row in rows} == {f.index for f in result.frames}
    assert len(rows) == sum(max(1, len(f.faces)) for f in result.frames)
    with_face = [row for row in rows if row["face"]]
    assert all(
        sum(float(row[name]) for name in CLASS_NAMES) == pytest.approx(1, abs=1e-3) for row in with_face
    )
    assert all(row["emotion"] in CLASS_NAMES for row in with_face)


def test_cancel_keeps_a_shorter_video_that_plays(pipeline, tmp_path):
    out = tmp_path / "cancelled.mp4"
    asked = iter(range(1000))
    source = io.BytesIO(VIDEO.read_bytes())  # an upload's bytes, as the page passes them
    result = process_video(source, pipeline, out, step=4, should_stop=lambda: next(asked) >= 10)

    assert result.cancelled and len(result.frames) == 10
    assert len(decoded_frames(out)) == 10


def test_a_cancel_before_the_first_frame_ends_the_job_as_cancelled_not_failed(pipeline):
    """A Cancel pressed while the page says "Starting…": no frame, so no video to keep. It ended
    as "processing failed (FileNotFoundError: … .part -> …emojified.mp4)": the encoder had written
    no file to rename."""
    job = VideoJob("test-cancel-at-once", "digest", VIDEO.name, {})
    job.cancel.set()
    video_jobs._run(job, VIDEO.read_bytes(), pipeline, 4, VIDEO_SETTINGS)

    assert job.problem is None and job.done.is_set()
    assert job.processed is not None and job.processed.mp4 == b""
    assert job.cancelled and not job.processed.result.frames


def test_a_still_group_is_summarised_by_one_face_not_by_whichever_is_largest(pipeline, tmp_path):
    """Three portraits of one height, side by side and still for 3 s: the largest face changes
    from frame to frame between people of one size. The summary took each frame's largest and
    mixed two people's emotions ("happy 92 %, neutral 8 %") and still said nobody changed; it
    follows the face on screen longest now, whose own label holds all through."""
    portraits = [
        read_image(FIXTURES / "faces" / f"london_{name}.jpg")
        for name in ("009_happy", "018_neutral", "011_happy")
    ]
    group = np.hstack([cv2.resize(p, (p.shape[1] * 360 // p.shape[0] // 2 * 2, 360)) for p in portraits])
    group = np.ascontiguousarray(group[:, : group.shape[1] // 16 * 16])
    path = tmp_path / "group.mp4"
    with mp4_writer(path, (group.shape[1], group.shape[0]), Fraction(12)) as write:
        for _ in range(36):
            write(group)

    result = process_video(path, pipeline)
    summary = result.summary()

    largest = {frame.faces[0].track_id for frame in result.frames if frame.faces}  # largest first
    assert len(largest) > 1  # the premise: the largest face is not always the same person
    assert summary.share[summary.dominant] == 1.0 and not summary.changes
    assert len(summary.tracks) == 3 and summary.main == summary.tracks[0].face
    assert "of face 1, on screen longest (3.0 s)" in video.report(result)


def test_a_video_without_faces_says_so(pipeline, tmp_path):
    coffee = read_image(FIXTURES / "coffee.png")[:360, :640]
    path = tmp_path / "coffee.mp4"
    with mp4_writer(path, (coffee.shape[1], coffee.shape[0]), Fraction(12)) as write:
        for _ in range(6):
            write(coffee)
    result = process_video(path, pipeline)

    assert len(result.frames) == 6 and not any(f.faces for f in result.frames)
    assert result.summary().dominant is None
    assert "dominant emotion: none (no face found)" in video.report(result)


def test_a_portrait_phone_video_is_turned_upright(tmp_path):
    """Phones store portrait video sideways with a rotation in the container; frames must come upright."""
    path = tmp_path / "portrait.mp4"
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:, :8] = 255  # a white stripe on the left of the stored (sideways) picture
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)  # shown turned a quarter counter-clockwise
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))

    info = probe(path)
    assert (info.width, info.height) == (32, 64)
    _, upright = next(video.video_frames(path))
    assert upright.shape == (64, 32, 3)
    assert upright[-4:].mean() > 200 and upright[:-8].mean() < 50  # the stripe is now at the bottom


@pytest.mark.parametrize(
    ("suffix", "codec"),
    [(".webm", "libvpx-vp9"), (".mov", "libx264"), (".avi", "mpeg4"), (".mkv", "mjpeg")],
    ids=["webm-vp9", "mov-h264", "avi-mpeg4", "mkv-mjpeg"],
)
def test_the_containers_users_upload_are_read_with_their_times(suffix, codec, tmp_path):
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height = 96, 64
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for value in range(12):
            picture = np.full((64, 96, 3), value * 20, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))

    info = probe(path)
    assert (info.width, info.height, info.fps) == (96, 64, 24)
    frames = list(video.video_frames(path))
    assert len(frames) == 12
    assert [t for t, _ in frames[:3]] == pytest.approx([0, 1 / 24, 2 / 24], abs=1e-3)


def test_short_steady_runs_are_not_moments_of_change():
    labels = ["sad"] * 12 + ["surprise"] * 2 + ["sad"] * 6 + ["happy"] * 12
    times = [i / 10 for i in range(len(labels))]
    changes = steady_changes(times, labels, frame_s=0.1, min_steady_s=0.5)
    assert [(c.before, c.after, c.time_s) for c in changes] == [("sad", "happy", 2.0)]


def _audio_only(path: Path) -> None:
    """Half a second of AAC silence in an MP4 container: a file with sound and no pictures."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        for index in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _small_mp4(path: Path, frames: int = 24) -> bytes:
    """A short H.264 MP4 of noise with its index first (faststart), as bytes."""
    noise = np.random.default_rng(0).integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8)
    with mp4_writer(path, (64, 64), Fraction(24)) as write:
        for frame in noise:
            write(frame)
    return path.read_bytes()


def _index_without_frames(path: Path) -> None:
    """An MP4 whose index promises frames but whose data was cut off: a download that stopped."""
    data = _small_mp4(path)
    path.write_bytes(data[: data.index(b"mdat") + 4])


BAD_INPUTS = {
    "text-named-mp4": (
        lambda path: path.write_text("These are words, not moving pictures.\n"),
        "not a video",
    ),
    "zero-bytes": (lambda path: path.write_bytes(b""), "empty"),
    "audio-only": (_audio_only, "no video in it (only audio)"),
    "index-without-frames": (_index_without_frames, "no frames"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_get_a_clear_message(case, tmp_path, pipeline):
    make, words = BAD_INPUTS[case]
    path = tmp_path / "clip.mp4"
    make(path)
    with pytest.raises(VideoError, match=re.escape(words)):
        probe(path)
    with pytest.raises(VideoError, match=re.escape(words)):
        process_video(io.BytesIO(path.read_bytes()), pipeline)


def _cut_off(path: Path) -> Path:
    """A 48-frame MP4 cut off at three quarters of its bytes: the index is whole, the frames not."""
    data = _small_mp4(path, frames=48)
    path.write_bytes(data[: len(data) * 3 // 4])
    return path


def test_a_video_cut_off_halfway_says_where_it_is_damaged_and_keeps_what_came_before(tmp_path, pipeline):
    path = _cut_off(tmp_path / "cut.mp4")
    assert probe(path).frames == 48  # the index is whole: only decoding finds the damage
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoDamaged, match=r"damaged after \d\.\d s") as caught:
        process_video(path, pipeline, out)
    kept = caught.value.result
    assert 0 < len(kept.frames) < 48
    assert len(decoded_frames(out)) == len(kept.frames)  # the MP4 of those frames plays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4", "out.mp4"]  # no temporary file left


def test_the_cli_keeps_what_came_before_the_damage_and_says_so(tmp_path, capsys):
    path = _cut_off(tmp_path / "cut.mp4")
    out, table = tmp_path / "out.mp4", tmp_path / "out.csv"

    assert video.main([str(path), "--out", str(out), "--csv", str(table)]) == 1

    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    assert re.search(
        r"error: cut\.mp4: the video is damaged after \d\.\d s .*; what came before it was "
        r"processed and kept",
        printed.err,
    ), printed.err
    rows = list(csv.DictReader(table.open()))
    assert 0 < len(rows) < 48 and len(decoded_frames(out)) == len(rows)
    assert f"wrote {out} (the {len(rows)} frames before the damage)" in printed.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4", "out.csv", "out.mp4"]


def test_a_failed_write_leaves_no_half_video_and_the_earlier_file_stays(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"an earlier result")
    with pytest.raises(RuntimeError), mp4_writer(out, (64, 64), Fraction(24)) as write:
        write(np.zeros((64, 64, 3), np.uint8))
        raise RuntimeError("the page's rerun stops the script here")
    assert out.read_bytes() == b"an earlier result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_the_time_to_expect_follows_the_frame_size(monkeypatch: pytest.MonkeyPatch):
    """A 320×240 clip was once expected to take as long as a 640×360 one (issue 24)."""
    monkeypatch.setattr(video, "_measured_fps", None)  # before this server's first video
    reference = video.VideoInfo(640, 360, Fraction(30), 100.0, 3000)
    small = video.VideoInfo(320, 240, Fraction(30), 100.0, 3000)
    large = video.VideoInfo(3840, 2160, Fraction(30), 100.0, 3000)
    fastest, slowest = video.expected_seconds(reference)
    assert (fastest, slowest) == tuple(math.ceil(3000 / fps) for fps in reversed(video.EXPECTED_FPS))
    assert video.expected_seconds(reference, step=3) == (math.ceil(fastest / 3), math.ceil(slowest / 3))
    small_fastest, small_slowest = video.expected_seconds(small)
    assert small_fastest < 0.7 * fastest and small_slowest < 0.7 * slowest
    assert video.expected_seconds(large) > (fastest, slowest)  # processed at 1280×720


def test_the_time_to_expect_follows_this_servers_last_video(monkeypatch: pytest.MonkeyPatch, pipeline):
    """The fixed range (12-35 frames/s) was one machine's: a faster one was told 14-40 s for a
    video it processed in 7. After a whole video the estimate starts from the speed measured."""
    monkeypatch.setattr(video, "_measured_fps", None)
    done = process_video(VIDEO, pipeline, step=4)
    measured = len(done.frames) / done.elapsed_s  # the clip is 640×360: reference frames
    slowest_fps, fastest_fps, from_this_server = video.expected_fps()
    assert from_this_server and fastest_fps == pytest.approx(measured)
    assert slowest_fps == pytest.approx(measured / 3)
    fastest, slowest = video.expected_seconds(done.info, step=4)
    assert fastest <= math.ceil(done.elapsed_s * 1.5) and slowest >= done.elapsed_s

    asked = iter(range(1000))
    process_video(VIDEO, pipeline, step=4, should_stop=lambda: next(asked) >= 5)  # cancelled: not kept
    assert video.expected_fps()[1] == pytest.approx(measured)


def test_progress_says_what_is_left_at_the_speed_measured():
    assert video.Progress(0, 100, 0.0, 0.0).remaining_s is None
    assert video.Progress(25, 100, 1.0, 5.0).remaining_s == pytest.approx(15.0)  # 5 frames/s


@pytest.mark.parametrize("case", ["text-named-mp4", "audio-only"])
def test_the_cli_refuses_bad_inputs_without_a_traceback(case, tmp_path, capsys):
    make, words = BAD_INPUTS[case]
    path = tmp_path / "clip.mp4"
    make(path)
    assert video.main([str(path), "--out", str(tmp_path / "out.mp4")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: clip.mp4:") and words in err and "Traceback" not in err
    assert not (tmp_path / "out.mp4").exists()


def test_the_cli_writes_the_video_the_csv_and_a_summary(tmp_path, capsys):
    clip = tmp_path / "laughing.mp4"
    with mp4_writer(clip, (640, 360), Fraction(24000, 1001)) as write:
        for _, rgb in video.video_frames(VIDEO, start_s=LAUGHING[0], end_s=LAUGHING[0] + 2):
            write(rgb)
    out, table = tmp_path / "out.mp4", tmp_path / "out.csv"

    assert video.main([str(clip), "--out", str(out), "--csv", str(table), "--step", "3"]) == 0

    printed = capsys.readouterr()
    assert "frames/s" in printed.out and "dominant emotion: happy" in printed.out
    assert "100%" in printed.err  # the progress bar, finished
    expected = math.ceil(len(decoded_frames(clip)) / 3)
    assert len(decoded_frames(out)) == len({row["frame"] for row in csv.DictReader(table.open())}) == expected
