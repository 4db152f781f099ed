"""The client address behind trusted proxies (signal/forwarded.py) and its settings."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tertulia.config import ConfigError, load
from tertulia.signal.forwarded import (
    MAX_HOPS,
    Resolved,
    Throttle,
    TrustedProxies,
    parse_address,
    parse_networks,
)
from tertulia.signal.hub import Hub
from tertulia.signal.limits import Limits
from tertulia.signal.rooms import Rooms
from tertulia.signal.tokens import TokenSettings, TokenVerifier

PROXIES = TrustedProxies.parse(["10.0.0.0/24", "2001:db8::1"])


def test_no_trusted_proxies_ignores_the_header() -> None:
    none = TrustedProxies()
    assert none.client_address("10.0.0.2", ["203.0.113.7"]) == Resolved("10.0.0.2")


def test_an_untrusted_peer_cannot_spoof() -> None:
    # A client speaking to the server directly writes whatever it likes: never read.
    assert PROXIES.client_address("198.51.100.9", ["203.0.113.7"]) == Resolved("198.51.100.9")
    assert PROXIES.client_address("198.51.100.9", ["garbage"]) == Resolved("198.51.100.9")


def test_a_trusted_peer_names_the_client() -> None:
    assert PROXIES.client_address("10.0.0.2", ["203.0.113.7"]) == Resolved("203.0.113.7")
    assert PROXIES.client_address("2001:db8::1", [" 2001:db8:ff::5 "]) == Resolved(
        "2001:db8:ff::5")


def test_right_most_untrusted_entry_wins_over_what_the_client_wrote() -> None:
    # The client sent "X-Forwarded-For: 192.0.2.66" itself; the proxy appended its peer.
    assert PROXIES.client_address("10.0.0.2", ["192.0.2.66, 203.0.113.7"]).address == (
        "203.0.113.7")
    # HAProxy's `option forwardfor` adds its own field after the client's: fields join in order.
    assert PROXIES.client_address("10.0.0.2", ["192.0.2.66", "203.0.113.7"]).address == (
        "203.0.113.7")
    # Garbage left of the client is never read, so it is not "malformed".
    assert PROXIES.client_address("10.0.0.2", ["<script>, 203.0.113.7"]) == Resolved(
        "203.0.113.7")


def test_chains_of_trusted_proxies_are_skipped() -> None:
    # client → 10.0.0.3 (trusted) → 10.0.0.2 (trusted, the peer)
    assert PROXIES.client_address("10.0.0.2", ["192.0.2.66, 203.0.113.7, 10.0.0.3"]).address == (
        "203.0.113.7")
    # Every entry trusted: the left-most is the client.
    assert PROXIES.client_address("10.0.0.2", ["10.0.0.9, 10.0.0.3"]).address == "10.0.0.9"


def test_no_header_from_a_trusted_peer_is_the_peer() -> None:
    assert PROXIES.client_address("10.0.0.2", []) == Resolved("10.0.0.2")


@pytest.mark.parametrize(
    "header",
    [
        "unknown",
        "",
        "203.0.113.7:4711",
        "[2001:db8::5]",
        "203.0.113.7, ",
        "203.0.113.300",
        "2001:db8::5, not an address",
    ],
)
def test_malformed_header_from_a_trusted_peer_is_ignored(header: str) -> None:
    assert PROXIES.client_address("10.0.0.2", [header]) == Resolved("10.0.0.2", malformed=True)


def test_an_endless_chain_of_trusted_proxies_is_malformed() -> None:
    chain = ", ".join(["10.0.0.7"] * (MAX_HOPS + 1))
    assert PROXIES.client_address("10.0.0.2", [chain]) == Resolved("10.0.0.2", malformed=True)
    shorter = ", ".join(["10.0.0.7"] * MAX_HOPS)
    assert PROXIES.client_address("10.0.0.2", [shorter]) == Resolved("10.0.0.7")


def test_ipv4_mapped_addresses_are_the_ipv4_address() -> None:
    assert parse_address("::ffff:203.0.113.7") == parse_address("203.0.113.7")
    # A proxy reached over a dual-stack socket is still trusted.
    assert PROXIES.client_address("::ffff:10.0.0.2", ["::ffff:203.0.113.7"]) == Resolved(
        "203.0.113.7")


def test_peer_without_an_ip_address() -> None:
    assert PROXIES.client_address(None, ["203.0.113.7"]) == Resolved("unknown")


def test_networks_parse_or_say_what_is_wrong() -> None:
    assert [str(n) for n in parse_networks(["127.0.0.1", " 10.0.0.0/8", "::1"])] == [
        "127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    with pytest.raises(ValueError, match=r"'proxy\.example' is not an IP address"):
        parse_networks(["proxy.example"])
    with pytest.raises(ValueError, match=r"host bits set; did you mean 10\.0\.0\.0/24"):
        parse_networks(["10.0.0.5/24"])


def test_throttle_reports_at_most_once_per_interval_with_the_count() -> None:
    throttle = Throttle(interval=10.0)
    assert throttle.note(0.0) == 1
    assert [throttle.note(t) for t in (1.0, 2.0, 9.9)] == [0, 0, 0]
    assert throttle.note(10.0) == 4  # three held back, and this one
    assert throttle.note(10.5) == 0
    assert throttle.note(30.0) == 2


def test_settings_from_file_and_environment(tmp_path: Path) -> None:
    assert load(None, env={}).trusted_proxies == ()
    assert load(None, env={}).proxies() == TrustedProxies()
    path = tmp_path / "t.toml"
    path.write_text('trusted_proxies = ["10.0.0.11", "10.0.0.0/24"]\n')
    assert load(path, env={}).trusted_proxies == ("10.0.0.11", "10.0.0.0/24")
    env = {"TERTULIA_TRUSTED_PROXIES": "127.0.0.1, ::1"}
    settings = load(path, env=env)
    assert settings.trusted_proxies == ("127.0.0.1", "::1")  # the environment beats the file
    assert settings.proxies().client_address("::1", ["192.0.2.1"]).address == "192.0.2.1"


@pytest.mark.parametrize("bad", ["haproxy.internal", "10.0.0.5/24", "10.0.0.0/33"])
def test_bad_settings_are_refused_at_start(bad: str) -> None:
    with pytest.raises(ConfigError, match="trusted_proxies: '"):
        load(None, env={"TERTULIA_TRUSTED_PROXIES": bad})


def _hub(now: list[float]) -> Hub:
    return Hub(Rooms(), None, Limits(), TokenVerifier(TokenSettings()), 9,  # type: ignore[arg-type]
               lambda delay, fn: None, clock=lambda: now[0],
               trusted_proxies=TrustedProxies.parse(["10.0.0.2"]))


def test_hub_counts_malformed_headers_and_logs_them_rate_limited(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    hub = _hub(now)
    caplog.set_level(logging.WARNING, logger="tertulia.signal")
    assert hub.client_address("10.0.0.2", ["203.0.113.7"]) == "203.0.113.7"
    assert hub.client_address("198.51.100.9", ["nonsense"]) == "198.51.100.9"  # untrusted
    assert hub.counters["forwarded_malformed"] == 0 and not caplog.records
    for _ in range(50):
        assert hub.client_address("10.0.0.2", ["nonsense"]) == "10.0.0.2"
    assert hub.counters["forwarded_malformed"] == 50
    assert len(caplog.records) == 1  # one line, not fifty
    assert "ignored 1 malformed X-Forwarded-For" in caplog.records[0].getMessage()
    assert "nonsense" not in caplog.text and "10.0.0.2" not in caplog.text  # no content
    now[0] += 10.0
    hub.client_address("10.0.0.2", ["nonsense"])
    assert len(caplog.records) == 2
    assert "ignored 50 malformed" in caplog.records[1].getMessage()
