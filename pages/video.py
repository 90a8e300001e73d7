"""Video page: upload a video, get each face's emotions over time, a summary and the emojified video.

Frames go through the Live page's tracker and smoothing (:func:`app.video.process_video`), so a
replayed webcam recording gives the timeline the Live page showed. Processing runs as a job on a
worker thread (:mod:`app.video_jobs`) that the page polls, with its id in the page's URL beside
the sidebar's choices: a reload finds the choices, the work in progress and the finished result
again. Cancel stops the job at the next frame. The upload is read from memory and never written
to disk; the emojified copy is encoded in a temporary folder that is removed as soon as its bytes
are read, and kept in memory with the newest few results.
"""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app import video_jobs
from app.live import LiveSettings
from app.pipeline import Pipeline
from app.video import (
    READABLE_FORMATS,
    REFERENCE_SIZE,
    VIDEO_EXTENSIONS,
    VIDEO_SETTINGS,
    Summary,
    VideoError,
    VideoResult,
    expected_fps,
    expected_seconds,
    probe,
)
from app.video_jobs import Processed, VideoJob
from pages.shared import (
    IN_URL,
    emoji_image,
    load_pipeline,
    min_face_slider,
    model_picker_ui,
    overlay_options_ui,
    smoothing_slider,
)
from pages.video_charts import emoji_and_name, moments_html, share_chart, timeline_chart

#: The query parameter that holds the page's job (app.video_jobs), so a reload finds it again.
JOB = "video_job"
#: Session keys: the upload's digest by file id (hashed once), and that this session had an upload.
DIGESTS, HAD_UPLOAD = "video_digests", "video_had_upload"
#: Above this many frames to process, the page suggests a larger frame step.
MANY_FRAMES = 3000
#: Faces on screen for less than this are left out of the timelines (a passer-by, a false hit).
MIN_TIMELINE_S = 1.0
MAX_TIMELINES = 4
#: What the user can change, by its name in the sidebar, for the hint that a result is outdated.
SETTING_NAMES = {
    "step": "Frame step",
    "smoothing": "Smoothing",
    "min_face": "Smallest face",
    "overlay": "Overlay",
    "model": "Model",
}
NO_FACE_TIPS = """
**No face found in the video.** The detector looks for upright faces seen from the front. Try a
lower **Smallest face** in the sidebar when faces are small, or a video where faces are well lit.
"""


def video_settings_ui() -> tuple[int, LiveSettings]:
    """Sidebar: frame step, smoothing and smallest face; the Live page's settings otherwise."""
    with st.sidebar.expander("Video", expanded=True):
        step = st.number_input(
            "Frame step",
            1,
            30,
            1,
            key="video_step",
            bind=IN_URL,
            help="Process every N-th frame: N times faster; the emojified video then has 1/N of the frames.",
        )
        smoothing = smoothing_slider(
            VIDEO_SETTINGS.smoothing,
            "video_smoothing",
            "0 shows every frame's raw verdict (flickers); 1 is steadiest, as on the Live page.",
            bind=IN_URL,
        )
        min_face = min_face_slider(
            VIDEO_SETTINGS.min_face,
            "video_min_face",
            "Lower it for faces far from the camera; it costs time per frame.",
            bind=IN_URL,
        )
    overlay = overlay_options_ui(bind=IN_URL)
    settings = replace(VIDEO_SETTINGS, smoothing=smoothing, min_face=min_face, overlay=overlay)
    return int(step), settings


def settings_used(step: int, settings: LiveSettings, model: str) -> dict[str, object]:
    """The settings a result depends on, by their name in the sidebar, to compare with later ones."""
    return {
        "step": step,
        "smoothing": settings.smoothing,
        "min_face": settings.min_face,
        "overlay": settings.overlay,
        "model": model,
    }


def changed_settings(before: dict[str, object], now: dict[str, object]) -> list[str]:
    """Names of the settings that differ between two :func:`settings_used`."""
    return [SETTING_NAMES[key] for key in SETTING_NAMES if before.get(key) != now.get(key)]


def part_covered(result: VideoResult) -> str | None:
    """``"the first 0.9 s of 3.0 s"`` for a result that stops short of the video's end (damaged
    partway), else ``None``: its summary, 100% of a readable second, must not read as the whole."""
    if (covered_s := result.covered_s) is None:
        return None
    whole = f" of {result.info.duration_s:.1f} s" if result.info.duration_s > covered_s else ""
    return f"the first {covered_s:.1f} s{whole}"


