"""A real TURN relay for the tests and benchmarks: Debian's coturn on a loopback port.

Nothing else proves that a frame crosses a relay: a wrong key, a server side that ignores the TURN
settings or an expired credential only show against a real TURN server. ``coturn()`` starts
``turnserver`` in one of the two forms deployments use:

* a static user with a long-term credential (``TURN_URL``/``TURN_USERNAME``/``TURN_CREDENTIAL``);
* the REST-API shared secret (``use-auth-secret``), the form Cloudflare-, Twilio- and
  Hugging Face-style providers hand out: the username is ``<expiry unix time>:<name>`` and the
  credential is ``base64(HMAC-SHA1(secret, username))``, so it expires by itself.

It listens and relays on 127.0.0.1 only, with loopback peers allowed (coturn refuses them by
default, and on one machine every peer is local), writes its log to a file the tests read, and is
stopped on exit. ``missing_coturn()`` is the skip reason where ``turnserver`` is not installed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from browser import free_port, stop

TURNSERVER = "turnserver"
REALM = "emojify.test"
#: coturn opens its listeners and its SQLite user database in well under a second when idle.
START_TIMEOUT_S = 20.0
#: "session 0010...: realm <emojify.test> user <name>: incoming packet ALLOCATE processed, success"
ALLOCATION = re.compile(r"user <([^>]*)>: incoming packet ALLOCATE processed, success")


def missing_coturn() -> str | None:
    """Why no TURN server can be started here (a skip reason), or ``None`` when one can."""
    if shutil.which(TURNSERVER) is None:
        return f"{TURNSERVER} is missing: apt-get install coturn"
    return None


@dataclass(frozen=True)
class TurnServer:
    """A running coturn: where it listens, its credentials and its log."""

    port: int
    log: Path
    username: str | None = None
    password: str | None = None
    secret: str | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}"

    def rest_credential(self, name: str = "emojify", ttl_s: float = 3600.0) -> tuple[str, str]:
        """A REST-API (username, credential) pair valid for ``ttl_s`` seconds (negative: expired)."""
        assert self.secret is not None, "this server uses a static user, not a shared secret"
        username = f"{int(time.time() + ttl_s)}:{name}"
        digest = hmac.new(self.secret.encode(), username.encode(), hashlib.sha1).digest()
        return username, base64.b64encode(digest).decode()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def allocations(self) -> list[str]:
        """Usernames of every allocation the server granted so far, in order."""
        return ALLOCATION.findall(self.log_text())


@contextlib.contextmanager
def coturn(
    folder: Path, *, user: tuple[str, str] | None = None, secret: str | None = None
) -> Iterator[TurnServer]:
    """Run ``turnserver`` with either a static ``user`` (name, password) or a REST ``secret``.

    ``folder`` holds its log, pid file and user database (coturn's default database lives in
    /var/lib/turn, shared with any system coturn).
    """
    if (user is None) == (secret is None):
        raise ValueError("give either a static user or a shared secret")
    port = free_udp_and_tcp_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"turnserver-{port}.log"
    auth = (
        ["--lt-cred-mech", f"--user={user[0]}:{user[1]}"]
        if user
        else ["--use-auth-secret", f"--static-auth-secret={secret}"]
    )
    command = [
        TURNSERVER,
        "-n",  # no configuration file: only these options
        "--listening-ip=127.0.0.1",
        f"--listening-port={port}",
        "--relay-ip=127.0.0.1",
        f"--realm={REALM}",
        *auth,
        "--fingerprint",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--allow-loopback-peers",
        "--log-file=stdout",
        "--simple-log",
        "--verbose",
        f"--userdb={folder / f'turndb-{port}'}",
        f"--pidfile={folder / f'turnserver-{port}.pid'}",
    ]
    server = TurnServer(port, log, *(user or (None, None)), secret=secret)
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_listening(server, process)
        yield server
    finally:
        stop(process)


def free_udp_and_tcp_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (coturn listens on both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both TCP and UDP")


def _wait_until_listening(server: TurnServer, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"turnserver exited with code {process.returncode}:\n{server.log_text()[-3000:]}"
            )
        text = server.log_text()
        if (
            "UDP listener opened" in text
            and "TCP listener opened" in text
            and "DB connection success" in text
        ):
            return
        time.sleep(0.1)  # polling interval, not a wait for something to happen
    raise RuntimeError(
        f"turnserver did not start within {START_TIMEOUT_S:.0f} s:\n{server.log_text()[-3000:]}"
    )
