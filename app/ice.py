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

``EMOJIFY_ICE_TRANSPORT_POLICY = "relay"`` makes the browser use the TURN relay only (its
``iceTransportPolicy``), the way to prove on one machine that the relay works.

Nothing here touches the network unless one of the provider pairs is configured.
``python -m app.ice --check`` prints the servers these settings give and asks each TURN server for
an allocation (app.turn_check), so a deployment can be verified before visitors arrive.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.turn_check import TurnCheck

ICE_SERVERS_KEY = "EMOJIFY_ICE_SERVERS"
TRANSPORT_POLICY_KEY = "EMOJIFY_ICE_TRANSPORT_POLICY"
TRANSPORT_POLICIES = ("all", "relay")
#: Where ``streamlit run`` reads secrets by default, later files winning (Streamlit's secrets.files).
DEFAULT_SECRETS_FILES = (Path.home() / ".streamlit" / "secrets.toml", Path(".streamlit") / "secrets.toml")
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
    transport_policy: str = "all"

    @property
    def rtc_configuration(self) -> dict[str, Any]:
        """For both ends: the browser reads ``iceTransportPolicy``; the server (aiortc, through
        streamlit-webrtc) takes only the ICE servers, and needs them behind NAT too."""
        configuration: dict[str, Any] = {"iceServers": [dict(server) for server in self.servers]}
        if self.transport_policy != "all":
            configuration["iceTransportPolicy"] = self.transport_policy
        return configuration

    def turn_servers(self) -> list[tuple[str, str | None, str | None]]:
        """Every TURN URL with its (username, credential), in order."""
        return [
            (url, server.get("username"), server.get("credential"))
            for server in self.servers
            for url in _urls(server)
            if url.startswith(("turn:", "turns:"))
        ]


def ice_config(
    settings: Mapping[str, Any], fetch: Callable[[str, tuple[str, ...]], list[dict]] | None = None
) -> IceConfig:
    """The ICE servers ``settings`` (environment merged with secrets) ask for.

    ``fetch(provider, credentials)`` gets a provider's servers; the default asks streamlit-webrtc.
    Raises IceConfigError for a setting that is present but wrong, so a typo is reported rather
    than silently leaving remote users without video.
    """
    policy = _text(settings, TRANSPORT_POLICY_KEY).lower() or "all"
    if policy not in TRANSPORT_POLICIES:
        raise IceConfigError(
            f"{TRANSPORT_POLICY_KEY} must be one of {', '.join(TRANSPORT_POLICIES)}, not {policy!r}"
        )
    config = _servers(settings, fetch)
    if policy == "relay" and not config.turn_servers():
        raise IceConfigError(f"{TRANSPORT_POLICY_KEY} = relay needs a TURN server, and none is configured")
    return IceConfig(config.servers, config.source, policy)


def _servers(
    settings: Mapping[str, Any], fetch: Callable[[str, tuple[str, ...]], list[dict]] | None
) -> IceConfig:
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
        _check_urls(_urls(server))
    return tuple(servers)


def _urls(server: Mapping[str, Any]) -> list[str]:
    urls = server["urls"]
    return [urls] if isinstance(urls, str) else list(urls)


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


def settings_from(secrets_files: Sequence[Path], environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The environment overlaid with the root-level settings of ``secrets_files`` (later ones win),
    as the app reads them through ``st.secrets``; missing files are skipped."""
    settings: dict[str, Any] = dict(environ)
    for path in secrets_files:
        if path.is_file():
            with path.open("rb") as file:
                table = tomllib.load(file)
            settings.update({key: value for key, value in table.items() if not isinstance(value, dict)})
    return settings


def report(
    config: IceConfig, check: Callable[[str, str | None, str | None], TurnCheck] | None = None
) -> tuple[str, bool]:
    """What ``python -m app.ice`` prints for ``config``, and whether it will work behind NAT.

    With ``check`` (``app.turn_check.check_turn``), each TURN URL is asked for an allocation and the
    answer is printed; the result is True only when every one granted it.
    """
    if not config.servers:
        return (
            "No STUN/TURN server configured: the browser and this server connect directly "
            "(this computer or the local network only).",
            False,
        )
    policy = "" if config.transport_policy == "all" else f", transport policy {config.transport_policy}"
    lines = [f"ICE servers from {config.source}{policy}:"]
    for server in config.servers:
        user = f" (username {server['username']!r})" if server.get("username") else ""
        lines.extend(f"  {url}{user}" for url in _urls(server))
    turn = config.turn_servers()
    if not turn:
        lines.append(
            "no TURN server: visitors behind NAT (e.g. on Streamlit Community Cloud) will get no video"
        )
        return "\n".join(lines), False
    if check is None:
        return "\n".join(lines), True
    lines.append("TURN allocation check:")
    results = [check(*server) for server in turn]
    lines.extend(f"  {result.line()}" for result in results)
    return "\n".join(lines), all(result.ok for result in results)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit code with --check: 0 when every TURN server granted an allocation, 1 when none is
    configured or one failed (the Live page would not work behind NAT); 2 for a configuration error."""
    parser = argparse.ArgumentParser(
        prog="python -m app.ice",
        description="Show the STUN/TURN servers the Live page will use (from the environment and "
        "secrets.toml, as the app reads them); --check asks each TURN server for an allocation.",
    )
    parser.add_argument("--check", action="store_true", help="ask each TURN server for an allocation")
    parser.add_argument(
        "--secrets",
        type=Path,
        action="append",
        help="a secrets.toml to read, repeatable (default: ~/.streamlit/secrets.toml, then "
        ".streamlit/secrets.toml here)",
    )
    args = parser.parse_args(argv)
    try:
        config = ice_config(settings_from(args.secrets or DEFAULT_SECRETS_FILES))
    except (IceConfigError, tomllib.TOMLDecodeError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    check = None
    if args.check:
        from app.turn_check import check_turn

        check = check_turn
    text, ok = report(config, check)
    print(text)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
