"""Video page: upload a video, get each face's emotions over time, a summary and the emojified video.

Frames go through the Live page's tracker and smoothing (:func:`app.video.process_video`), so a
replayed webcam recording gives the timeline the Live page showed. Processing runs in this
script: any rerun (the Cancel button, or a changed setting) stops it at the next progress update,
and the flag ``RUNNING`` left behind tells the next run that it was stopped. The upload is read
from memory and never written to disk; the emojified copy is encoded in a temporary folder that
is removed as soon as its bytes are read. Results stay in this session only.
"""

from __future__ import annotations

import io
import math
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app.emotions import CLASS_NAMES, EMOJI
from app.live import LiveSettings
from app.pipeline import Pipeline
from app.video import VIDEO_SETTINGS, Progress, VideoError, VideoResult, probe, process_video
from pages.shared import (
    emoji_image,
    load_pipeline,
    min_face_slider,
    model_picker_ui,
    overlay_options_ui,
    smoothing_slider,
)

UPLOAD_TYPES = ["mp4", "m4v", "mov", "webm", "mkv", "avi"]
RESULT = "video_result"
RUNNING = "video_running"
#: Above this many frames to process, the page suggests a larger frame step.
MANY_FRAMES = 3000
#: Faces on screen for less than this are left out of the timelines (a passer-by, a false hit).
MIN_TIMELINE_S = 1.0
MAX_TIMELINES = 4
#: Points per timeline; longer videos are thinned so the chart stays quick in the browser.
TIMELINE_POINTS = 800
#: Processing speed to expect at 640×360 on 2 CPU cores, frames/s: ~35 on an idle machine with the
#: shipped ensemble (the 472-frame clip: 23 s with start-up, see the README), 12–15 measured while a
#: training ran on the same cores.
EXPECTED_FPS = (12, 35)
#: What the user can change, by its name in the sidebar, for the hint that a result is outdated.
SETTING_NAMES = {
    "step": "Frame step",
    "smoothing": "Smoothing",
    "min_face": "Smallest face",
    "overlay": "Overlay",
    "model": "Model",
}
COLOURS = {
    "angry": "#dc2626",
    "disgust": "#65a30d",
    "fear": "#9333ea",
    "happy": "#f59e0b",
    "neutral": "#94a3b8",
    "sad": "#2563eb",
    "surprise": "#06b6d4",
}
NO_FACE_TIPS = """
**No face found in the video.** The detector looks for upright faces seen from the front. Try a
lower **Smallest face** in the sidebar when faces are small, or a video where faces are well lit.
"""


@dataclass(frozen=True)
class Processed:
    """One finished run, kept in the session so reruns (downloads, toggles) don't redo it."""

    file_id: str
    name: str
    result: VideoResult
    mp4: bytes
    csv: bytes
    made_with: dict[str, object]


def video_settings_ui() -> tuple[int, LiveSettings]:
    """Sidebar: frame step, smoothing and smallest face; the Live page's settings otherwise."""
    with st.sidebar.expander("Video", expanded=True):
        step = st.number_input(
            "Frame step",
            1,
            30,
            1,
            key="video_step",
            help="Process every N-th frame: N times faster; the emojified video then has 1/N of the frames.",
        )
        smoothing = smoothing_slider(
            VIDEO_SETTINGS.smoothing,
            "video_smoothing",
            "0 shows every frame's raw verdict (flickers); 1 is steadiest, as on the Live page.",
        )
        min_face = min_face_slider(
            VIDEO_SETTINGS.min_face,
            "video_min_face",
            "Lower it for faces far from the camera; it costs time per frame.",
        )
    overlay = overlay_options_ui()
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


def expected_time(frames: int) -> str:
    """How long processing ``frames`` should take at :data:`EXPECTED_FPS`, as a user reads it."""
    fastest, slowest = (math.ceil(frames / fps) for fps in reversed(EXPECTED_FPS))
    return f"about {fastest}–{slowest} s"


