"""Newest-wins video between streamlit-webrtc's tracks, so a CPU-starved server drops frames, never lags.

streamlit-webrtc connects the Live page's tracks through one process-wide aiortc ``MediaRelay``:
browser's track → relay → the frame-callback track → relay → the encoder that sends the video back.
Each ``MediaRelay.subscribe`` is *buffered* by default: an unbounded queue per consumer. The
callback track hands on a frame for every camera frame (its newest processed one), so when the
VP8 encoder cannot keep up (two busy cores: the server, Chromium and other programs sharing
them) frames pile up in front of it — hundreds were seen queued — and every frame sent back is
older than the one before. The browser plays them seconds late, then its jitter buffer gives up
on frames that old: the picture stands still while the server goes on counting ~21 frames/s.

A video consumer only ever wants the newest frame, so :class:`NewestFrameRelay` subscribes video
tracks unbuffered (aiortc's own newest-wins mode: one slot, a newer frame replaces one not yet
taken); a slow encoder then sends fewer, current frames. Audio stays buffered (a dropped audio
frame is a click). :func:`install` makes it the relay streamlit-webrtc uses; this module is the
one place the project changes streamlit-webrtc's behaviour.

A video consumer also gets each frame *object* once (:class:`ChangedFrameTrack`). When the
frame callback has no new picture yet, streamlit-webrtc's async track hands on its last output
frame again, the same ``av.VideoFrame`` with its ``pts`` overwritten by the newest camera
frame's. aiortc's sender encodes in a worker thread and reads ``pts`` for the RTP timestamp
only after encoding, so the object could be re-stamped while its encode ran and then sent again
with that same stamp: 1 frame in 10 to 3 in 10 left the server with the RTP timestamp of the
frame before (two streams on two cores, a run traced in aiortc's sender). Each such frame is a
new picture to the browser at an instant it has already shown (its renderer drops it) and the
repeats cost the encoder and the link a frame each for a picture the user already has. Passing
each object once sends every processed picture once, with RTP timestamps that always increase.
"""

from __future__ import annotations

import logging

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay, RelayStreamTrack
from av import VideoFrame
from av.frame import Frame

LOGGER = logging.getLogger(__name__)


class ChangedFrameTrack(RelayStreamTrack):
    """An unbuffered relay consumer: each new frame object once, as a copy of its own."""

    def __init__(self, relay: MediaRelay, source: MediaStreamTrack) -> None:
        super().__init__(relay, source, buffered=False)
        self._returned: Frame | None = None

    async def recv(self) -> Frame:
        while (frame := await super().recv()) is self._returned:
            pass
        self._returned = frame
        return own_copy(frame)


def own_copy(frame: Frame) -> Frame:
    """``frame``'s picture and timing in a new object, which no other thread will change.

    streamlit-webrtc's async track re-stamps its last output frame (``pts``, ``time_base``) on
    the event loop while aiortc's sender encodes that very object in a worker thread, and
    PyAV's encode rebases the object's ``pts`` in place (to 1/1,000,000 s) before handing it
    to libvpx. When the re-stamp lands between the two, libvpx gets a 90 kHz ``pts`` read as
    microseconds: 11 times too small, older than the first frame of the encoder aiortc has just
    rebuilt for a new bitrate, so libvpx refuses it ("Invalid data found when processing
    input"), the exception ends aiortc's send loop, and that browser gets no frame again while
    the page goes on processing (two streams on two cores: 5 of 11 runs of 60-90 s).
    A copy (under half a millisecond for 640×480) is the encoder's alone.
    """
    if not isinstance(frame, VideoFrame):
        return frame
    copy = VideoFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name)
    copy.pts, copy.time_base = frame.pts, frame.time_base
    return copy


class NewestFrameRelay(MediaRelay):
    """A ``MediaRelay`` whose video consumers get the newest frame, each one once."""

    def subscribe(self, track: MediaStreamTrack, buffered: bool = True) -> MediaStreamTrack:
        if track.kind != "video":
            return super().subscribe(track, buffered=buffered)
        # aiortc's subscribe registers the source (its proxy only joins the relay on its first
        # recv, which this one never gets); ChangedFrameTrack is the consumer that joins.
        super().subscribe(track, buffered=False)
        return ChangedFrameTrack(self, track)


def install() -> None:
    """Make streamlit-webrtc's process-wide relay a :class:`NewestFrameRelay` (idempotent).

    streamlit-webrtc 0.79 keeps its relay as an attribute of Streamlit's ``Runtime`` singleton
    and creates a plain ``MediaRelay`` there on first use (``streamlit_webrtc.relay``); setting
    ours first is its supported-by-construction way in (the worker takes whatever relay is there).
    Call it before ``webrtc_streamer``; a plain relay already in place (a stream started before
    this ran) is replaced for the streams that start from now on.
    """
    from streamlit.runtime.runtime import Runtime
    from streamlit_webrtc import relay as webrtc_relay
    from streamlit_webrtc.eventloop import get_global_event_loop, loop_context

    runtime = Runtime.instance()
    name = webrtc_relay._SERVER_GLOBAL_RELAY_ATTR_NAME_
    if isinstance(getattr(runtime, name, None), NewestFrameRelay):
        return
    with loop_context(get_global_event_loop()):
        setattr(runtime, name, NewestFrameRelay())
    LOGGER.info("streamlit-webrtc's relay passes the newest video frame only (app.webrtc_relay)")
