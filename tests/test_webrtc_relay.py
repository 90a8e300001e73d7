"""The Live page's server-side video path, without a browser: what leaves aiortc's VP8 sender.

Wired as streamlit-webrtc 0.79 wires a SENDRECV stream with ``async_processing=True`` (camera
track → relay → streamlit-webrtc's ``AsyncVideoProcessTrack`` → relay → ``RTCRtpSender``), with
app.webrtc_relay's relay, a real face photo as the camera and aiortc's real sender and VP8
encoder. The frame callback is slower than the camera, as on a busy server, so the async track
keeps handing on its last output frame, re-stamped with the newest camera frame's ``pts``.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import time
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
from aiortc import MediaStreamTrack, RTCRtpCodecParameters, RTCRtpSender
from streamlit_webrtc.process import AsyncVideoProcessTrack

from app.video import video_frame
from app.webrtc_relay import NewestFrameRelay

from browser import outside_playwright

PHOTO = Path(__file__).parent / "fixtures" / "faces" / "london_009_happy.jpg"
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
#: The camera runs far faster than the callback, so most camera frames find no new output.
CAMERA_INTERVAL_S = 0.004
CALLBACK_S = 0.03
SENT_FRAMES = 40
#: streamlit-webrtc joins its worker thread on stop; bounded so a stuck thread cannot hang the suite.
STOP_TIMEOUT_S = 10.0


class Camera(MediaStreamTrack):
    """A webcam playing one real photo: a new frame object each time, ``pts`` in 90 kHz ticks."""

    kind = "video"

    def __init__(self, rgb: np.ndarray) -> None:
        super().__init__()
        self.rgb = rgb
        self.pts = 0

    async def recv(self) -> av.VideoFrame:
        await asyncio.sleep(CAMERA_INTERVAL_S)
        self.pts += 3000
        frame = av.VideoFrame.from_ndarray(self.rgb, format="rgb24")
        frame.pts, frame.time_base = self.pts, fractions.Fraction(1, 90000)
        return frame


class SlowCallback:
    """A frame callback that takes CALLBACK_S and returns a new frame made as pages/live.py makes it."""

    def recv(self, frame: av.VideoFrame) -> av.VideoFrame:
        time.sleep(CALLBACK_S)
        return video_frame(frame.to_ndarray(format="rgb24"))


async def sent_rtp_timestamps(relay: NewestFrameRelay, count: int) -> list[int]:
    """The RTP timestamps (before aiortc's random origin) of the first ``count`` frames sent."""
    rgb = cv2.resize(cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB), (640, 480))
    camera = Camera(rgb)
    processed = AsyncVideoProcessTrack(
        track=relay.subscribe(camera), processor=SlowCallback(), stop_timeout=STOP_TIMEOUT_S
    )
    sender = RTCRtpSender(relay.subscribe(processed), SimpleNamespace(state="new"))
    stamps: list[int] = []
    try:
        while len(stamps) < count:
            encoded = await sender._next_encoded_frame(VP8)  # the step of aiortc's send loop that encodes
            if encoded is not None:
                stamps.append(encoded.timestamp)
    finally:
        processed.stop()
        camera.stop()
    return stamps


def test_every_frame_sent_to_the_browser_has_a_newer_rtp_timestamp_than_the_last():
    stamps = outside_playwright(asyncio.run, sent_rtp_timestamps(NewestFrameRelay(), SENT_FRAMES))
    repeated = [i for i, (a, b) in enumerate(itertools.pairwise(stamps)) if b <= a]
    assert not repeated, (
        f"{len(repeated)} of {len(stamps)} frames left with the RTP timestamp of the frame before "
        f"(or older): {stamps}"
    )


async def frame_after_more_camera_frames(relay: NewestFrameRelay) -> tuple[tuple, tuple]:
    """A frame the encoder's track handed on: its (pts, time_base) then, and once the camera moved on."""
    rgb = cv2.resize(cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB), (640, 480))
    camera = Camera(rgb)
    processed = AsyncVideoProcessTrack(
        track=relay.subscribe(camera), processor=SlowCallback(), stop_timeout=STOP_TIMEOUT_S
    )
    encoder_side = relay.subscribe(processed)
    try:
        # The first frames are the camera's own (rgb24) until the callback's first one (yuv420p).
        while (frame := await encoder_side.recv()).format.name != "yuv420p":
            pass
        handed = (frame.pts, frame.time_base)
        await asyncio.sleep(CALLBACK_S / 2)  # camera frames keep coming; the callback has no new one yet
        return handed, (frame.pts, frame.time_base)
    finally:
        processed.stop()
        camera.stop()


def test_a_frame_handed_to_the_encoder_is_never_restamped_while_it_is_encoded():
    """The encoder's frame is its own: streamlit-webrtc re-stamping its last output must not reach it.

    aiortc encodes in a worker thread; a ``pts`` changed under it once reached libvpx 11 times
    too small, libvpx refused the frame and that browser's video stopped for good.
    """
    handed, later = outside_playwright(asyncio.run, frame_after_more_camera_frames(NewestFrameRelay()))
    assert later == handed, f"the frame being encoded was re-stamped from {handed} to {later}"
