"""What the Video page says about a stopped or damaged job must be true of what the user sees.

AppTest runs the page in this process, so a job processed here with :mod:`app.video_jobs` is the
one the page finds through its URL, as after a reload, when the uploader is empty. Things the page
once said that were not so: "Press Start" after a cancelled job, where no Start button is shown
without an upload; and, for a video damaged partway, a raw decoder error ("[Errno 1094995529] …
'avcodec_send_packet()'") above a summary of its readable first 0.8 s that read as the whole 3 s
("Face on screen 100%", "held steady all through", downloads named as the whole video's).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest
from streamlit.runtime.media_file_storage import MediaFileKind
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from app import video_jobs
from app.classifier import EmotionClassifier
from app.detection import FaceDetector
from app.emotions import DEFAULT_MODEL_PATH, REPO_ROOT
from app.images import read_image
from app.pipeline import Pipeline
from app.video import VIDEO_SETTINGS, mp4_writer, process_video
from app.video_jobs import Processed, VideoJob

from bad_inputs import FIXTURES

MAIN = str(REPO_ROOT / "app" / "streamlit_app.py")
PAGE = str(REPO_ROOT / "pages" / "video.py")
CUT_OFF = FIXTURES / "bad" / "videos" / "cut-off.mp4"  # 3.0 s at 12 fps, unreadable after 0.8 s
TIMEOUT_S = 180


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(FaceDetector(), EmotionClassifier.load(DEFAULT_MODEL_PATH))


def kept(job: VideoJob) -> Iterator[VideoJob]:
    """``job``, done, kept by app.video_jobs (as a worker keeps it) for the page to find."""
    job.done.set()
    with video_jobs._lock:
        video_jobs._jobs[job.id] = job
    yield job
    with video_jobs._lock:
        video_jobs._jobs.pop(job.id, None)


@pytest.fixture
def cancelled_job(pipeline: Pipeline) -> Iterator[VideoJob]:
    """The cut-off clip, cancelled at its third frame."""
    asked = itertools.count()
    result = process_video(CUT_OFF, pipeline, should_stop=lambda: next(asked) >= 3)
    job = VideoJob("test-cancelled", "cut-off", CUT_OFF.name, {})
    job.processed = Processed(result, b"", b"")
    yield from kept(job)


def reloaded_page(job: VideoJob) -> AppTest:
    """The Video page with ``job`` in its URL and nothing uploaded: the page after a reload."""
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT_S)
    at.run()
    at.switch_page(PAGE)
    at.query_params["video_job"] = job.id
    at.run()
    assert not at.exception
    return at


def test_a_cancelled_job_after_a_reload_asks_for_the_upload_that_start_needs(cancelled_job: VideoJob):
    assert cancelled_job.cancelled
    at = reloaded_page(cancelled_job)

    assert [button.label for button in at.button if button.label == "Start"] == []
    (warning,) = at.warning
    assert "Processing stopped before the end" in warning.value
    assert "upload it again and press **Start**" in warning.value
    assert "Press **Start**" not in warning.value


@pytest.fixture
def damaged_job(pipeline: Pipeline) -> Iterator[VideoJob]:
    """The cut-off clip as the job's worker processes it: as far as it can be read."""
    job = VideoJob("test-damaged", "cut-off", CUT_OFF.name, {})
    video_jobs._run(job, CUT_OFF.read_bytes(), pipeline, 1, VIDEO_SETTINGS)
    yield from kept(job)


def test_a_damaged_video_is_said_so_plainly_and_its_summary_is_of_the_part_read(
    damaged_job: VideoJob, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    saved_as: list[str | None] = []  # the downloads' file names, as the browser will save them
    store = MemoryMediaFileStorage.load_and_get_id

    def load_and_get_id(
        self: MemoryMediaFileStorage,
        data: bytes | str,
        mimetype: str,
        kind: MediaFileKind,
        filename: str | None = None,
    ) -> str:
        saved_as.append(filename)
        return store(self, data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", load_and_get_id)
    at = reloaded_page(damaged_job)

    # What happened, in words: no errno, no FFmpeg function; those go to the server's log.
    (error,) = at.error
    assert re.fullmatch(r"\*\*cut-off\.mp4\*\*: the video is damaged after 0\.9 s [^(\[]*\.", error.value)
    assert "Errno" not in error.value and "avcodec" not in error.value
    assert "avcodec_send_packet" in "\n".join(r.getMessage() for r in caplog.get_records("setup"))
    # The summary and the downloads are of the first 0.9 s, not of the 3.0 s video.
    texts = [element.value for element in (*at.markdown, *at.caption)]
    assert any(text.startswith("#### Summary of the first 0.9 s of 3.0 s only") for text in texts), texts
    assert any(text.endswith("at 12.0 fps: the first 0.9 s of 3.0 s only.") for text in texts), texts
    assert not any("all through" in text for text in texts), texts
    assert "the first 0.9 s of 3.0 s" in at.metric[1].proto.help  # Processing: "… s for the first …"
    assert {"cut-off_first_0.9s_emojify.mp4", "cut-off_first_0.9s_emotions.csv"} <= set(saved_as)


@pytest.fixture
def one_frame_job(pipeline: Pipeline, tmp_path) -> Iterator[VideoJob]:
    """A video of one frame: a plain, well-lit portrait."""
    portrait = read_image(FIXTURES / "faces" / "london_009_happy.jpg")
    portrait = np.ascontiguousarray(portrait[: portrait.shape[0] // 2 * 2, : portrait.shape[1] // 2 * 2])
    path = tmp_path / "one_frame.mp4"
    with mp4_writer(path, (portrait.shape[1], portrait.shape[0]), Fraction(12)) as write:
        write(portrait)
    job = VideoJob("test-one-frame", "one-frame", path.name, {})
    video_jobs._run(job, path.read_bytes(), pipeline, 1, VIDEO_SETTINGS)
    yield from kept(job)


def test_a_video_too_short_for_a_face_to_count_says_so_not_that_faces_were_too_small(one_frame_job: VideoJob):
    """It said "No face found… Try a lower Smallest face… or a video where faces are well lit" of a
    large, well-lit face: the tracker counts a face once it is found in several frames."""
    at = reloaded_page(one_frame_job)
    (warning,) = at.warning
    assert "Too short to find a face in" in warning.value and "**Photo** page" in warning.value
    assert "Smallest face" not in warning.value
