"""Does a configured TURN server grant an allocation with its credential? Asked the way WebRTC asks.

A wrong key, a closed port or an expired short-lived credential otherwise shows only as a Live page
that never connects. ``check_turn`` sends a real TURN Allocate request (RFC 8656, long-term
credential) with aioice's client (aiortc's ICE library, so no new dependency and the same code the
server's own relay candidate comes from), then frees the allocation, and says in words what
failed and what to check. ``TurnChecks`` runs these checks on a background thread for the Live
page, which must not block on the network, and remembers each answer for a while.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

#: Long enough for a TURN server across the world (aioice retransmits after 0.5, 1.5 and 3.5 s),
#: short enough that the Live page reports an unreachable server within 10 s of Start.
CHECK_TIMEOUT_S = 4.0
#: How long the Live page trusts an answer before asking the server again.
CHECK_MAX_AGE_S = 60.0
TURN_URL = re.compile(
    r"^(?P<scheme>turns?):(?P<host>\[[^\]]+\]|[^:?]+)(?::(?P<port>\d+))?(?:\?transport=(?P<transport>udp|tcp))?$"
)
#: A REST-API username (coturn's use-auth-secret, Cloudflare, Twilio): "<expiry unix time>[:name]".
REST_USERNAME = re.compile(r"^(\d{9,})(?::|$)")


@dataclass(frozen=True)
class TurnCheck:
    """One TURN URL's answer: ``relayed`` is the relay address it granted, else ``problem`` says why not."""

    url: str
    relayed: tuple[str, int] | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.relayed is not None

    def line(self) -> str:
        if self.ok:
            host, port = self.relayed
            return f"{self.url}: OK, allocation granted (relay address {host}:{port})"
        return f"{self.url}: FAILED, {self.problem}"


def check_turn(
    url: str, username: str | None, credential: str | None, timeout_s: float = CHECK_TIMEOUT_S
) -> TurnCheck:
    """Ask the TURN server at ``url`` for an allocation with these credentials; never raises."""
    match = TURN_URL.match(url.strip())
    if match is None:
        return TurnCheck(url, problem="not a TURN URL (turn:HOST[:PORT][?transport=udp|tcp] or turns:…)")
    secure = match["scheme"] == "turns"
    host = match["host"].strip("[]")
    port = int(match["port"] or (5349 if secure else 3478))
    transport = "tcp" if secure else (match["transport"] or "udp")
    where = f"{host}:{port} over {'TLS' if secure else transport.upper()}"
    if not username or not credential:
        return TurnCheck(url, problem="a TURN server needs a username and a credential")
    try:
        relayed = asyncio.run(_allocate((host, port), username, credential, transport, secure, timeout_s))
    except TimeoutError:
        return TurnCheck(
            url,
            problem=f"no answer from {where} within {timeout_s:.0f} s: check the host name and port, "
            f"that the TURN server is running, and that no firewall blocks {transport.upper()} port {port}",
        )
    except socket.gaierror:
        return TurnCheck(url, problem=f"the host name {host!r} does not resolve: check the TURN URL")
    except ssl.SSLError as err:
        return TurnCheck(
            url, problem=f"the TLS handshake with {where} failed ({err.reason or err}): check the certificate"
        )
    except OSError as err:  # refused, unreachable network
        return TurnCheck(
            url, problem=f"could not reach {where} ({err.strerror or err}): check the host name and port"
        )
    except Exception as err:  # aioice's TransactionFailed and the like: the server answered "no"
        return TurnCheck(url, problem=_refusal(err, username, where))
    return TurnCheck(url, relayed=relayed)


async def _allocate(
    server: tuple[str, int], username: str, credential: str, transport: str, secure: bool, timeout_s: float
) -> tuple[str, int]:
    from aioice import turn

    context = ssl.create_default_context() if secure else None
    endpoint, _ = await asyncio.wait_for(
        turn.create_turn_endpoint(
            asyncio.DatagramProtocol, server, username, credential, ssl=context, transport=transport
        ),
        timeout_s,
    )
    relayed = endpoint.get_extra_info("sockname")
    endpoint.close()  # frees the allocation (a Refresh with lifetime 0) instead of leaving it for 10 min
    await asyncio.sleep(0.05)  # let that request go out before the loop closes
    return relayed[0], relayed[1]