def show_summary(result: VideoResult, summary: Summary) -> None:
    part = part_covered(result)
    if part is not None:
        st.markdown(f"#### Summary of {part} only\nThe video, the CSV and the charts stop there too.")
    if summary.dominant is None:
        if len(result.frames) < VIDEO_SETTINGS.min_hits:  # no face could count, however plain
            st.warning(
                f"**Too short to find a face in:** {len(result.frames)} frame(s) processed, and a face "
                f"counts once it is found in {VIDEO_SETTINGS.min_hits} frames (one-off detections are "
                "mostly not faces). For a still picture, use the **Photo** page."
            )
        else:
            st.warning(NO_FACE_TIPS)
        return
    whose = (
        f"face {summary.main}, on screen longest: {summary.tracks[0].seconds:.1f} s"
        if len(summary.tracks) > 1
        else "the face"
    )
    left, right = st.columns([1, 2], vertical_alignment="center")
    with left:
        emoji_image(summary.dominant, width=72)
    share = summary.share[summary.dominant]
    right.markdown(f"### Mostly {summary.dominant}\n{share:.0%} of the time ({whose})")
    on_screen, speed = st.columns(2)
    on_screen.metric(
        "Face on screen",
        f"{summary.seconds_with_face / summary.seconds:.0%}",
        help=f"{summary.seconds_with_face:.1f} s of {summary.seconds:.1f} s",
    )
    speed.metric(
        "Processing",
        f"{result.fps:.0f} frames/s",
        help=f"{result.elapsed_s:.1f} s for {part or 'the whole video'}",
    )
    st.markdown(f"**Share of time per emotion** ({whose})")
    st.altair_chart(share_chart(summary.share), width="stretch")
    if summary.changes:
        st.markdown("**Moments of change**")
        st.html(moments_html(summary.changes))
    else:
        st.caption(
            f"The emotion held steady {f'through {part}' if part else 'all through'}: no moments of change."
        )


def show_timelines(result: VideoResult, summary: Summary) -> None:
    tracks = [t for t in summary.tracks if t.seconds >= MIN_TIMELINE_S]
    if not tracks:
        return
    rows = pd.DataFrame(result.rows())
    duration_s = max(result.info.duration_s, result.frames[-1].time_s)
    st.subheader("Timeline")
    for track in tracks[:MAX_TIMELINES]:
        st.html(
            f"<p><b>Face {track.face}</b> · {track.first_s:.1f}–{track.last_s:.1f} s · mostly "
            f"{emoji_and_name(track.dominant)}</p>"
        )
        chart = timeline_chart(rows[rows["face"] == track.face], duration_s)
        st.altair_chart(chart, width="stretch")
    if len(tracks) > MAX_TIMELINES:
        st.caption(f"{len(tracks) - MAX_TIMELINES} more faces are in the CSV.")


def show_result(name: str, processed: Processed) -> None:
    result = processed.result
    summary = result.summary()  # once: the summary and the timelines both read it
    stem = Path(name).stem or "video"
    if (covered_s := result.covered_s) is not None:  # a part must not be saved as the whole video's
        stem += f"_first_{covered_s:.1f}s"
    if result.errors:
        st.warning(f"{result.errors} frame(s) could not be processed and were written as they came.")
    video_col, summary_col = st.columns([3, 2])
    with video_col:
        st.video(processed.mp4, format="video/mp4")
        mp4_col, csv_col = st.columns(2)
        mp4_col.download_button(
            "Emojified video (MP4)",
            processed.mp4,
            f"{stem}_emojify.mp4",
            "video/mp4",
            key="video_mp4",
            icon=":material/download:",
        )
        csv_col.download_button(
            "Per-frame results (CSV)",
            processed.csv,
            f"{stem}_emotions.csv",
            "text/csv",
            key="video_csv",
            icon=":material/download:",
        )
        part = part_covered(result)
        st.caption(
            f"{len(result.frames):,} frames processed (every {result.step}), "
            f"{result.info.width}×{result.info.height} at {float(result.info.fps):.1f} fps"
            + (f": {part} only." if part else ".")
        )
    with summary_col:
        show_summary(result, summary)
    show_timelines(result, summary)


def upload_digest(upload: UploadedFile) -> str:
    """The upload's :func:`app.video_jobs.video_digest`, hashed once per upload in this session."""
    digests = st.session_state.setdefault(DIGESTS, {})
    if upload.file_id not in digests:
        digests.clear()
        digests[upload.file_id] = video_jobs.video_digest(upload.getvalue())
    return digests[upload.file_id]


def page_job(upload: UploadedFile | None) -> VideoJob | None:
    """The job this page shows: the one in its URL, when it is of the uploaded video, or of any
    video when the uploader is empty after a reload. A user who removes the upload drops it."""
    if upload is not None:
        st.session_state[HAD_UPLOAD] = True
    elif st.session_state.pop(HAD_UPLOAD, False):
        st.query_params.pop(JOB, None)
        return None
    job = video_jobs.find(st.query_params.get(JOB))
    if job is None or (upload is not None and job.video != upload_digest(upload)):
        return None
    return job


