"""TensorFlow and aiortc in one process, in the order a server may now meet them.

The server imports streamlit-webrtc (aiortc) only once its first page is drawn, or when the Live
page first runs, so TensorFlow (Grad-CAM, a model served with Keras, a training) can come first.
TensorFlow's bundled crypto libraries then clash with aiortc's SRTP library and the first SRTP
session segfaults the whole process; app.keras_env loads that library before TensorFlow.
"""

from __future__ import annotations

import subprocess
import sys

from app.emotions import REPO_ROOT

#: As in the server: ``app`` first (every entry point imports it), TensorFlow, then the WebRTC
#: stack and an SRTP round trip, which is what a Live stream does first.
TENSORFLOW_THEN_AIORTC = """
import os
import app
from app.keras_env import import_keras
import_keras()
import pylibsrtp, streamlit_webrtc
key, rtp = os.urandom(30), bytes([0x80, 8, 0, 1, 0, 0, 0, 1, 0x12, 0x34, 0x56, 0x78]) + b"x" * 40
out, back = (pylibsrtp.Session(policy=pylibsrtp.Policy(key=key, ssrc_type=t))
             for t in (pylibsrtp.Policy.SSRC_ANY_OUTBOUND, pylibsrtp.Policy.SSRC_ANY_INBOUND))
assert back.unprotect(out.protect(rtp)) == rtp
print("round trip")
"""


def test_aiortc_works_in_a_process_that_imported_tensorflow_first() -> None:
    done = subprocess.run(
        [sys.executable, "-c", TENSORFLOW_THEN_AIORTC],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    assert "round trip" in done.stdout
