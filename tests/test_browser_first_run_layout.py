"""A server's first run lays a page out as every later run does, so its fragments keep their identity.

Streamlit names a fragment after where it is drawn (its delta path). The first run in a fresh
server shows a "Starting Emojify…" line above the page while the server imports; if that line's
slot existed in the first run only, every element below it moved up one place in the next run, the
Live panel's fragment got a new name, and the browser's half-second redraws of the old one were
dropped ("The fragment with id … does not exist anymore"), which can leave the panel frozen.

The test reads the fragment names the server asks the browser to rerun on a timer (``auto_rerun``
messages on the websocket), before and after a full rerun of a fresh server's Live page.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import browser

pytestmark = pytest.mark.browser
if (_reason := browser.missing_browser()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, WebSocket, expect  # noqa: E402  (only once it is known to exist)
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

#: TensorFlow may be imported by a first run on 2 busy cores.
FIRST_RUN_TIMEOUT_MS = 180_000
SECOND_RUN_TIMEOUT_S = 60.0


def test_the_first_run_in_a_fresh_server_keeps_the_live_panels_fragment_name(
    chromium: Browser, tmp_path: Path
) -> None:
    timed: list[tuple[float, str]] = []

    def record(socket: WebSocket) -> None:
        def received(payload: bytes | str) -> None:
            if isinstance(payload, bytes):
                message = ForwardMsg.FromString(payload)
                if message.HasField("auto_rerun"):
                    timed.append((time.monotonic(), message.auto_rerun.fragment_id))

        socket.on("framereceived", received)

    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        with browser.streamlit_server(env={"EMOJIFY_RUNS_DIR": str(tmp_path / "runs")}) as url:
            page = context.new_page()
            page.on("websocket", record)
            page.goto(f"{url}/live")  # the server's first run
            expect(page.get_by_text("when you press Start")).to_be_visible(timeout=FIRST_RUN_TIMEOUT_MS)
            browser.wait_until_idle(page)
            rerun_at = time.monotonic()
            page.get_by_text("Face boxes").click()  # a full rerun: no longer the server's first
            # Its panel arms its timer again; on a busy machine the run may start seconds later.
            deadline = time.monotonic() + SECOND_RUN_TIMEOUT_S
            while not any(at >= rerun_at for at, _ in timed) and time.monotonic() < deadline:
                page.wait_for_timeout(100)
            browser.wait_until_idle(page)
            page.wait_for_timeout(1000)  # the panel's own redraws after the run, if any
    finally:
        context.close()

    first = {fragment for at, fragment in timed if at < rerun_at}
    later = {fragment for at, fragment in timed if at >= rerun_at}
    assert later, "the second run armed no timed fragment"
    # The first run may also time one the second no longer draws (the model's loading note on a
    # busy machine), but every fragment of the second run must have had its name in the first.
    assert later <= first, f"fragments renamed by the second run: {first} -> {later}"
