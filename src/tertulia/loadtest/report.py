"""Turn worker samples, participant results and bridge samples into one report (pure)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def series(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge the workers' per-second samples into one row per second."""
    buckets: dict[int, list[dict[str, Any]]] = {}
    for s in samples:  # workers number their samples alike (tick n at start + n s)
        buckets.setdefault(int(s["n"]) if "n" in s else round(s["t"]), []).append(s)
    rows = []
    for t in sorted(buckets):
        group = buckets[t]

        def total(key: str, group: list[dict[str, Any]] = group) -> float:
            return float(sum(g[key] for g in group))

        n = total("bitrate_n")
        expected = total("expected")
        rows.append({
            "t": t,
            "joined": int(total("joined")),
            "failed": int(total("failed")),
            "joining": int(total("joining")),
            "rx_bitrate": total("bitrate_sum"),
            "bitrate_mean": total("bitrate_sum") / n if n else 0.0,
            "bitrate_min": min((g["bitrate_min"] for g in group if g["bitrate_n"]), default=0.0),
            "loss": total("lost") / expected if expected > 0 else 0.0,
            "rx_packets": int(total("packets")),
            "sent_packets": int(total("sent_packets")),
            "jitter_mean_ms": total("jitter_sum") / total("jitter_n") if total("jitter_n") else 0.0,
            "jitter_max_ms": max(g["jitter_max"] for g in group),
            "first_media": [x for g in group for x in g["first_media"]],
        })
    return rows


