"""The bridge's stats snapshot, with the keys operators of Jitsi's bridge rely on.

Totals are plain counters kept on the hot path; rates are derived here, at most once per
snapshot interval, from the difference between two samples. ``stress_level`` is the packet
rate (endpoints' and relays' together) over the bridge's packet-rate threshold (Jitsi's default:
50,000 packets/s).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tertulia.bridge.bandwidth import estimate_of

if TYPE_CHECKING:
    from tertulia.bridge.bridge import Bridge
    from tertulia.bridge.endpoint import Endpoint

PACKET_RATE_THRESHOLD = 50_000.0
UPLINK_KEYS = ("uplink_nacks_sent", "uplink_packets_requested", "uplink_packets_repaired")
SENDING_WINDOW = 5.0  # an endpoint "sends audio/video" if a packet came in this many seconds


@dataclass(slots=True)
class Totals:
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def add(self, other: Totals) -> Totals:
        return Totals(
            self.packets_in + other.packets_in,
            self.packets_out + other.packets_out,
            self.bytes_in + other.bytes_in,
            self.bytes_out + other.bytes_out,
        )


@dataclass(slots=True)
class Rates:
    packet_rate_download: float = 0.0
    packet_rate_upload: float = 0.0
    bit_rate_download: float = 0.0
    bit_rate_upload: float = 0.0


def rates_between(older: Totals, newer: Totals, seconds: float) -> Rates:
    """Per-second rates from two samples (download = what the bridge received)."""
    if seconds <= 0:
        return Rates()
    return Rates(
        packet_rate_download=(newer.packets_in - older.packets_in) / seconds,
        packet_rate_upload=(newer.packets_out - older.packets_out) / seconds,
        bit_rate_download=8 * (newer.bytes_in - older.bytes_in) / seconds,
        bit_rate_upload=8 * (newer.bytes_out - older.bytes_out) / seconds,
    )


def uplink_totals(closed: dict[str, int], endpoints: Iterable[Endpoint]) -> dict[str, int]:
    """NACKs sent to senders, sequence numbers asked for and packets that came after being
    missing (bridge/uplink.py): those of endpoints gone (``closed``) and of the rest."""
    out = {key: closed.get(key, 0) for key in UPLINK_KEYS}
    for e in endpoints:
        out["uplink_nacks_sent"] += e.stats.nacks_sent
        out["uplink_packets_requested"] += e.stats.nack_requested
        out["uplink_packets_repaired"] += e.stats.uplink_repaired
    return out


def relay_stats(bridge: Bridge, now: float) -> dict[str, Any]:
    """Relays between bridges: how many, the streams crossing them, their traffic."""
    relays = bridge.relays()
    live = bridge.relay_table.closed_totals
    streams_in = streams_out = 0
    for relay in relays:
        st = relay.stats
        live = live.add(Totals(st.rtp_in + st.rtcp_in, st.rtp_out + st.rtcp_out, st.bytes_in,
                               st.bytes_out))
        stream_in, stream_out = relay.streams(now)
        streams_in += stream_in
        streams_out += stream_out
    rates = bridge.relay_sampler.rates(live, now)
    return {
        "relays": len(relays),
        "relays_connected": sum(1 for r in relays if r.connected),
        "relayed_endpoints": sum(len(r.remote) for r in relays),
        "relay_streams_in": streams_in,
        "relay_streams_out": streams_out,
        "relay_packets_in": live.packets_in,
        "relay_packets_out": live.packets_out,
        "relay_bytes_in": live.bytes_in,
        "relay_bytes_out": live.bytes_out,
        "relay_packet_rate_in": round(rates.packet_rate_download, 1),
        "relay_packet_rate_out": round(rates.packet_rate_upload, 1),
        "relay_bit_rate_in": round(rates.bit_rate_download),
        "relay_bit_rate_out": round(rates.bit_rate_upload),
    }


@dataclass(slots=True)
class StatsSampler:
    """Keeps the last sample so each snapshot reports rates over the last interval."""

    interval: float = 5.0
    _sample: tuple[float, Totals] | None = None
    _rates: Rates = field(default_factory=Rates)

    def rates(self, totals: Totals, now: float) -> Rates:
        if self._sample is None:
            self._sample = (now, totals)
        elif now - self._sample[0] >= self.interval:
            self._rates = rates_between(self._sample[1], totals, now - self._sample[0])
            self._sample = (now, totals)
        return self._rates


def stress_level(rates: Rates, relay_in: float, relay_out: float) -> float:
    """The busier direction's packet rate over the threshold. Relay traffic counts: a bridge
    of a conference spread over bridges (or over the workers of one machine) unprotects and
    protects every relayed packet like an endpoint's."""
    busiest = max(rates.packet_rate_download + relay_in, rates.packet_rate_upload + relay_out)
    return round(busiest / PACKET_RATE_THRESHOLD, 4)


