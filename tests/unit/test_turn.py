"""TURN REST API credentials (draft-uberti-behave-turn-rest-00) and the welcome's iceServers."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from tertulia.config import ConfigError, Settings, load
from tertulia.turn import credential, ice_servers, provider, username


def test_username_is_expiry_colon_participant() -> None:
    assert username("p-1", 3600, 1_795_000_000.7) == "1795003600:p-1"


def test_credential_is_base64_hmac_sha1_of_the_username() -> None:
    # The value coturn computes for `use-auth-secret` (turnserver.conf's documentation).
    expected = base64.b64encode(
        hmac.new(b"s3cret", b"1795003600:p-1", hashlib.sha1).digest()
    ).decode()
    assert credential("s3cret", "1795003600:p-1") == expected
    assert len(base64.b64decode(expected)) == 20  # SHA-1
    assert credential("other", "1795003600:p-1") != expected


def test_ice_servers_split_stun_and_turn() -> None:
    servers = ice_servers(
        "p-9",
        urls=("stun:turn.example.org:3478", "turn:turn.example.org:3478?transport=udp",
              "turns:turn.example.org:443?transport=tcp"),
        secret="s3cret", ttl=600, now=1000.0,
    )
    assert servers[0] == {"urls": ["stun:turn.example.org:3478"]}
    turn = servers[1]
    assert turn["urls"] == ["turn:turn.example.org:3478?transport=udp",
                            "turns:turn.example.org:443?transport=tcp"]
    assert turn["username"] == "1600:p-9"
    assert turn["credential"] == credential("s3cret", "1600:p-9")


def test_provider_without_turn_gives_nothing() -> None:
    assert provider(Settings())("p-1") == []
    configured = Settings(turn_secret="x", turn_urls=("turn:t.example.org:3478",), turn_ttl=60)
    servers = provider(configured, clock=lambda: 100.0)("p-1")
    assert servers[0]["username"] == "160:p-1"


def test_turn_settings() -> None:
    s = load(None, env={"TERTULIA_TURN_URLS": "turn:a.example.org:3478?transport=tcp, "
                        "turns:a.example.org:443?transport=tcp",
                        "TERTULIA_TURN_SECRET": "x"})
    assert s.turn_urls == ("turn:a.example.org:3478?transport=tcp",
                           "turns:a.example.org:443?transport=tcp")
    with pytest.raises(ConfigError, match="turn_secret is not set"):
        load(None, env={"TERTULIA_TURN_URLS": "turn:a.example.org"})
    with pytest.raises(ConfigError, match="no turn: or turns: URL"):
        load(None, env={"TERTULIA_TURN_SECRET": "x"})
    with pytest.raises(ConfigError, match="not a STUN/TURN URL"):
        load(None, env={"TERTULIA_TURN_URLS": "http://a.example.org", "TERTULIA_TURN_SECRET": "x"})
    with pytest.raises(ConfigError, match="turn_ttl"):
        load(None, env={"TERTULIA_TURN_TTL": "0"})
    with pytest.raises(ConfigError, match="stun_server must be host:port"):
        load(None, env={"TERTULIA_STUN_SERVER": "stun.example.org"})