def pairs_with_media(results: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
    """``(pairs expected, pairs that got audio and video, missing pairs)`` where a pair is a
    joined participant and another joined *sender* of its room."""
    joined = [r for r in results if r["state"] in ("joined", "left") and r["id"]]
    expected = got = 0
    missing = []
    for r in joined:
        for s in joined:
            if s is r or not s["sender"] or s["room"] != r["room"]:
                continue
            expected += 1
            media = r["from"].get(s["id"], {})
            if media.get("audio", 0) > 0 and media.get("video", 0) > 0:
                got += 1
            else:
                missing.append(f"{r['index']}<-{s['index']}")
    return expected, got, missing


def media_waits(results: list[dict[str, Any]]) -> list[float]:
    """Join → first media, counted from when media could first have come: a participant
    whose room had no sender yet waits for one, so its clock starts when the first other
    sender of its room had finished joining (``join_wall`` + its ``times["channel"]``)."""
    ready: dict[str, list[tuple[int, float]]] = {}
    for r in results:
        if r["sender"] and r.get("join_wall") is not None and "channel" in r["times"]:
            ready.setdefault(r["room"], []).append(
                (r["index"], r["join_wall"] + r["times"]["channel"]))
    waits = []
    for r in results:
        if r.get("join_wall") is None or "first_media" not in r["times"]:
            continue
        others = [t for i, t in ready.get(r["room"], []) if i != r["index"]]
        start = max(r["join_wall"], min(others, default=r["join_wall"]))
        waits.append(max(0.0, r["join_wall"] + r["times"]["first_media"] - start))
    return waits


def _rate(bridge: list[dict[str, Any]], key: str) -> float | None:
    values = [b[key] for b in bridge if b.get(key) is not None]
    return sum(values) / len(values) if values else None


def summarize(params: dict[str, Any], results: list[dict[str, Any]],
              samples: list[dict[str, Any]], bridge: list[dict[str, Any]]) -> dict[str, Any]:
    final = [b for b in bridge if b.get("final")]
    bridge = [b for b in bridge if not b.get("final")]
    ok = [r for r in results if r["state"] in ("joined", "left")]
    failed = [r for r in results if r["state"] == "failed"]
    joins = [r["times"]["channel"] for r in ok if "channel" in r["times"]]
    first = [r["times"]["first_media"] for r in ok if "first_media" in r["times"]]
    waits = media_waits(ok)
    expected = sum(r["expected"] for r in ok)
    lost = sum(r["lost"] for r in ok)
    pairs, pairs_ok, missing = pairs_with_media(results)
    steady = bridge[len(bridge) // 3:] if len(bridge) >= 3 else bridge
    cpu_per_packet = None
    if len(steady) >= 2 and steady[0].get("cpu_seconds") is not None:
        packets = steady[-1]["packets_out"] - steady[0]["packets_out"]
        cpu = steady[-1]["cpu_seconds"] - steady[0]["cpu_seconds"]
        cpu_per_packet = 1e6 * cpu / packets if packets > 0 else None
    return {
        "params": params,
        "participants": len(results),
        "joins_ok": len(ok),
        "joins_failed": len(failed),
        "errors": dict(Counter(r["error"] for r in failed).most_common(5)),
        "join_s": {"p50": _r(percentile(joins, 50)), "p99": _r(percentile(joins, 99)),
                   "max": _r(max(joins, default=None))},
        "first_media_s": {"p50": _r(percentile(first, 50)), "p99": _r(percentile(first, 99)),
                          "max": _r(max(first, default=None)), "count": len(first)},
        "first_media_after_sender_s": {"p50": _r(percentile(waits, 50)),
                                       "p99": _r(percentile(waits, 99)),
                                       "max": _r(max(waits, default=None))},
        "receive_loss": _r(lost / expected if expected else 0.0, 6),
        "packets_received": sum(r["packets"] for r in ok),
        "packets_sent": sum(r["sent_packets"] for r in results),
        "video_jitter_ms": {"p50": _r(percentile([r["video_jitter_ms"] for r in ok], 50), 2),
                            "p99": _r(percentile([r["video_jitter_ms"] for r in ok], 99), 2)},
        "audio_jitter_ms": {"p50": _r(percentile([r["audio_jitter_ms"] for r in ok], 50), 2),
                            "p99": _r(percentile([r["audio_jitter_ms"] for r in ok], 99), 2)},
        "bitrate_per_participant_bps": _bitrates(samples),
        "pairs_with_media": {"expected": pairs, "ok": pairs_ok, "missing": missing[:20]},
        "srtp_errors": sum(r["srtp_errors"] for r in results),
        "late_ticks": sum(r["late_ticks"] for r in results),
        "plis": sum(r["plis"] for r in results),
        "nacks": sum(r["nacks"] for r in results),
        "bridge": {
            "cpu_mean": _r(_rate(steady, "cpu")),
            "packet_rate_download": _r(_rate(steady, "packet_rate_download"), 1),
            "packet_rate_upload": _r(_rate(steady, "packet_rate_upload"), 1),
            "cpu_us_per_packet_out": _r(cpu_per_packet, 2),
            "rss_mib": _r(max((b["rss_mib"] for b in bridge if b.get("rss_mib")), default=None),
                          1),
        },
        "loadgen_cpu_mean": _r(_rate(steady, "loadgen_cpu")),
        "udp_rcvbuf_drops": _delta(bridge + final, "udp_rcvbuf_errors"),
        "loss_to_bridge": _loss_to_bridge(bridge + final, results),
    }


def _loss_to_bridge(bridge: list[dict[str, Any]], results: list[dict[str, Any]]
                    ) -> float | None:
    """Share of the RTP packets the participants sent that the bridge never counted in (only
    meaningful when nothing else used the bridge during the run)."""
    received = _delta(bridge, "packets_in")
    sent = sum(r["sent_packets"] for r in results)
    if received is None or sent <= 0 or len(bridge) < 2:
        return None
    return _r(max(0.0, 1 - received / sent), 6)


def _delta(rows: list[dict[str, Any]], key: str) -> int | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return values[-1] - values[0] if values else None


def _bitrates(samples: list[dict[str, Any]]) -> dict[str, float | None]:
    rows = series(samples)
    steady = [r for r in rows[len(rows) // 3:] if r["bitrate_mean"] > 0]
    return {
        "mean": _r(sum(r["bitrate_mean"] for r in steady) / len(steady) if steady else None, 0),
        "min": _r(min((r["bitrate_min"] for r in steady), default=None), 0),
    }
