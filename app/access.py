"""Who may do what: public mode for a shared deployment, and the data root typed paths must stay in.

Run locally, Emojify trusts its user: every page, any folder on the machine. Shared as a public
link (Streamlit Community Cloud), visitors must not start trainings that hog the server or read
files off it, so public mode, switched on by ``EMOJIFY_PUBLIC`` (environment or root-level
secret), keeps the Training page and every server-path input behind ``EMOJIFY_OWNER_PASSWORD``
(without a password they are simply off), and confines typed paths to ``EMOJIFY_DATA_ROOT``.
Wrong passwords slow the next ones down, per session and for the whole server (:class:`Throttle`).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PUBLIC_KEY = "EMOJIFY_PUBLIC"
PASSWORD_KEY = "EMOJIFY_OWNER_PASSWORD"
DATA_ROOT_KEY = "EMOJIFY_DATA_ROOT"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def public_switch(value: Any) -> tuple[bool, str]:
    """Whether ``value`` (a TOML secret keeps its type; the environment gives text) means public.

    Fails closed: a value that is neither a yes nor a no spelling switches public mode *on* and
    comes back with a sentence for the owner, since a deployment whose owner meant "public" and
    misspelt it must not hand visitors the Training page and the server's folders.
    """
    if isinstance(value, bool):
        return value, ""
    text = str(value).strip().lower()
    if isinstance(value, int | float) and value in (0, 1):
        text = str(int(value))
    if text in _TRUE:
        return True, ""
    if text in _FALSE:
        return False, ""
    return True, (
        f"{PUBLIC_KEY} = {value!r} is neither on (true, 1, yes, on) nor off (false, 0, no, off): "
        "public mode is on until the setting is fixed."
    )


class AccessError(PermissionError):
    """A visitor asked for something public mode does not allow; the message says what."""


@dataclass(frozen=True)
class Access:
    """The deployment's access rules, read once from environment and secrets."""

    public: bool = False
    password: str = ""
    data_root: Path | None = None
    #: What is wrong with the settings, for the owner to fix (e.g. a public switch that is neither
    #: yes nor no); the rules above already fail closed on it.
    problem: str = ""

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Access:
        public, problem = public_switch(settings.get(PUBLIC_KEY, False))
        root = str(settings.get(DATA_ROOT_KEY) or "").strip()
        password = str(settings.get(PASSWORD_KEY) or "")
        return cls(public, password, Path(root).resolve() if root else None, problem)

    @property
    def owner_features_available(self) -> bool:
        """Whether the owner can unlock training and server paths at all in this deployment."""
        return not self.public or bool(self.password)

    def unlocks(self, attempt: str) -> bool:
        """Whether ``attempt`` is the owner's password (constant-time comparison)."""
        return bool(self.password) and hmac.compare_digest(attempt.encode(), self.password.encode())

    def resolve(self, typed: str | Path) -> Path:
        """A path typed into a page, made absolute; outside the data root it is refused.

        Locally without a data root any path is allowed; with one, and always in public mode,
        the path must lie inside it (symlinks and ``..`` resolved first, so they cannot escape).
        """
        path = Path(typed).expanduser()
        if self.data_root is not None and not path.is_absolute():
            path = self.data_root / path
        path = path.resolve()
        if self.data_root is None:
            if self.public:
                raise AccessError(
                    f"this public deployment reads no server folders ({DATA_ROOT_KEY} is not set)"
                )
            return path
        if not path.is_relative_to(self.data_root):
            raise AccessError(f"{typed} is outside the data folder {self.data_root}")
        return path


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class Throttle:
    """Exponential back-off for password guesses: per session, and for the whole server.

    The first ``free`` wrong passwords cost nothing (owners mistype); after that each one doubles
    the wait before the next attempt is even checked, from ``base_s`` up to ``cap_s``. The server-
    wide count is what stops a guesser who opens a new session (a new websocket) per guess: with
    the defaults, one guess per five minutes at most, about 300 a day. Counts are forgotten after
    ``forget_s`` without a failure and on the right password. Thread-safe: every session's script
    thread shares one instance. ``clock`` is injectable for tests (seconds, monotonic).
    """

    def __init__(
        self,
        *,
        free: int = 5,
        base_s: float = 1.0,
        cap_s: float = 300.0,
        forget_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.base_s, self.cap_s, self.forget_s = free, base_s, cap_s, forget_s
        self._clock = clock
        self._lock = threading.Lock()
        self._server = _Failures()
        self._sessions: dict[str, _Failures] = {}

    def wait_s(self, session: str) -> float:
        """Seconds before ``session`` may try a password again: 0 when it may now."""
        with self._lock:
            now = self._clock()
            return max(self._wait(self._server, now), self._wait(self._sessions.get(session), now))

    def failed(self, session: str) -> tuple[int, int]:
        """Count a wrong password of ``session``; returns (its failures, the server's) in a row."""
        with self._lock:
            now = self._clock()
            # Few entries ever: past ``free`` failures the server-wide wait admits one guess at a time.
            self._sessions = {key: old for key, old in self._sessions.items() if not self._stale(old, now)}
            record = self._sessions.setdefault(session, _Failures())
            for failures in (record, self._server):
                if self._stale(failures, now):
                    failures.count = 0
                failures.count += 1
                failures.last = now
            return record.count, self._server.count

    def succeeded(self, session: str) -> None:
        """The right password: the owner is back, so earlier failures no longer slow anyone down."""
        with self._lock:
            self._sessions.pop(session, None)
            self._server = _Failures()

    def _stale(self, failures: _Failures, now: float) -> bool:
        return now - failures.last > self.forget_s

    def _wait(self, failures: _Failures | None, now: float) -> float:
        if failures is None or failures.count < self.free or self._stale(failures, now):
            return 0.0
        delay = min(self.cap_s, self.base_s * 2 ** (failures.count - self.free))
        return max(0.0, failures.last + delay - now)
