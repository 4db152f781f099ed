"""Prometheus text at /metrics (prometheus-client), read from live state at scrape time.

Collectors read the bridge's stats snapshot and the signal hub's counters when scraped, so the
media hot path never touches a Prometheus object.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tertulia.accept import Acceptor
from tertulia.bridge.bridge import Bridge
from tertulia.signal.hub import Hub

BRIDGE_GAUGES = {
    "conferences": "Conferences on this bridge",
    "endpoints": "Endpoints on this bridge",
    "largest_conference": "Endpoints in the largest conference",
    "endpoints_sending_audio": "Endpoints that sent audio in the last 5 s",
    "endpoints_sending_video": "Endpoints that sent video in the last 5 s",
    "endpoints_send_side_estimate": "Endpoints whose downlink is estimated from their "
    "transport-wide feedback (the others: REMB or none)",
    "packet_rate_download": "Packets per second received",
    "packet_rate_upload": "Packets per second sent",
    "bit_rate_download": "Bits per second received",
    "bit_rate_upload": "Bits per second sent",
    "stress_level": "Packet rate over the bridge's threshold",
    "rtt_aggregate": "Mean round-trip time to receivers (ms), from their reception reports",
    "relays": "Relays to other bridges (one per conference and other bridge)",
    "relays_connected": "Relays whose DTLS-SRTP association is up",
    "relayed_endpoints": "Participants of other bridges seen here through relays",
    "relay_streams_in": "SSRCs received over relays in the last 5 s",
    "relay_streams_out": "SSRCs sent over relays in the last 5 s",
    "relay_packet_rate_in": "Packets per second received over relays",
    "relay_packet_rate_out": "Packets per second sent over relays",
    "relay_bit_rate_in": "Bits per second received over relays",
    "relay_bit_rate_out": "Bits per second sent over relays",
}
BRIDGE_COUNTERS = {
    "packets_in": "Packets received",
    "packets_out": "Packets sent",
    "bytes_in": "Bytes received",
    "bytes_out": "Bytes sent",
    "relay_packets_in": "Packets received over relays",
    "relay_packets_out": "Packets sent over relays",
    "relay_bytes_in": "Bytes received over relays",
    "relay_bytes_out": "Bytes sent over relays",
    "total_ice_succeeded": "Endpoints whose ICE connectivity check succeeded",
    "total_ice_failed": "Endpoints that never completed ICE",
    "total_conferences_created": "Conferences created",
    "total_conferences_completed": "Conferences completed",
    "total_dominant_speaker_changes": "Dominant speaker changes",
    "uplink_nacks_sent": "Generic NACKs sent to senders for packets their uplink lost",
    "uplink_packets_requested": "Sequence numbers asked of senders again (each request)",
    "uplink_packets_repaired": "Packets from senders that arrived after being missing",
}


class BridgeCollector(Collector):
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def collect(self) -> Iterator[Metric]:
        stats = self.bridge.stats()
        for key, doc in BRIDGE_GAUGES.items():
            yield GaugeMetricFamily(f"tertulia_bridge_{key}", doc, value=float(stats[key]))
        for key, doc in BRIDGE_COUNTERS.items():
            name = key.removeprefix("total_")
            yield CounterMetricFamily(f"tertulia_bridge_{name}", doc, value=float(stats[key]))
        healthy = GaugeMetricFamily("tertulia_bridge_healthy", "1 when the media port is bound")
        healthy.add_metric([], 1.0 if stats["healthy"] else 0.0)
        yield healthy
        dropped = CounterMetricFamily(
            "tertulia_bridge_dropped_datagrams", "Datagrams dropped, by reason", labels=["reason"]
        )
        for key, value in sorted(stats["counters"].items()):
            if key.startswith("dropped-"):
                dropped.add_metric([key.removeprefix("dropped-")], float(value))
        yield dropped


class SignalCollector(Collector):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.acceptor: Acceptor | None = None  # set once the HTTP listener is up

    def collect(self) -> Iterator[Metric]:
        rooms = self.hub.rooms
        yield GaugeMetricFamily("tertulia_signal_rooms", "Rooms", value=len(rooms.rooms))
        yield GaugeMetricFamily(
            "tertulia_signal_participants", "Participants", value=rooms.participant_count
        )
        yield GaugeMetricFamily(
            "tertulia_signal_websockets", "Open signalling WebSockets",
            value=len(self.hub.connections),
        )
        yield GaugeMetricFamily(
            "tertulia_signal_lobby_waiting", "Knocks waiting in lobbies",
            value=sum(len(r.knocks) for r in rooms.rooms.values()),
        )
        for key, doc in (
            ("joins", "Joins"),
            ("resumes", "Participants resumed after a dropped connection"),
            ("messages", "Signalling messages received"),
            ("rate_limited", "Requests refused by a rate limit"),
            ("auth_failures", "Joins refused for a bad token or password"),
            ("knocks", "Lobby knocks"),
            ("idle_closed", "Signalling WebSockets closed for sitting silent outside a room"),
            ("forwarded_malformed",
             "X-Forwarded-For headers from trusted proxies ignored as malformed"),
        ):
            yield CounterMetricFamily(f"tertulia_signal_{key}", doc,
                                      value=float(self.hub.counters[key]))
        if self.acceptor is not None:
            yield CounterMetricFamily(
                "tertulia_http_rejected_no_descriptors",
                "Connections answered 503 because file descriptors ran out",
                value=float(self.acceptor.rejected_emfile),
            )


def add_metrics_route(app: web.Application, *collectors: Collector) -> None:
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics)
