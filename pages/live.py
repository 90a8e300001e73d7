"""Live page: the webcam through WebRTC, an emoji over every face, the main face's emotion beside it.

Frames arrive on streamlit-webrtc's worker thread, never on this script's thread, so the
callback must not touch ``st.*``. Each browser session owns one LiveProcessor (its tracker) and
one LiveResults (the thread-safe channel to this page), created once in ``session_state`` and
captured by the callback; the model and cascade behind them are shared by all sessions through
``st.cache_resource``. In async mode streamlit-webrtc hands the callback only the newest frame,
so a slow frame makes it skip frames instead of building up lag; app.webrtc_relay does the same
for the video between streamlit-webrtc's tracks (the encoder sends the newest frame, never a queue).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace

import av
import streamlit as st
from streamlit_webrtc import WebRtcMode, WebRtcStreamerState, webrtc_streamer

from app.detection import DetectorSettings
from app.ice import IceConfig, IceConfigError, ice_config
from app.live import LiveProcessor, LiveResults, LiveSettings, LiveStats, Verdict
from app.pipeline import OverlayOptions, Pipeline
from app.turn_check import TurnChecks, connection_problem
from app.video import video_frame
from app.webrtc_relay import install as install_newest_frame_relay
from pages.calibration_ui import live_calibration_ui
from pages.live_panel import status_html, verdict_html
from pages.live_watch import STALLED_AFTER_S, presented_watch
from pages.shared import (
    load_pipeline,
    min_face_slider,
    model_picker_ui,
    secrets_and_environment,
    smoothing_slider,
)

LOGGER = logging.getLogger(__name__)
#: How often the side panel reads the latest result; faster only costs reruns.
PANEL_REFRESH_S = 0.5
#: The WebRTC component's key: streamlit-webrtc keeps the stream's context under it in session_state.
WEBRTC_KEY = "live"
#: Set to 1 (the browser tests do) to draw each frame's verdict as a code the tests can read.
VERDICT_CODE_ENV = "EMOJIFY_LIVE_VERDICT_CODE"


def live_settings_ui() -> LiveSettings:
    """Sidebar controls; the frozen LiveSettings is swapped into the processor in one assignment."""
    defaults = LiveSettings()
    with st.sidebar.expander("Video", expanded=True):
        mirror = st.toggle("Mirror view", value=defaults.mirror, key="live_mirror")
        emoji = st.toggle("Emoji over faces", value=True, key="live_emoji")
        labels = st.toggle("Emotion labels", value=True, key="live_labels")
        boxes = st.toggle("Face boxes", value=False, key="live_boxes")
        smoothing = smoothing_slider(
            defaults.smoothing,
            "live_smoothing",
            "0 shows every frame's raw verdict (flickers); 1 is steadiest (changes show ~0.3 s later).",
        )
    with st.sidebar.expander("Face detection", expanded=False):
        min_neighbors = st.slider(
            "Strictness (min. neighbours)",
            1,
            12,
            DetectorSettings.min_neighbors,
            key="live_min_neighbors",
            help="Lower finds faces in poor light but also in the wallpaper.",
        )
        min_face = min_face_slider(
            defaults.min_face,
            "live_min_face",
            "Smaller finds faces further from the camera and costs more time per frame.",
        )
    return replace(
        defaults,
        mirror=mirror,
        overlay=OverlayOptions(emoji=emoji, boxes=boxes, labels=labels),
        smoothing=smoothing,
        min_neighbors=min_neighbors,
        min_face=min_face,
        verdict_code=os.environ.get(VERDICT_CODE_ENV) == "1",
    )


def session_stream(pipeline: Pipeline, settings: LiveSettings) -> tuple[LiveProcessor, LiveResults]:
    """This session's processor and results channel, kept up to date with the current choices."""
    if "live_processor" not in st.session_state:
        st.session_state.live_processor = LiveProcessor(
            pipeline, settings, background_scan=True, hold_verdicts=True
        )
        st.session_state.live_results = LiveResults()
    processor: LiveProcessor = st.session_state.live_processor
    # Plain attribute swaps: the callback thread sees the old or the new object, never a mix.
    processor.pipeline = pipeline
    processor.settings = settings
    return processor, st.session_state.live_results


def frame_callback(processor: LiveProcessor, results: LiveResults):
    """The per-frame function for streamlit-webrtc; any error leaves the frame as it came."""

    def callback(frame: av.VideoFrame) -> av.VideoFrame:
        try:
            annotated, snapshot = processor.process(frame.to_ndarray(format="rgb24"))
            results.publish(snapshot)
            out = video_frame(annotated)
        except Exception:  # conversion errors: processor.process itself never raises
            LOGGER.exception("live frame conversion failed; passing the frame through")
            return frame
        out.pts, out.time_base = frame.pts, frame.time_base
        return out

    return callback


def rtc_config() -> IceConfig | None:
    """ICE servers from secrets/environment (see app.ice); None after showing what is wrong."""
    try:
        config = ice_config(secrets_and_environment())
    except IceConfigError as err:
        st.error(f"The WebRTC (TURN) configuration is wrong: {err}. See the README's Deploying section.")
        return None
    # Each TURN server's check starts now, on a background thread, so its answer is ready when
    # Start is pressed: the script run that handles Start waits for the server's own ICE gathering.
    for server in config.turn_servers():
        turn_checks().result(*server)
    return config


@st.cache_resource
def turn_checks() -> TurnChecks:
    """The server's TURN checks, shared by every session (one Allocate per server a minute at most)."""
    return TurnChecks()


