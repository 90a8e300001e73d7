"""Who may do what: public mode for a shared deployment, and the data root typed paths must stay in.

Run locally, Emojify trusts its user: every page, any folder on the machine. Shared as a public
link (Streamlit Community Cloud), visitors must not start trainings that hog the server or read
files off it, so public mode, switched on by ``EMOJIFY_PUBLIC`` (environment or root-level
secret), keeps the Training page and every server-path input behind ``EMOJIFY_OWNER_PASSWORD``
(without a password they are simply off), and confines typed paths to ``EMOJIFY_DATA_ROOT``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
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
