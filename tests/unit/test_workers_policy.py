"""Bridge workers, the pure part: settings, restart back-off, environment, stats aggregation."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from tertulia.bridge.stats import Rates, stress_level
from tertulia.config import ConfigError, Settings, load
from tertulia.workers import policy


def test_workers_setting_from_flags_and_env_with_auto() -> None:
    assert load(None, env={}).workers == 1  # the default: one process, as before
    assert load(None, env={"TERTULIA_WORKERS": "3"}).workers == 3
    assert load(None, env={}, overrides={"workers": "2"}).workers == 2
    assert load(None, env={"TERTULIA_WORKERS": "auto"}).workers == (os.cpu_count() or 1)


@pytest.mark.parametrize("env", [
    {"TERTULIA_WORKERS": "0"},
    {"TERTULIA_WORKERS": "many"},
    {"TERTULIA_WORKERS": "4", "TERTULIA_MEDIA_PORT": "65534"},
    {"TERTULIA_RELAY_IP": "localhost"},
    {"TERTULIA_WORKER_CONFERENCE_CAP": "-1"},
])
def test_bad_worker_settings_are_refused_with_a_reason(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load(None, env=env)


def test_restart_back_off_doubles_to_a_cap_and_resets_after_a_stable_run() -> None:
    assert [policy.restart_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert policy.restart_delay(10) == policy.RESTART_MAX
    assert policy.restart_delay(10_000) == policy.RESTART_MAX  # no overflow
    assert policy.next_failures(3, ran_for=1.0) == 4
    assert policy.next_failures(3, ran_for=policy.STABLE_AFTER) == 1


@pytest.mark.parametrize(("media_host", "host", "expected"), [
    ("", "0.0.0.0", "127.0.0.1"),
    ("0.0.0.0", "127.0.0.1", "127.0.0.1"),
    ("::", "127.0.0.1", "::1"),
    ("10.1.2.3", "127.0.0.1", "10.1.2.3"),
])
def test_workers_relay_over_the_bound_address_never_the_advertised_one(
        media_host: str, host: str, expected: str) -> None:
    settings = Settings(host=host, media_host=media_host, public_ip="203.0.113.7")
    assert policy.relay_address(settings) == expected
    assert policy.relay_address(replace(settings, relay_ip="10.9.9.9")) == "10.9.9.9"


def test_a_worker_gets_its_port_the_secret_and_no_serve_only_settings() -> None:
    settings = Settings(media_port=10000, public_ip="203.0.113.7", slots=5, region="eu",
                        token_secret="t" * 32, workers=4)
    env = policy.worker_environment(settings, 2, "worker2-1", "s" * 43)
    assert env["TERTULIA_MEDIA_PORT"] == "10002"
    assert env["TERTULIA_PUBLIC_IP"] == "203.0.113.7"
    assert env["TERTULIA_RELAY_IP"] == "127.0.0.1"
    assert env["TERTULIA_HOST"] == "127.0.0.1"
    assert env["TERTULIA_CONTROL_SECRET"] == "s" * 43
    assert env["TERTULIA_BRIDGE_ID"] == "worker2-1"
    assert "TERTULIA_TOKEN_SECRET" not in env and "TERTULIA_WORKERS" not in env
    child = policy.child_environment(
        {"PATH": "/bin", "TERTULIA_CONFIG": "/etc/t.toml", "TERTULIA_TURN_SECRET": "x"}, env)
    assert child["PATH"] == "/bin"
    assert "TERTULIA_CONFIG" not in child and "TERTULIA_TURN_SECRET" not in child
    # what the worker reads back is a valid bridge configuration
    loaded = load(None, env=child)
    assert (loaded.media_port, loaded.slots, loaded.region, loaded.workers) == (10002, 5, "eu", 1)


def test_a_worker_record_points_the_channel_at_serve() -> None:
    record = policy.record(1, "worker1-3", 41000, "default",
                           {"stress_level": 0.25, "endpoints": 7, "conferences": 2,
                            "drain": False})
    assert record.channel_base == "/worker/1"
    assert record.control_url == "ws://127.0.0.1:41000/control/ws"
    assert (record.stress, record.endpoints, record.conferences) == (0.25, 7, 2)


def _stats(**values: object) -> dict[str, object]:
    base: dict[str, object] = {
        "conferences": 1, "endpoints": 2, "largest_conference": 2, "endpoints_connected": 2,
        "packet_rate_download": 100.0, "packet_rate_upload": 150.0, "stress_level": 0.003,
        "rtt_aggregate": 10.0, "region": "default", "drain": False, "graceful_shutdown": False,
        "healthy": True, "packets_out": 1000, "media_port": 10000, "relays": 0,
        "counters": {"dropped-short": 1},
    }
    return {**base, **values}


def test_stats_add_up_over_workers() -> None:
    total = policy.aggregate([
        _stats(),
        _stats(endpoints=4, endpoints_connected=4, largest_conference=5, stress_level=0.01,
               rtt_aggregate=40.0, media_port=10001, packets_out=500, drain=True,
               counters={"dropped-short": 2, "dropped-srtp": 3}),
    ], expected=2)
    assert total["endpoints"] == 6 and total["conferences"] == 2
    assert total["packets_out"] == 1500 and total["packet_rate_upload"] == 300.0
    assert total["stress_level"] == 0.01 and total["largest_conference"] == 5
    assert total["media_port"] == 10000 and total["region"] == "default"
    assert total["drain"] is True and total["healthy"] is True
    assert total["rtt_aggregate"] == 30.0  # weighted by connected endpoints: (20 + 160) / 6
    assert total["counters"] == {"dropped-short": 3, "dropped-srtp": 3}


def test_a_missing_or_unhealthy_worker_makes_the_whole_unhealthy() -> None:
    assert policy.aggregate([_stats()], expected=2)["healthy"] is False
    assert policy.aggregate([_stats(), _stats(healthy=False)], expected=2)["healthy"] is False
    assert policy.aggregate([], expected=2)["healthy"] is False


def test_relay_traffic_counts_in_stress() -> None:
    rates = Rates(packet_rate_download=10_000.0, packet_rate_upload=5_000.0)
    assert stress_level(rates, 0.0, 0.0) == 0.2
    assert stress_level(rates, 0.0, 20_000.0) == 0.5  # relay out makes upload the busier


def test_doctor_checks_every_worker_media_port() -> None:
    import socket

    from tertulia.doctor import run_checks
    from tests.server import free_port

    base = free_port(socket.SOCK_DGRAM)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        try:
            taken.bind(("127.0.0.1", base + 1))
        except OSError:
            pytest.skip("the port above a free one is taken")
        checks = run_checks(Settings(media_port=base, workers=2, port=free_port()))
    ports = [c for c in checks if "media UDP port" in c.line()]
    assert [c.status for c in ports] == ["pass", "fail"]
    assert "worker 1" in ports[1].line()
    assert len([c for c in run_checks(Settings(media_port=base, port=free_port()))
                if "media UDP port" in c.line()]) == 1  # one process: one port, as before