def run(
    upload: UploadedFile, pipeline: Pipeline, step: int, settings: LiveSettings, made_with: dict[str, object]
) -> Processed:
    """Process the upload with a progress bar; the bar's updates are where a rerun stops it."""
    bar = st.progress(0.0, text="Starting…")
    shown = {"percent": -1}

    def show(progress: Progress) -> None:
        percent = int(progress.fraction * 100)
        if percent != shown["percent"]:
            shown["percent"] = percent
            text = f"Frame {progress.done:,} of ~{progress.total:,} · {progress.fps:.0f} frames/s"
            bar.progress(progress.fraction, text=text)

    with tempfile.TemporaryDirectory(prefix="emojify-video-") as folder:
        target = Path(folder) / "emojified.mp4"
        source = io.BytesIO(upload.getvalue())
        result = process_video(source, pipeline, target, step=step, settings=settings, progress=show)
        mp4 = target.read_bytes()
    bar.empty()
    table = io.StringIO()
    result.write_csv(table)
    return Processed(upload.file_id, upload.name, result, mp4, table.getvalue().encode(), made_with)


def share_chart(share: dict[str, float]) -> alt.Chart:
    """Share of the time each emotion was shown, as bars in class order."""
    data = pd.DataFrame(
        {
            "emotion": [f"{EMOJI[name]} {name}" for name in CLASS_NAMES],
            "name": list(CLASS_NAMES),
            "share": [share[name] for name in CLASS_NAMES],
        }
    )
    return (
        alt.Chart(data)
        .mark_bar(cornerRadiusEnd=3)
        .encode(
            x=alt.X("share:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=None)),
            y=alt.Y("emotion:N", sort=None, title=None),
            color=alt.Color("name:N", scale=_colour_scale(), legend=None),
            tooltip=[alt.Tooltip("emotion:N"), alt.Tooltip("share:Q", format=".0%", title="share of time")],
        )
        .properties(height=190)
    )


def timeline_chart(face_rows: pd.DataFrame, duration_s: float) -> alt.LayerChart:
    """One face's smoothed probabilities over time, stacked; hovering shows a time's values.

    Every face's chart spans the whole video, so charts stacked on the page line up in time.
    """
    wide = face_rows.iloc[:: max(1, math.ceil(len(face_rows) / TIMELINE_POINTS))]
    long = wide.melt(id_vars=["time_s"], value_vars=list(CLASS_NAMES), var_name="emotion", value_name="p")
    areas = (
        alt.Chart(long)
        .mark_area()
        .encode(
            x=alt.X("time_s:Q", title="time (s)", scale=alt.Scale(domain=[0, duration_s])),
            y=alt.Y(
                "p:Q", stack="zero", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", title=None)
            ),
            color=alt.Color("emotion:N", scale=_colour_scale(), sort=list(CLASS_NAMES), title=None),
            order=alt.Order("emotion_index:Q"),
        )
        .transform_calculate(emotion_index=f"indexof({list(CLASS_NAMES)}, datum.emotion)")
    )
    nearest = alt.selection_point(nearest=True, on="pointerover", fields=["time_s"], empty=False)
    tooltip = [alt.Tooltip("time_s:Q", title="time (s)", format=".2f")] + [
        alt.Tooltip(f"{name}:Q", title=f"{EMOJI[name]} {name}", format=".0%") for name in CLASS_NAMES
    ]
    rule = (
        alt.Chart(wide)
        .mark_rule(color="#0f172a", strokeWidth=2)
        .encode(x="time_s:Q", opacity=alt.condition(nearest, alt.value(0.6), alt.value(0)), tooltip=tooltip)
        .add_params(nearest)
    )
    return (areas + rule).properties(height=200)


def _colour_scale() -> alt.Scale:
    return alt.Scale(domain=list(COLOURS), range=list(COLOURS.values()))


def show_summary(processed: Processed) -> None:
    result = processed.result
    summary = result.summary()
    if summary.dominant is None:
        st.warning(NO_FACE_TIPS)
        return
    left, right = st.columns([1, 2], vertical_alignment="center")
    with left:
        emoji_image(summary.dominant, width=72)
    right.markdown(f"### Mostly {summary.dominant}\n{summary.share[summary.dominant]:.0%} of the time")
    on_screen, speed = st.columns(2)
    on_screen.metric(
        "Face on screen",
        f"{summary.seconds_with_face / summary.seconds:.0%}",
        help=f"{summary.seconds_with_face:.1f} s of {summary.seconds:.1f} s",
    )
    speed.metric(
        "Processing", f"{result.fps:.0f} frames/s", help=f"{result.elapsed_s:.1f} s for the whole video"
    )
    st.markdown("**Share of time per emotion** (the largest face)")
    st.altair_chart(share_chart(summary.share), width="stretch")
    if summary.changes:
        st.markdown("**Moments of change**")
        st.dataframe(
            pd.DataFrame(
                {
                    "time": [f"{change.time_s:.1f} s" for change in summary.changes],
                    "from": [f"{EMOJI[change.before]} {change.before}" for change in summary.changes],
                    "to": [f"{EMOJI[change.after]} {change.after}" for change in summary.changes],
                }
            ),
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("The emotion held steady all through: no moments of change.")


def show_timelines(processed: Processed) -> None:
    result = processed.result
    tracks = [t for t in result.summary().tracks if t.seconds >= MIN_TIMELINE_S]
    if not tracks:
        return
    rows = pd.DataFrame(result.rows())
    duration_s = max(result.info.duration_s, result.frames[-1].time_s)
    st.subheader("Timeline")
    for track in tracks[:MAX_TIMELINES]:
        st.markdown(
            f"**Face {track.face}** · {track.first_s:.1f}–{track.last_s:.1f} s · mostly "
            f"{EMOJI[track.dominant]} {track.dominant}"
        )
        chart = timeline_chart(rows[rows["face"] == track.face], duration_s)
        st.altair_chart(chart, width="stretch")
    if len(tracks) > MAX_TIMELINES:
        st.caption(f"{len(tracks) - MAX_TIMELINES} more faces are in the CSV.")


def show_result(processed: Processed) -> None:
    result = processed.result
    stem = Path(processed.name).stem or "video"
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
        st.caption(
            f"{len(result.frames):,} frames processed (every {result.step}), "
            f"{result.info.width}×{result.info.height} at {float(result.info.fps):.1f} fps."
        )
    with summary_col:
        show_summary(processed)
    show_timelines(processed)


st.title("Video")
st.caption(
    "Upload a video: Emojify follows every face, charts its emotions over time and puts an emoji over it. "
    "The video is processed in memory and not stored."
)
step, settings = video_settings_ui()
model_path = model_picker_ui(key="video_model")
upload = st.file_uploader(
    "Video with one or more faces",
    type=UPLOAD_TYPES,
    key="video_upload",
    help="MP4, MOV, WebM, MKV or AVI. Phone videos are turned upright.",
)
# After the uploader: it is on screen while the model may still be loading (first visit).
pipeline = load_pipeline(model_path)
if st.session_state.pop(RUNNING, False):
    st.warning(
        "Processing stopped before the end (Cancel, or a setting changed). Press **Start** to run it again."
    )
if upload is None:
    st.session_state.pop(RESULT, None)
    st.info("Upload a video to start. Short clips (under a minute) give the clearest timelines.")
    st.stop()
if pipeline is None:
    st.stop()
try:
    info = probe(io.BytesIO(upload.getvalue()))
except VideoError as err:
    st.error(f"**{upload.name}**: {err}.")
    st.stop()
to_process = math.ceil(info.frames / step)
st.caption(
    f"{info.width}×{info.height}, {float(info.fps):.1f} fps, {info.duration_s:.1f} s: "
    f"{to_process:,} frames to process at frame step {step}, {expected_time(to_process)} "
    f"({EXPECTED_FPS[0]}–{EXPECTED_FPS[1]} frames/s at 640×360 on 2 CPU cores, slower when the server "
    "is busy or the video larger; the progress bar shows the real speed)."
)
if to_process > MANY_FRAMES:
    st.info(
        f"That is a long video: a **Frame step** of {math.ceil(to_process / MANY_FRAMES)} or more is quicker."
    )
made_with = settings_used(step, settings, str(model_path))
start_col, cancel_col, _ = st.columns([1, 1, 4])
if start_col.button("Start", type="primary", key="video_start", icon=":material/play_arrow:"):
    cancel_slot = cancel_col.empty()
    cancel_slot.button("Cancel", key="video_cancel", icon=":material/stop:")  # a click reruns: stops the run
    st.session_state[RUNNING] = True
    try:
        st.session_state[RESULT] = run(upload, pipeline, step, settings, made_with)
    except VideoError as err:
        st.error(f"**{upload.name}**: {err}.")
    st.session_state.pop(RUNNING, None)
    cancel_slot.empty()
processed: Processed | None = st.session_state.get(RESULT)
if processed is not None and processed.file_id == upload.file_id:
    if changed := changed_settings(processed.made_with, made_with):
        st.info(
            f"**{', '.join(changed)}** changed since this result was made: press **Start** to apply "
            "the new settings. The result below is still the earlier one."
        )
    show_result(processed)