def snapshot(bridge: Bridge, now: float) -> dict[str, Any]:
    # relayed participants (another bridge's senders, seen here) are counted under relays
    endpoints = [e for c in bridge.conferences.values() for e in c.endpoints.values()
                 if not getattr(e, "relayed", False)]
    live = Totals()
    sending_audio = sending_video = 0
    for e in endpoints:
        live = live.add(Totals(e.stats.rtp_in + e.stats.rtcp_in, e.stats.rtp_out
                               + e.stats.rtcp_out, e.stats.bytes_in, e.stats.bytes_out))
        if any(m.kind == "audio" and now - m.last_packet < SENDING_WINDOW
               for m in e.sending.values()):
            sending_audio += 1
        if any(m.kind == "video" and now - m.last_packet < SENDING_WINDOW
               for m in e.sending.values()):
            sending_video += 1
    totals = bridge.closed_totals.add(live)
    rtts = [e.rtt.rtt for e in endpoints if e.rtt.rtt is not None]
    rates = bridge.sampler.rates(totals, now)
    relays = relay_stats(bridge, now)
    counters = bridge.counters
    return {
        "conferences": len(bridge.conferences),
        "endpoints": len(endpoints),
        "largest_conference": max((len(c.endpoints) for c in bridge.conferences.values()),
                                  default=0),  # relayed participants included
        "endpoints_connected": sum(1 for e in endpoints if e.connected),
        "endpoints_sending_audio": sending_audio,
        "endpoints_sending_video": sending_video,
        # whose downlink the bridge estimates from their transport-wide feedback (not REMB)
        "endpoints_send_side_estimate": sum(
            1 for e in endpoints if estimate_of(e, now)[1] == "twcc"),
        "packet_rate_download": round(rates.packet_rate_download, 1),
        "packet_rate_upload": round(rates.packet_rate_upload, 1),
        "bit_rate_download": round(rates.bit_rate_download),
        "bit_rate_upload": round(rates.bit_rate_upload),
        "stress_level": stress_level(rates, relays["relay_packet_rate_in"],
                                     relays["relay_packet_rate_out"]),
        # mean of the endpoints' smoothed round-trip times (ms), as Jitsi's rtt_aggregate
        "rtt_aggregate": round(sum(rtts) / len(rtts) * 1000, 1) if rtts else 0.0,
        "region": bridge.settings.region,
        "drain": bridge.draining,
        "graceful_shutdown": bridge.shutting_down,
        "healthy": bridge.bound,
        "packets_in": totals.packets_in,
        "packets_out": totals.packets_out,
        "bytes_in": totals.bytes_in,
        "bytes_out": totals.bytes_out,
        "retransmissions": sum(e.stats.retransmissions for e in endpoints),
        # uplink repair (bridge/uplink.py): NACKs to senders, and what they sent again
        **uplink_totals(bridge.closed_uplink, endpoints),
        "total_ice_succeeded": counters["ice-succeeded"],
        "total_ice_failed": counters["endpoints-expired-ice-failed"],
        "total_conferences_created": counters["conferences-created"],
        "total_conferences_completed": counters["conferences-completed"],
        "total_dominant_speaker_changes": counters["dominant-speaker-changes"],
        "media_port": bridge.settings.media_port,
        **relays,
        "counters": dict(counters),
    }


