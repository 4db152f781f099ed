"""Prometheus metrics of a shard's focus and bridge pool (read at scrape time)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tertulia.cluster.pool import RegistryPool
from tertulia.focus.focus import Focus


class ShardCollector(Collector):
    def __init__(self, focus: Focus, pool: RegistryPool) -> None:
        self.focus = focus
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("tertulia_shard_bridges", "Live bridges in the registry",
                                value=float(len(self.pool.records)))
        yield GaugeMetricFamily("tertulia_shard_bridges_connected",
                                "Bridges with an open control connection",
                                value=float(sum(c.connected for c in self.pool.clients.values())))
        yield GaugeMetricFamily("tertulia_shard_conferences", "Conferences with media",
                                value=float(len(self.focus.conferences)))
        yield CounterMetricFamily("tertulia_shard_bridge_failures",
                                  "Bridges declared failed", value=float(self.pool.failures))
        yield CounterMetricFamily("tertulia_shard_participants_moved",
                                  "Participants asked to renegotiate after a bridge failure",
                                  value=float(self.focus.moved))
        yield CounterMetricFamily("tertulia_shard_relays_opened",
                                  "Relays set up between two bridges of a conference",
                                  value=float(self.focus.relays_opened))
