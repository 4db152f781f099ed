"""Bridge workers of `tertulia serve --workers K`, the pure part: what each worker is told,
when a dead one is restarted, and how the workers' stats add up. No I/O, no asyncio.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from tertulia.config import ENV_PREFIX, Settings
from tertulia.registry import BridgeRecord

RESTART_BASE = 0.5  # seconds before the first restart of a worker that died
RESTART_MAX = 30.0  # the back-off stops growing here
STABLE_AFTER = 60.0  # a worker that ran this long before dying restarts at RESTART_BASE again


def restart_delay(consecutive_failures: int) -> float:
    """Seconds to wait before restarting a worker that died ``consecutive_failures`` times in a
    row without running ``STABLE_AFTER`` seconds in between: 0.5, 1, 2, 4 ... at most 30."""
    exponent = min(max(0, consecutive_failures - 1), 16)  # 2**16 * 0.5 s is far past the cap
    return min(RESTART_MAX, RESTART_BASE * float(2**exponent))


def next_failures(previous: int, ran_for: float) -> int:
    """The consecutive-failure count after a worker that ran ``ran_for`` seconds died."""
    return 1 if ran_for >= STABLE_AFTER else previous + 1


def relay_address(settings: Settings) -> str:
    """Where the other workers of this machine send relay traffic: the address the media
    socket is bound to, or loopback when it listens on every interface. Never the advertised
    address, which may be a NAT's that does not hairpin. ``relay_ip`` overrides."""
    if settings.relay_ip:
        return settings.relay_ip
    bind = settings.media_bind
    if bind in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind == "::":
        return "::1"
    return bind


def channel_base(index: int) -> str:
    """The path on serve's own HTTP port that leads to worker ``index``'s bridge channel."""
    return f"/worker/{index}"


def worker_environment(settings: Settings, index: int, bridge_id: str, secret: str
                       ) -> dict[str, str]:
    """The TERTULIA_* variables a worker starts with: exactly the settings a bridge uses.

    The control secret travels in the environment (readable only by the same user, never
    written to disk and not on the command line, which `ps` shows)."""
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "media_host": settings.media_bind,
        "media_port": settings.media_port + index,
        "public_ip": settings.advertised_ip,
        "relay_ip": relay_address(settings),
        "slots": settings.slots,
        "consent_timeout": settings.consent_timeout,
        "region": settings.region,
        "log_level": settings.log_level,
        "request_timeout": settings.request_timeout,
        "drain_timeout": settings.drain_timeout,
        "bridge_id": bridge_id,
        "control_secret": secret,
    }
    return {ENV_PREFIX + name.upper(): str(value) for name, value in values.items()}


def child_environment(parent: Mapping[str, str], worker: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without its TERTULIA_* settings (a config file, TLS paths, token
    secrets: none of them is a worker's business), plus the worker's own."""
    kept = {k: v for k, v in parent.items() if not k.startswith(ENV_PREFIX)}
    return {**kept, **worker}


def record(index: int, bridge_id: str, port: int, region: str, stats: Mapping[str, Any]
           ) -> BridgeRecord:
    """The registry record of a worker, from its last stats snapshot."""
    return BridgeRecord(
        bridge_id=bridge_id,
        region=region,
        control_url=f"ws://127.0.0.1:{port}/control/ws",
        channel_base=channel_base(index),
        stress=max(0.0, float(stats.get("stress_level", 0.0))),
        endpoints=int(stats.get("endpoints", 0)),
        conferences=int(stats.get("conferences", 0)),
        draining=bool(stats.get("drain", False)),
    )


_MAX = ("stress_level", "largest_conference")
_ANY = ("drain", "graceful_shutdown")
_FIRST = ("region", "media_port")


def aggregate(stats: Sequence[Mapping[str, Any]], expected: int) -> dict[str, Any]:
    """One bridge stats snapshot for the whole machine: counts, rates and totals summed over
    the workers; ``stress_level`` and ``largest_conference`` the largest of any worker (a
    conference spread over workers is counted on each); healthy only when all ``expected``
    workers answered healthy; ``media_port`` the first worker's (the range starts there)."""
    out: dict[str, Any] = {}
    counters: Counter[str] = Counter()
    rtts: list[tuple[float, int]] = []
    for snapshot in stats:
        for key, value in snapshot.items():
            if key in _FIRST:
                out.setdefault(key, value)
            elif key in _ANY:
                out[key] = bool(out.get(key, False)) or bool(value)
            elif key in _MAX:
                out[key] = max(out.get(key, 0), value)
            elif key == "healthy":
                continue
            elif key == "rtt_aggregate":
                rtts.append((float(value), int(snapshot.get("endpoints_connected", 0))))
            elif key == "counters" and isinstance(value, Mapping):
                counters.update({str(k): int(v) for k, v in value.items()})
            elif isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = out.get(key, 0) + value
    for key in ("packet_rate_download", "packet_rate_upload", "relay_packet_rate_in",
                "relay_packet_rate_out"):
        if key in out:
            out[key] = round(out[key], 1)
    weight = sum(n for _, n in rtts if n > 0)
    out["rtt_aggregate"] = round(sum(r * n for r, n in rtts) / weight, 1) if weight else 0.0
    out["healthy"] = len(stats) == expected > 0 and all(s.get("healthy") for s in stats)
    out["counters"] = dict(counters)
    return out