def start_ui(
    upload: UploadedFile,
    pipeline: Pipeline,
    step: int,
    settings: LiveSettings,
    made_with: dict[str, object],
    job: VideoJob | None,
) -> VideoJob | None:
    """What processing the upload will take, and Start; returns the job the page shows now."""
    try:
        info = probe(io.BytesIO(upload.getvalue()))
    except VideoError as err:
        st.error(f"**{upload.name}**: {err}.")
        return None
    to_process = math.ceil(info.frames / step)
    fastest, slowest = expected_seconds(info, step)
    slow_fps, fast_fps, measured = expected_fps()
    size = f"{REFERENCE_SIZE[0]}×{REFERENCE_SIZE[1]}"
    speed = (
        f"this server's last video went at {fast_fps:.0f} frames/s at {size}, a third of that when busy"
        if measured
        else f"{slow_fps:.0f}–{fast_fps:.0f} frames/s at {size} on 2 CPU cores, slower when it is busy"
    )
    st.caption(
        f"{info.width}×{info.height}, {float(info.fps):.1f} fps, {info.duration_s:.1f} s: "
        f"{to_process:,} frames to process at frame step {step}, about {fastest}–{slowest} s "
        f"({speed}; the progress bar shows the real speed)."
    )
    if to_process > MANY_FRAMES:
        st.info(
            f"That is a long video: a **Frame step** of {math.ceil(to_process / MANY_FRAMES)} or more "
            "is quicker."
        )
    if not st.button("Start", type="primary", key="video_start", icon=":material/play_arrow:"):
        return job
    started = video_jobs.start(upload.name, upload.getvalue(), pipeline, step, settings, made_with)
    if job is not None and job.id != started.id:
        job.cancel.set()  # one job per page: the earlier one would only slow this one down
    st.query_params[JOB] = started.id
    return started


@st.fragment(run_every=0.5)
def progress_ui(job: VideoJob) -> None:
    """The running job's progress and its Cancel; the whole page is drawn again once it is done."""
    if job.done.is_set():
        st.rerun()
    progress = job.progress
    if progress is None:
        st.progress(0.0, text="Starting…")
    else:
        text = f"Frame {progress.done:,} of ~{progress.total:,} · {progress.fps:.0f} frames/s"
        if (remaining := progress.remaining_s) is not None:
            text += f" · about {math.ceil(remaining)} s left"
        st.progress(progress.fraction, text=text)
    if st.button("Cancel", key="video_cancel", icon=":material/stop:"):
        job.cancel.set()


def show_job(job: VideoJob, made_with: dict[str, object], uploaded: bool) -> None:
    """A job as far as it got: progress, a stop, a problem, or the result (marked when the
    sidebar's settings are not the ones it was made with)."""
    if not job.done.is_set():
        progress_ui(job)
        return
    # Without an upload (after a reload) there is no Start button: the video must come first.
    apply = "press **Start**" if uploaded else "upload it again and press **Start**"
    if job.cancelled:
        st.warning(f"Processing stopped before the end (Cancel). To run **{job.name}** again, {apply}.")
        return
    if job.problem is not None:
        st.error(f"**{job.name}**: {job.problem}.")
    if job.processed is None:
        return
    if not uploaded:
        st.caption(f"The result for **{job.name}**, kept from before this page was reloaded.")
    if changed := changed_settings(job.made_with, made_with):
        st.info(
            f"**{', '.join(changed)}** changed since this result was made: {apply} to apply the new "
            "settings. The result below is still the earlier one."
        )
    show_result(job.name, job.processed)


st.title("Video")
st.caption(
    "Upload a video: Emojify follows every face, charts its emotions over time and puts an emoji over it. "
    "The video is processed in memory and not stored."
)
step, settings = video_settings_ui()
model_path = model_picker_ui(key="video_model", bind=IN_URL)
upload = st.file_uploader(
    "Video with one or more faces",
    type=list(VIDEO_EXTENSIONS),
    key="video_upload",
    help=f"{READABLE_FORMATS}. Phone videos are turned upright.",
)
# After the uploader: it is on screen while the model may still be loading (first visit).
pipeline = load_pipeline(model_path)
made_with = settings_used(step, settings, str(model_path))
job = page_job(upload)
if upload is None and job is None:
    st.info("Upload a video to start. Short clips (under a minute) give the clearest timelines.")
if upload is not None and pipeline is not None:
    job = start_ui(upload, pipeline, step, settings, made_with, job)
if job is not None:
    show_job(job, made_with, uploaded=upload is not None)