def _refusal(err: Exception, username: str, where: str) -> str:
    """Words for a TURN error response (RFC 8656 section 18, RFC 8489 section 14.8)."""
    response = getattr(err, "response", None)
    code, reason = (response.attributes.get("ERROR-CODE") if response is not None else None) or (
        None,
        str(err),
    )
    if code == 401:
        expiry = REST_USERNAME.match(username)
        if expiry and int(expiry[1]) < time.time():
            when = datetime.fromtimestamp(int(expiry[1]), UTC).strftime("%Y-%m-%d %H:%M UTC")
            return (
                f"{where} refused the credential: it expired at {when} (a REST-API username starts "
                "with its expiry time): fetch a fresh one from your TURN provider"
            )
        return (
            f"{where} refused the username or credential (401 Unauthorized): check TURN_USERNAME and "
            "TURN_CREDENTIAL (or your provider's keys); a shared-secret (REST-API) server needs a "
            "credential made from its secret"
        )
    if code == 441:
        return (
            f"{where} refused the credential (441 Wrong Credentials): check TURN_USERNAME and TURN_CREDENTIAL"
        )
    if code == 486:
        return f"{where} has no room for another allocation for this user (486 Allocation Quota Reached)"
    if code == 508:
        return f"{where} is out of relay ports (508 Insufficient Capacity)"
    return f"{where} refused the allocation ({code or 'error'}: {reason})"


class TurnChecks:
    """TURN checks run on daemon threads and remembered for ``max_age_s``; shared by all sessions.

    ``result`` never blocks: it starts a check when there is no fresh answer and meanwhile returns
    the last one (``None`` before the first), so a page that polls it shows each answer as soon as
    it exists.
    """

    def __init__(
        self,
        max_age_s: float = CHECK_MAX_AGE_S,
        check: Callable[[str, str | None, str | None], TurnCheck] = check_turn,
    ) -> None:
        self._max_age_s = max_age_s
        self._check = check
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str | None, str | None], tuple[float, TurnCheck]] = {}
        self._running: set[tuple[str, str | None, str | None]] = set()

    def result(self, url: str, username: str | None, credential: str | None) -> TurnCheck | None:
        key = (url, username, credential)
        with self._lock:
            answer = self._answers.get(key)
            if answer is not None and time.monotonic() - answer[0] < self._max_age_s:
                return answer[1]
            if key not in self._running:
                self._running.add(key)
                threading.Thread(target=self._run, args=(key,), daemon=True, name="turn-check").start()
            return answer[1] if answer is not None else None

    def _run(self, key: tuple[str, str | None, str | None]) -> None:
        try:
            answer = self._check(*key)
        except Exception as err:  # check_turn never raises; a replacement might
            answer = TurnCheck(key[0], problem=f"the check itself failed: {err}")
        with self._lock:
            self._answers[key] = (time.monotonic(), answer)
            self._running.discard(key)


#: Seconds after Start without a connection before the Live page says it could not connect: the
#: issue's promise is a message within 10 s, and a healthy connection on 2 busy cores takes 1-4 s.
CONNECT_TIMEOUT_S = 8.0


@dataclass(frozen=True)
class ConnectionProblem:
    """What the Live page says about a connection that fails or failed; ``severe`` blocks video."""

    message: str
    severe: bool = True


def connection_problem(
    turn: list[TurnCheck | None], connecting_s: float | None, playing: bool
) -> ConnectionProblem | None:
    """Why the video does not (or, for visitors, would not) connect, from what is known now.

    ``turn`` holds the latest check of each configured TURN URL (``None`` while the first runs),
    ``connecting_s`` how long this Start has been waiting for a connection (``None`` when not
    waiting), ``playing`` whether the browser is connected.
    """
    failed = [check for check in turn if check is not None and not check.ok]
    if failed:
        causes = "; ".join(check.problem for check in failed)  # each names its host, port and transport
        if playing:
            return ConnectionProblem(
                f"Connected directly, but the configured TURN server failed its check ({causes}). "
                "Visitors behind NAT (e.g. on Streamlit Community Cloud) will get no video until it "
                "is fixed; `python -m app.ice --check` on the server tests it again.",
                severe=False,
            )
        return ConnectionProblem(
            f"The video cannot connect through the configured TURN server. {causes}. "
            "`python -m app.ice --check` on the server tests it again."
        )
    if playing or connecting_s is None or connecting_s < CONNECT_TIMEOUT_S:
        return None
    waited = f"No video connection after {connecting_s:.0f} s"
    if not turn:
        return ConnectionProblem(
            f"{waited}. With no TURN server configured only direct connections work (this computer "
            "or your local network); behind NAT, e.g. on Streamlit Community Cloud, configure one "
            '(README: "Share it: public mode, TURN, Streamlit Community Cloud").'
        )
    if any(check is None for check in turn):
        return ConnectionProblem(f"{waited}; checking the configured TURN server…")
    return ConnectionProblem(
        f"{waited}, although the configured TURN server grants allocations: check that its relay "
        "ports (UDP 49152-65535 by default) are open to the browser and to this server, then press "
        "Stop and Start."
    )
