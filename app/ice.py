"""Which STUN/TURN servers the Live page's WebRTC connection may use, from configuration only.

On localhost and a LAN, browser and server reach each other directly, so the default is an
explicit empty list. ``None`` would not do: streamlit-webrtc then goes looking for Cloudflare,
Twilio, Hugging Face or Google servers on its own. Behind NAT, as on Streamlit Community Cloud,
a TURN server is required; it is configured through environment variables or the root level of
``.streamlit/secrets.toml`` (same names), checked in this order:

``EMOJIFY_ICE_SERVERS``
    A JSON list of RTCIceServer objects, used as is:
    ``[{"urls": ["turn:turn.example.com:3478"], "username": "u", "credential": "p"}]``.
``TURN_URL``, ``TURN_USERNAME``, ``TURN_CREDENTIAL``
    One TURN server (several URLs may be given, comma-separated).
``CLOUDFLARE_TURN_KEY_ID`` + ``CLOUDFLARE_TURN_KEY_API_TOKEN``, ``TWILIO_ACCOUNT_SID`` +
``TWILIO_AUTH_TOKEN``, ``HF_TOKEN``
    streamlit-webrtc's own providers: short-lived credentials are fetched from the provider
    (Twilio also needs ``pip install twilio``).

Nothing here touches the network unless one of the provider pairs is configured.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ICE_SERVERS_KEY = "EMOJIFY_ICE_SERVERS"
TURN_KEYS = ("TURN_URL", "TURN_USERNAME", "TURN_CREDENTIAL")
#: (description, key pair) for streamlit-webrtc's credential providers, in its own order.
PROVIDERS = (
    ("Cloudflare", ("CLOUDFLARE_TURN_KEY_ID", "CLOUDFLARE_TURN_KEY_API_TOKEN")),
    ("Twilio", ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")),
    ("Hugging Face", ("HF_TOKEN",)),
)


class IceConfigError(ValueError):
    """The ICE configuration is present but unusable (bad JSON, half a TURN setting, ...)."""


@dataclass(frozen=True)
class IceConfig:
    """The RTCConfiguration to hand to ``webrtc_streamer`` and where it came from."""

    servers: tuple[dict[str, Any], ...]
    source: str

    @property
    def rtc_configuration(self) -> dict[str, Any]:
        return {"iceServers": [dict(server) for server in self.servers]}


def ice_config(
    settings: Mapping[str, Any], fetch: Callable[[str, tuple[str, ...]], list[dict]] | None = None
) -> IceConfig:
    """The ICE servers ``settings`` (environment merged with secrets) ask for.

    ``fetch(provider, credentials)`` gets a provider's servers; the default asks streamlit-webrtc.
    Raises IceConfigError for a setting that is present but wrong, so a typo is reported rather
    than silently leaving remote users without video.
    """
    value = _text(settings, ICE_SERVERS_KEY)
    if value:
        return IceConfig(_parse_servers(value), ICE_SERVERS_KEY)
    turn = {key: _text(settings, key) for key in TURN_KEYS}
    if any(turn.values()):
        missing = [key for key, text in turn.items() if not text]
        if missing:
            raise IceConfigError(f"TURN is half configured: {', '.join(missing)} missing")
        urls = [url.strip() for url in turn["TURN_URL"].split(",") if url.strip()]
        _check_urls(urls)
        server = {"urls": urls, "username": turn["TURN_USERNAME"], "credential": turn["TURN_CREDENTIAL"]}
        return IceConfig((server,), "TURN_URL")
    for provider, keys in PROVIDERS:
        credentials = tuple(_text(settings, key) for key in keys)
        if all(credentials):
            servers = (fetch or _fetch_from_provider)(provider, credentials)
            return IceConfig(tuple(dict(server) for server in servers), provider)
        if any(credentials):
            raise IceConfigError(f"{provider} is half configured: set both {' and '.join(keys)}")
    return IceConfig((), "none")


def _text(settings: Mapping[str, Any], key: str) -> str:
    value = settings.get(key)
    return value.strip() if isinstance(value, str) else ""


def _parse_servers(value: str) -> tuple[dict[str, Any], ...]:
    try:
        servers = json.loads(value)
    except json.JSONDecodeError as err:
        raise IceConfigError(f"{ICE_SERVERS_KEY} is not valid JSON: {err}") from err
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise IceConfigError(f'{ICE_SERVERS_KEY} must be a JSON list of objects with "urls"')
    for server in servers:
        urls = server["urls"]
        _check_urls([urls] if isinstance(urls, str) else urls)
    return tuple(servers)


def _check_urls(urls: list[str]) -> None:
    if not urls:
        raise IceConfigError("an ICE server needs at least one URL")
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
            raise IceConfigError(f"{url!r} is not a stun:, stuns:, turn: or turns: URL")


def _fetch_from_provider(provider: str, credentials: tuple[str, ...]) -> list[dict]:
    """Short-lived credentials from streamlit-webrtc's provider helpers (network access)."""
    from streamlit_webrtc import credentials as webrtc_credentials

    getters = {
        "Cloudflare": webrtc_credentials.get_cloudflare_ice_servers,
        "Twilio": webrtc_credentials.get_twilio_ice_servers,
        "Hugging Face": webrtc_credentials.get_hf_ice_servers,
    }
    try:
        return list(getters[provider](*credentials))
    except Exception as err:  # ImportError (twilio), network errors, refused credentials
        raise IceConfigError(f"could not get TURN credentials from {provider}: {err}") from err