def endpoint_bandwidth(bridge: Bridge, now: float) -> list[dict[str, Any]]:
    """Per endpoint: its downlink estimate, what the bridge sends it, probing, and which
    layer (by height) it gets of each camera it wants (None: suspended to fit), with the
    temporal layer (highest VP8 TID) and its measured frame rate next to it. No ids: the
    route is public, and rooms and participants must not be enumerable."""
    out: list[dict[str, Any]] = []
    for conference in bridge.conferences.values():
        for endpoint in conference.endpoints.values():
            if getattr(endpoint, "relayed", False):
                continue  # another bridge's participant: it receives nothing here
            estimate, source = estimate_of(endpoint, now)
            sendside = endpoint.sendside
            layers: list[int | None] = []
            temporal: list[int | None] = []
            frame_rates: list[float | None] = []
            for sender_id, pick in endpoint.allocation.items():
                sender = conference.endpoints.get(sender_id)
                video = sender.sending.get("video") if sender else None
                if video is None or pick is None:
                    layers.append(None)
                    temporal.append(None)
                    frame_rates.append(None)
                    continue
                ssrc, tid = pick
                layers.append(video.layer_height.get(ssrc))
                temporal.append(tid)
                meter = video.temporal.get(ssrc)
                fps = meter.cumulative()[min(tid, meter.top)][1] if meter is not None else None
                frame_rates.append(None if fps is None else round(fps, 1))
            out.append({
                "conference_size": len(conference.endpoints),
                "estimate_bps": round(estimate) if estimate is not None else None,
                "estimate_source": source,  # "twcc" (send-side), "remb" or "none"
                "send_bps": round(endpoint.send_rate.bps),
                "padding_bps": round(endpoint.padding_bps),
                "loss": round(sendside.loss.last_fraction if sendside and source == "twcc"
                              else endpoint.estimate.last_loss, 4),
                "rtt_ms": None if endpoint.rtt.rtt is None else round(endpoint.rtt.rtt * 1000, 1),
                "remb_received": endpoint.stats.remb_received,
                "transport_feedback_sent": endpoint.stats.twcc_sent,
                "transport_feedback_received": endpoint.stats.twcc_received,
                "probes": None if sendside is None else {
                    "valid": sendside.counters.get("probe-valid", 0),
                    "invalid": sendside.counters.get("probe-invalid", 0),
                    "last_bps": next((round(r.bps) for r in reversed(sendside.probe_results)
                                      if r.bps is not None), None),
                },
                "padding_packets": endpoint.stats.padding_sent,
                "pacer": {  # bridge/pacer.py: off (rate 0) until a send-side estimate
                    "rate_bps": round(endpoint.pacer.rate),
                    "queued": len(endpoint.pacer.queue) + len(endpoint.pacer.priority),
                    "delay_ms": round(endpoint.pacer.delay(now) * 1000, 1),
                    "paced_packets": endpoint.pacer.sent_paced,
                    "dropped": endpoint.pacer.dropped,
                    "discarded_on_switch": endpoint.stats.paced_discarded,
                },
                "retransmissions": endpoint.stats.rtx_sent,
                "retransmissions_limited": endpoint.stats.rtx_limited,
                "uplink": {  # what the bridge asked it to send again (bridge/uplink.py)
                    "nacks_sent": endpoint.stats.nacks_sent,
                    "packets_requested": endpoint.stats.nack_requested,
                    "packets_repaired": endpoint.stats.uplink_repaired,
                    "rtx_received": endpoint.stats.rtx_received,
                    "rtx_duplicates": endpoint.stats.rtx_duplicates,
                    "padding_received": endpoint.stats.padding_received,
                    # its transport-wide feedback: packets reported as not received, and
                    # packets that arrived after such a report (bwe.TwccRecorder)
                    "feedback_reported_lost": endpoint.twcc.reported_lost,
                    "feedback_late": endpoint.twcc.late,
                },
                "layers": layers,
                "temporal_layers": temporal,  # highest TID forwarded, per entry of "layers"
                "frame_rates": frame_rates,  # fps of that choice as the sender sends it
            })
    return out
