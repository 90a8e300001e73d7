"""Video processing that outlives the page run that started it, so a reload keeps the work.

Processing a video takes tens of seconds to minutes. Run inside a page's script, it died with the
session when the user reloaded the page, and the finished result lived only in that session.
Here each job runs :func:`app.video.process_video` on a worker thread of its own and is kept by
an id that the page puts in its URL: a reloaded page finds the job again, still running (with
its progress) or finished (with its result). The id is a digest of the video's bytes and every
setting the result depends on, so the same video with the same settings is processed once and
then served from here. Only the newest :data:`KEPT` finished jobs are kept: each holds its
emojified MP4 in memory. Framework-free: the Video page polls a job; Cancel sets its flag.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from app import memory
from app.live import LiveSettings
from app.pipeline import Pipeline
from app.video import Progress, VideoError, VideoResult, process_video

#: Finished jobs kept for reloads and repeats; running ones are never dropped.
KEPT = 4


@dataclass(frozen=True)
class Processed:
    """A finished job's outputs: what was found, the emojified MP4 and the per-frame CSV."""

    result: VideoResult
    mp4: bytes
    csv: bytes


@dataclass
class VideoJob:
    """One video being processed (``done`` unset) or processed; read by pages, written by its thread.

    ``video`` identifies the file's bytes (:func:`video_digest`), ``made_with`` the settings the
    result depends on, for the page to match them with the upload and the sidebar. ``problem`` is
    what went wrong, for the user; ``processed`` is still set when the video broke partway (the
    frames before the damage).
    """

    id: str
    video: str
    name: str
    made_with: dict[str, object]
    progress: Progress | None = None
    processed: Processed | None = None
    problem: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        return self.processed is not None and self.processed.result.cancelled


_lock = threading.Lock()
_jobs: OrderedDict[str, VideoJob] = OrderedDict()


def video_digest(data: bytes) -> str:
    """Identifies a video file by its bytes (the same file uploaded again gives the same one)."""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def job_id(video: str, made_with: dict[str, object]) -> str:
    """The id of processing the video ``video`` with the settings ``made_with``."""
    return hashlib.blake2b(f"{video} {sorted(made_with.items())!r}".encode(), digest_size=12).hexdigest()


def find(identifier: str | None) -> VideoJob | None:
    """The job with this id, if this server still has it."""
    with _lock:
        return _jobs.get(identifier) if identifier else None


def start(
    name: str,
    data: bytes,
    pipeline: Pipeline,
    step: int,
    settings: LiveSettings,
    made_with: dict[str, object],
) -> VideoJob:
    """Process ``data`` on a worker thread, unless the same video and settings are running or done
    (a cancelled or failed job is started again)."""
    video = video_digest(data)
    identifier = job_id(video, made_with)
    with _lock:
        job = _jobs.get(identifier)
        if job is not None and job.problem is None and not job.cancelled:
            _jobs.move_to_end(identifier)
            return job
        job = VideoJob(identifier, video, name, made_with)
        _jobs[identifier] = job
        _forget_old()
    worker = threading.Thread(
        target=_run, args=(job, data, pipeline, step, settings), name=f"video-{identifier[:8]}", daemon=True
    )
    worker.start()
    return job


def _forget_old() -> None:
    """Drop the oldest finished jobs beyond :data:`KEPT` (call with the lock held)."""
    finished = [key for key, job in _jobs.items() if job.done.is_set()]
    for key in finished[: max(0, len(finished) - KEPT)]:
        del _jobs[key]


def _run(job: VideoJob, data: bytes, pipeline: Pipeline, step: int, settings: LiveSettings) -> None:
    """The worker: process, encode to a temporary folder (removed at once), keep the bytes."""

    def show(progress: Progress) -> None:
        job.progress = progress

    try:
        with tempfile.TemporaryDirectory(prefix="emojify-video-") as folder:
            target = Path(folder) / "emojified.mp4"
            try:
                result = process_video(
                    io.BytesIO(data),
                    pipeline,
                    target,
                    step=step,
                    settings=settings,
                    progress=show,
                    should_stop=job.cancel.is_set,
                )
            except VideoError as err:
                job.problem = str(err)
                result = getattr(err, "result", None)  # a video broken partway: the frames before
                if result is None:
                    return
            mp4 = target.read_bytes() if target.is_file() else b""
        table = io.StringIO()
        result.write_csv(table)
        job.processed = Processed(result, mp4, table.getvalue().encode())
    except Exception as err:  # a worker thread: the page must hear of any failure
        job.problem = f"processing failed ({type(err).__name__}: {err})"
    finally:
        job.done.set()
        with _lock:
            _forget_old()
        memory.release()  # the decoded frames and the encoder's buffers are garbage now
