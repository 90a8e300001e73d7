"""The Live page through a real TURN relay (coturn on a loopback port), and its failure message.

Every other browser test connects directly on this machine. Here the app is configured the way
the README tells an owner to (TURN_URL / TURN_USERNAME / TURN_CREDENTIAL in a secrets file,
read through Streamlit's ``secrets.files``), and Chromium is told to use the relay only
(``EMOJIFY_ICE_TRANSPORT_POLICY = "relay"``, which the page hands to the browser as
``iceTransportPolicy``), so the video can only flow browser → coturn → server and back. What the
browser's own getStats() reports is checked, and so is coturn's log.
"""

from __future__ import annotations

import time
from pathlib import Path

import turn_relay

import browser

pytestmark = browser.browser_module(turn_relay.missing_coturn())

from playwright.sync_api import Browser, Page, expect  # noqa: E402  (only once it is known to exist)

#: Connecting, loading TensorFlow in the server and the first frames: slow on 2 CI cores.
FIRST_EMOJI_TIMEOUT_S = 120.0
#: How long the relayed stream is watched once it shows emojis.
WATCH_S = 6.0
#: Frames it must present meanwhile: it keeps flowing (its rate is benchmarks.live_browser --turn's
#: business, and test_browser_live's stall check covers the direct path on a quiet machine).
MIN_PRESENTED_FRAMES = 3
#: Any one step in the page (the component appears once TensorFlow has loaded, on 2 busy cores).
STEP_TIMEOUT_MS = 120_000
#: The Live page promises a reason within ~10 s of Start; the margin is for a busy CI machine.
FAILURE_MESSAGE_TIMEOUT_MS = 30_000


def relay_app(tmp_path: Path, url: str, username: str, credential: str):
    """The app with these TURN settings in a secrets file, as the README shows them, relay only."""
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        f'TURN_URL = "{url}"\nTURN_USERNAME = "{username}"\nTURN_CREDENTIAL = "{credential}"\n'
    )
    env = {"STREAMLIT_SECRETS_FILES": str(secrets), "EMOJIFY_ICE_TRANSPORT_POLICY": "relay"}
    return browser.streamlit_server(env=env)


def open_live(chromium: Browser, app_url: str) -> Page:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.add_init_script(browser.PEER_CONNECTION_HOOK_JS)
    page = context.new_page()
    page.goto(f"{app_url}/live")
    expect(page.get_by_role("heading", name="Live", exact=True)).to_be_visible(timeout=STEP_TIMEOUT_MS)
    page.locator('iframe[title*="webrtc_streamer"]').wait_for()
    return page


def wait_for_first_emoji(page: Page) -> dict:
    deadline = time.monotonic() + FIRST_EMOJI_TIMEOUT_S
    while (probe := browser.read_live_probe(page))["first_emoji_s"] is None:
        assert time.monotonic() < deadline, f"no emojified frame came back through the relay: {probe}"
        time.sleep(0.5)
    return probe


def test_frames_come_back_with_an_emoji_through_the_relay_only(
    tmp_path: Path, turn_server: turn_relay.TurnServer, laughing_chromium: Browser
):
    allocations_before = len(turn_server.allocations())
    with relay_app(tmp_path, turn_server.url, turn_server.username, turn_server.password) as app_url:
        page = open_live(laughing_chromium, app_url)
        try:
            browser.start_live_probe(page)
            before = wait_for_first_emoji(page)
            time.sleep(WATCH_S)
            after = browser.read_live_probe(page)
            stats = browser.read_webrtc_stats(page)
        finally:
            page.context.close()
    presented, sampled = after["frames"] - before["frames"], after["sampled"] - before["sampled"]
    assert presented >= MIN_PRESENTED_FRAMES, f"the relayed video stopped: {presented} frames in {WATCH_S} s"
    assert sampled and (after["emoji"] - before["emoji"]) / sampled >= 0.8, (before, after)
    # The browser was told to use the relay only, and did: its end of the pair is coturn's address.
    assert stats["policy"] == "relay"
    assert stats["local_type"] == "relay", stats
    # The server (aiortc) got the same TURN settings: it offered a relay candidate of its own.
    assert "relay" in stats["remote_types"], stats
    allocations = turn_server.allocations()[allocations_before:]
    assert allocations.count(turn_server.username) >= 2, turn_server.log_text()[-3000:]


def test_wrong_turn_password_is_reported_instead_of_a_spinner(
    tmp_path: Path, turn_server: turn_relay.TurnServer, laughing_chromium: Browser
):
    with relay_app(tmp_path, turn_server.url, turn_server.username, "not-the-password") as app_url:
        page = open_live(laughing_chromium, app_url)
        try:
            browser.start_webrtc(page, timeout_ms=STEP_TIMEOUT_MS)
            message = page.get_by_text("The video cannot connect through the configured TURN server")
            expect(message).to_be_visible(timeout=FAILURE_MESSAGE_TIMEOUT_MS)
            expect(page.get_by_test_id("stAlertContentError")).to_contain_text(
                "refused the username or credential"
            )
            expect(page.get_by_test_id("stException")).to_have_count(0)
        finally:
            page.context.close()