def show_connection_problem(signalling: bool, playing: bool, ice: IceConfig) -> None:
    """Why the video does not connect, within seconds of Start instead of a spinner forever.

    Shown once Start has been pressed: the answer of each configured TURN server's check (asked
    in the background since the page was drawn, see rtc_config), or a connection still not made
    after a few seconds, with what to check. ``signalling`` is the component's "Start pressed, no
    connection yet".
    """
    if signalling and not playing:
        st.session_state.setdefault("live_connecting_since", time.monotonic())
        st.session_state.live_started = True
    else:
        st.session_state.pop("live_connecting_since", None)
    if not st.session_state.get("live_started"):
        return
    turn = [turn_checks().result(*server) for server in ice.turn_servers()]
    since = st.session_state.get("live_connecting_since")
    problem = connection_problem(turn, None if since is None else time.monotonic() - since, playing)
    if problem is not None:
        (st.error if problem.severe else st.warning)(problem.message)


def stream_state() -> WebRtcStreamerState:
    """The component's state (Start pressed, playing) as of this run, readable before the component.

    streamlit-webrtc keeps its context in ``session_state`` under the component's key and updates
    its state in the component's change callback, which runs before the script, so a panel drawn
    above the ``webrtc_streamer`` call already knows that Start was pressed.
    """
    context = st.session_state.get(WEBRTC_KEY)
    return context.state if context is not None else WebRtcStreamerState(playing=False, signalling=False)


def show_stats(stats: LiveStats, state: WebRtcStreamerState, verdict: Verdict, drawn: int) -> None:
    """The side panel: the verdict on the frames the user sees, and how fast the server keeps up.

    The component's own state decides between idle and connecting (Start pressed, the connection
    not yet made), so the panel never asks for Start while the button already reads Stop.
    ``drawn`` numbers this redraw: the panel element carries it, and the browser's watch
    (pages/live_watch.py) reads it to tell a live panel from one whose redraws have stopped.
    """
    if not state.playing and not state.signalling:
        # Worded to stay true for the moment after Start is pressed: the button reads Stop at once,
        # while the run that draws "Connecting…" comes a server round trip later (0.3-0.9 s).
        st.info(
            "The video starts when you press **Start** and allow the camera. "
            "It goes only to this app's server."
        )
        return
    if not state.playing or stats.frame_age_s is None:
        detail = "The first frames take a few seconds to arrive."
        st.html(status_html("connecting", "Connecting to your camera…", detail, drawn=drawn))
    elif stats.frame_age_s > STALLED_AFTER_S:
        st.warning(
            f"No video frame reached the server for {stats.frame_age_s:.0f} s: the connection "
            "or this computer is too busy. The video resumes by itself; if it doesn't, press Stop "
            "and Start."
        )
    elif verdict.main_face is None:
        detail = (
            "Face the camera in good light; lower <em>Smallest face</em> in the sidebar if you sit far away."
        )
        st.html(status_html("looking", "Looking for a face…", detail, verdict, drawn=drawn))
    else:
        st.html(verdict_html(verdict, drawn=drawn))
    if state.playing:
        show_speed(stats)


def show_speed(stats: LiveStats) -> None:
    """Frames per second and latency as the server measures them, and any failed frames."""
    fps, latency, frames = st.columns(3)
    fps.metric("Frames/s", f"{stats.fps:.0f}", help="Frames processed per second, last 2 s.")
    latency.metric(
        "Latency",
        f"{stats.latency_ms:.0f} ms",
        help="Median time to process a frame over the last 2 s.",
    )
    frames.metric("Frames", f"{stats.frames:,}")
    st.caption(f"Latency p95: {stats.latency_p95_ms:.0f} ms")
    if stats.errors:
        st.warning(f"{stats.errors} frame(s) failed and were shown unprocessed: {stats.last_error}")


st.title("Live")
st.caption(
    "Your webcam, with an emoji over every face, updated as your expression changes. "
    "Frames are processed in memory and never stored."
)
settings = live_settings_ui()
model_path = model_picker_ui(key="live_model")
pipeline = load_pipeline(model_path)
ice = rtc_config()
if pipeline is not None and ice is not None:
    processor, results = session_stream(pipeline, settings)
    video_col, panel_col = st.columns([3, 2])

    @st.fragment(run_every=PANEL_REFRESH_S)
    def live_panel() -> None:
        state = stream_state()
        show_connection_problem(state.signalling, state.playing, ice)
        # The next stream starts afresh: no old tracks, counts or verdict. Only while idle: once
        # Start is pressed the first frames arrive before the component reports playing, and a
        # reset then would throw the new stream's first tracks and counts away.
        if not state.playing and not state.signalling:
            processor.reset()
            results.reset()
        # The verdict is taken here: the frames processed next draw it, and the panel shows it once
        # they reach the screen (until then, the verdict the frames on screen still carry).
        verdict = processor.on_screen(processor.take_verdict()) if state.playing else Verdict()
        drawn = st.session_state.live_panel_drawn = st.session_state.get("live_panel_drawn", 0) + 1
        show_stats(results.read(), state, verdict, drawn)
        live_calibration_ui(processor.calibrator, state.playing, pipeline.classifier.name)

    # The panel first: the run that handles Start waits in webrtc_streamer for the connection's
    # answer (seconds on a busy server), and the panel drawn after it asked for Start meanwhile.
    with panel_col:
        live_panel()
        presented_watch()  # the browser's view: says when the picture stops, revives a frozen panel
    install_newest_frame_relay()
    with video_col:
        webrtc_streamer(
            key=WEBRTC_KEY,
            mode=WebRtcMode.SENDRECV,
            rtc_configuration=ice.rtc_configuration,
            media_stream_constraints={"video": {"width": 640, "height": 480}, "audio": False},
            video_frame_callback=frame_callback(processor, results),
            async_processing=True,
        )
        if not ice.servers:
            st.caption("No STUN/TURN server configured: works on this computer and your local network.")
