"""ICE server configuration: empty by default, every documented form, clear errors for typos."""

from __future__ import annotations

import json

import pytest

from app.ice import IceConfigError, ice_config, report, settings_from


def no_network(provider: str, credentials: tuple[str, ...]) -> list[dict]:
    raise AssertionError("no provider may be asked when none is configured")


def test_default_is_an_explicit_empty_list_so_nothing_is_contacted():
    config = ice_config({"PATH": "/usr/bin"}, fetch=no_network)
    assert config.rtc_configuration == {"iceServers": []}
    assert config.source == "none"


def test_json_list_is_used_as_given():
    servers = [{"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"}]
    config = ice_config({"EMOJIFY_ICE_SERVERS": json.dumps(servers)}, fetch=no_network)
    assert config.rtc_configuration == {"iceServers": servers}


def test_explicit_turn_server_with_several_urls():
    settings = {
        "TURN_URL": "turn:turn.example.org:3478, turns:turn.example.org:5349",
        "TURN_USERNAME": "emojify",
        "TURN_CREDENTIAL": "s3cret",
    }
    config = ice_config(settings, fetch=no_network)
    assert config.rtc_configuration == {
        "iceServers": [
            {
                "urls": ["turn:turn.example.org:3478", "turns:turn.example.org:5349"],
                "username": "emojify",
                "credential": "s3cret",
            }
        ]
    }


def test_provider_credentials_go_to_the_provider():
    asked = []

    def fetch(provider: str, credentials: tuple[str, ...]) -> list[dict]:
        asked.append((provider, credentials))
        return [{"urls": "turn:global.turn.twilio.com:3478", "username": "x", "credential": "y"}]

    config = ice_config({"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "tok"}, fetch=fetch)
    assert asked == [("Twilio", ("AC1", "tok"))]
    assert config.source == "Twilio" and len(config.rtc_configuration["iceServers"]) == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"EMOJIFY_ICE_SERVERS": "[{urls: nope"}, "not valid JSON"),
        ({"EMOJIFY_ICE_SERVERS": '{"urls": "turn:x"}'}, "JSON list"),
        ({"EMOJIFY_ICE_SERVERS": '[{"urls": "http://x"}]'}, "is not a stun:"),
        ({"TURN_URL": "turn:x:3478", "TURN_USERNAME": "u"}, "TURN_CREDENTIAL missing"),
        ({"TURN_URL": "turn.example.org", "TURN_USERNAME": "u", "TURN_CREDENTIAL": "p"}, "is not a stun:"),
        ({"CLOUDFLARE_TURN_KEY_ID": "id"}, "Cloudflare is half configured"),
    ],
    ids=["bad-json", "not-a-list", "bad-url", "half-turn", "turn-url-scheme", "half-cloudflare"],
)
def test_wrong_settings_are_reported(settings, message):
    with pytest.raises(IceConfigError, match=message):
        ice_config(settings, fetch=no_network)


def test_relay_policy_reaches_the_browser_configuration_with_the_turn_servers():
    settings = {
        "TURN_URL": "turn:turn.example.org:3478, stun:stun.example.org:3478",
        "TURN_USERNAME": "emojify",
        "TURN_CREDENTIAL": "s3cret",
        "EMOJIFY_ICE_TRANSPORT_POLICY": "relay",
    }
    config = ice_config(settings, fetch=no_network)
    assert config.rtc_configuration["iceTransportPolicy"] == "relay"
    assert config.turn_servers() == [("turn:turn.example.org:3478", "emojify", "s3cret")]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"EMOJIFY_ICE_TRANSPORT_POLICY": "relay"}, "needs a TURN server"),
        ({"EMOJIFY_ICE_TRANSPORT_POLICY": "relay-only"}, "must be one of all, relay"),
    ],
    ids=["relay-without-turn", "unknown-policy"],
)
def test_wrong_transport_policy_is_reported(settings, message):
    with pytest.raises(IceConfigError, match=message):
        ice_config(settings, fetch=no_network)


def test_listing_names_every_url_and_warns_when_no_turn_server_is_set():
    stun_only = ice_config(
        {"EMOJIFY_ICE_SERVERS": '[{"urls": "stun:stun.example.org:3478"}]'}, fetch=no_network
    )
    text, works_behind_nat = report(stun_only)
    assert "stun:stun.example.org:3478" in text and "no TURN server" in text
    assert not works_behind_nat


def test_secrets_files_override_the_environment_as_in_the_app(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('TURN_USERNAME = "from-secrets"\nEMOJIFY_PUBLIC = true\n[section]\nTURN_URL = "x"\n')
    settings = settings_from(
        [tmp_path / "missing.toml", secrets], {"TURN_USERNAME": "env", "TURN_URL": "env"}
    )
    assert settings["TURN_USERNAME"] == "from-secrets"
    assert settings["TURN_URL"] == "env"  # tables are not root-level settings
    assert settings["EMOJIFY_PUBLIC"] is True
