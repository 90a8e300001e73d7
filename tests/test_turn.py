"""The TURN allocation check against a real coturn: granted, refused, expired, unreachable.

The same check backs ``python -m app.ice --check`` and the Live page's connection message, so each
failure a deployment can have is tried here on a real server and must come back as words that
name the cause.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from turn_relay import TurnServer

from app import turn_check
from app.emotions import REPO_ROOT
from app.ice import ICE_SERVERS_KEY, TURN_KEYS
from app.turn_check import CONNECT_TIMEOUT_S, TurnCheck, TurnChecks, connection_problem

from browser import free_port, outside_playwright


def check_turn(url: str, username: str | None, credential: str | None, **kwargs: float) -> TurnCheck:
    """The check as the app runs it, off the main thread (see browser.outside_playwright)."""
    return outside_playwright(turn_check.check_turn, url, username, credential, **kwargs)


def test_static_user_is_granted_an_allocation_over_udp_and_tcp(turn_server: TurnServer):
    for url in (turn_server.url, f"{turn_server.url}?transport=tcp"):
        result = check_turn(url, turn_server.username, turn_server.password)
        assert result.ok, result.problem
        assert result.relayed[0] == "127.0.0.1" and "OK, allocation granted" in result.line()
    assert turn_server.allocations().count("emojify") >= 2  # the server's own log agrees


def test_rest_api_credential_is_granted_an_allocation(turn_rest_server: TurnServer):
    username, credential = turn_rest_server.rest_credential(ttl_s=600)
    result = check_turn(turn_rest_server.url, username, credential)
    assert result.ok, result.problem
    assert username in turn_rest_server.allocations()


def test_wrong_password_is_named_as_such(turn_server: TurnServer):
    result = check_turn(turn_server.url, turn_server.username, "not-the-password")
    assert not result.ok
    assert "refused the username or credential (401 Unauthorized)" in result.problem
    assert "TURN_CREDENTIAL" in result.problem


def test_expired_rest_credential_says_when_it_expired(turn_rest_server: TurnServer):
    username, credential = turn_rest_server.rest_credential(ttl_s=-120)
    result = check_turn(turn_rest_server.url, username, credential)
    assert not result.ok
    assert "expired at" in result.problem and "fresh one" in result.problem


def test_unreachable_server_is_reported_with_what_to_check():
    port = free_port()  # nothing listens there
    tcp = check_turn(f"turn:127.0.0.1:{port}?transport=tcp", "u", "p")
    assert not tcp.ok and "could not reach 127.0.0.1" in tcp.problem
    started = time.monotonic()
    udp = check_turn(f"turn:127.0.0.1:{port}", "u", "p", timeout_s=1.0)
    assert not udp.ok and "no answer from 127.0.0.1" in udp.problem and "firewall" in udp.problem
    assert time.monotonic() - started < 30  # bounded by its timeout, not aioice's 30 s of retries
    unknown = check_turn("turn:turn.example.invalid:3478", "u", "p")
    assert not unknown.ok and "does not resolve" in unknown.problem


def test_missing_credential_and_bad_url_are_reported_without_contacting_anything():
    assert "needs a username and a credential" in check_turn("turn:127.0.0.1:9", None, None).problem
    assert "not a TURN URL" in check_turn("stun:127.0.0.1:9", "u", "p").problem


def test_background_checks_answer_once_done_and_are_remembered():
    calls: list[str] = []
    release = threading.Event()

    def slow_check(url: str, username: str | None, credential: str | None) -> TurnCheck:
        calls.append(url)
        release.wait(10)
        return TurnCheck(url, relayed=("127.0.0.1", 50000))

    checks = TurnChecks(max_age_s=60, check=slow_check)
    assert checks.result("turn:a", "u", "p") is None  # started, not blocking
    assert checks.result("turn:a", "u", "p") is None  # still running: not started twice
    release.set()
    for _ in range(100):
        if (answer := checks.result("turn:a", "u", "p")) is not None:
            break
        time.sleep(0.05)
    assert answer is not None and answer.ok
    assert calls == ["turn:a"]


def run_cli(tmp_path: Path, secrets: str) -> subprocess.CompletedProcess:
    """``python -m app.ice --check`` with only ``secrets`` as configuration."""
    path = tmp_path / "secrets.toml"
    path.write_text(secrets)
    environ = {k: v for k, v in os.environ.items() if k not in (*TURN_KEYS, ICE_SERVERS_KEY)}
    return subprocess.run(
        [sys.executable, "-m", "app.ice", "--check", "--secrets", str(path)],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_check_says_the_server_granted_an_allocation(tmp_path: Path, turn_server: TurnServer):
    secrets = (
        f'TURN_URL = "{turn_server.url}, {turn_server.url}?transport=tcp"\n'
        f'TURN_USERNAME = "{turn_server.username}"\nTURN_CREDENTIAL = "{turn_server.password}"\n'
    )
    result = run_cli(tmp_path, secrets)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ICE servers from TURN_URL" in result.stdout
    assert result.stdout.count("OK, allocation granted") == 2


@pytest.mark.parametrize(
    ("secrets", "expected", "code"),
    [
        ('TURN_URL = "{url}"\nTURN_USERNAME = "emojify"\nTURN_CREDENTIAL = "wrong"\n', "401 Unauthorized", 1),
        ('TURN_URL = "{url}"\nTURN_USERNAME = "emojify"\n', "TURN_CREDENTIAL missing", 2),
        ("", "No STUN/TURN server configured", 1),
    ],
    ids=["wrong-password", "half-configured", "nothing-configured"],
)
def test_cli_check_failures(tmp_path: Path, turn_server: TurnServer, secrets: str, expected: str, code: int):
    result = run_cli(tmp_path, secrets.format(url=turn_server.url))
    assert result.returncode == code
    assert expected in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


GRANTED = TurnCheck("turn:relay.example.org:3478", relayed=("203.0.113.7", 50000))
REFUSED = TurnCheck(
    "turn:relay.example.org:3478", problem="relay.example.org:3478 over UDP refused the username"
)


@pytest.mark.parametrize(
    ("turn", "connecting_s", "playing", "expected", "severe"),
    [
        ([REFUSED], 0.5, False, "cannot connect through the configured TURN server", True),
        ([REFUSED], None, False, "refused the username", True),  # the browser gave up: still said
        ([REFUSED], None, True, "Connected directly, but the configured TURN server failed", False),
        ([], CONNECT_TIMEOUT_S + 1, False, "With no TURN server configured", True),
        ([GRANTED], CONNECT_TIMEOUT_S + 1, False, "although the configured TURN server grants", True),
        ([None], CONNECT_TIMEOUT_S + 1, False, "checking the configured TURN server", True),
    ],
    ids=[
        "refused",
        "refused-after-giving-up",
        "refused-but-direct",
        "no-turn-late",
        "turn-ok-late",
        "pending-late",
    ],
)
def test_connection_problem_names_the_cause(turn, connecting_s, playing, expected, severe):
    problem = connection_problem(turn, connecting_s, playing)
    assert problem is not None and expected in problem.message and problem.severe is severe


@pytest.mark.parametrize(
    ("turn", "connecting_s", "playing"),
    [
        ([GRANTED], 2.0, False),
        ([None], 2.0, False),
        ([], 2.0, False),
        ([GRANTED], None, True),
        ([], None, False),
    ],
    ids=["granted-connecting", "pending-connecting", "direct-connecting", "connected", "idle"],
)
def test_no_problem_is_announced_before_there_is_one(turn, connecting_s, playing):
    assert connection_problem(turn, connecting_s, playing) is None
