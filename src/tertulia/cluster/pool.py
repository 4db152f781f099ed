"""The shard's bridges: live records from the registry, chosen by BridgeSelector, reached over
the control API, watched for failure.

A bridge counts as failed when its control connection is lost and one immediate reconnect
fails, or when its record leaves the registry (missed heartbeats). A failed bridge is skipped
for new conferences until its record has had time to expire (or comes back fresh).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from tertulia.cluster.control_client import BridgeUnavailable, ControlClient
from tertulia.focus.focus import BridgeClient, FocusError
from tertulia.focus.selection import BridgeInfo, BridgeSelector
from tertulia.registry import BridgeRecord, Registry, RegistryError
from tertulia.registry.base import RECORD_TTL

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0  # seconds between two registry reads
RECONNECT_TIMEOUT = 1.0  # one immediate reconnect attempt before declaring a bridge failed

FailedCallback = Callable[[str], None]  # bridge id
ExpiredCallback = Callable[[str, str, str], None]  # conference id, endpoint id, reason


class RegistryPool:
    def __init__(
        self,
        registry: Registry,
        selector: BridgeSelector,
        *,
        secret: str,
        shard_id: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.selector = selector
        self.secret = secret
        self.shard_id = shard_id
        self.clock = clock
        self.records: dict[str, BridgeRecord] = {}
        self.clients: dict[str, ControlClient] = {}
        self.failed_at: dict[str, float] = {}
        self.on_failed: FailedCallback | None = None
        self.on_expired: ExpiredCallback | None = None
        self.failures = 0
        self._session: aiohttp.ClientSession | None = None
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        await self.refresh()
        self._poller = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for client in list(self.clients.values()):
            await client.close()
        self.clients.clear()
        if self._session is not None:
            await self._session.close()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            await self.refresh()

    async def refresh(self) -> bool:
        """Re-read the registry; bridges we use that vanished from it have failed."""
        try:
            records = await self.registry.bridges()
        except RegistryError as exc:
            log.warning("registry unreachable: %s (keeping the last bridge list)", exc)
            return False
        self.records = {r.bridge_id: r for r in records}
        for bridge_id in [b for b in self.clients if b not in self.records]:
            log.warning("bridge %s left the registry (heartbeats stopped)", bridge_id)
            self._fail(bridge_id)
        now = self.clock()
        for bridge_id, when in list(self.failed_at.items()):
            if now - when > RECORD_TTL + POLL_INTERVAL:
                del self.failed_at[bridge_id]  # still listed now means it heartbeats again
        return True

    # -- the BridgePool interface of the focus ---------------------------------------------

    def client(self, bridge_id: str) -> BridgeClient | None:
        client = self.clients.get(bridge_id)
        return client if client is not None and client.connected else None

    async def choose(self, region: str | None, conference: Mapping[str, int] | None = None
                     ) -> tuple[BridgeClient, str]:
        """A bridge for one more participant; ``conference`` maps bridge id -> participants
        of the conference there (focus/selection.py keeps or spreads it by strategy)."""
        tried: set[str] = set()
        for _ in range(max(1, len(self.records))):  # bounded: each bridge tried at most once
            candidates = [
                BridgeInfo(r.bridge_id, r.region, max(0.0, r.stress), r.draining)
                for r in self.records.values()
                if r.bridge_id not in self.failed_at and r.bridge_id not in tried
            ]
            bridge_id = self.selector.select(candidates, conference or {}, region)
            if bridge_id is None:
                break
            record = self.records[bridge_id]
            reason = (f"strategy {self.selector.strategy}, participant region {region or '-'}, "
                      f"bridge region {record.region}, stress {record.stress:.3f}, "
                      f"{len(candidates)} candidates")
            try:
                return await self._connect(record), reason
            except BridgeUnavailable as exc:
                log.warning("bridge %s unusable: %s", bridge_id, exc)
                tried.add(bridge_id)
                self.failed_at[bridge_id] = self.clock()
                self.selector.forget(bridge_id)
        raise FocusError("no-bridge", "no media server is available right now; try again")

    async def _connect(self, record: BridgeRecord) -> ControlClient:
        client = self.clients.get(record.bridge_id)
        if client is not None and client.connected:
            return client
        assert self._session is not None, "start() the pool first"
        client = ControlClient(record.bridge_id, record.control_url, secret=self.secret,
                               shard_id=self.shard_id, session=self._session,
                               on_event=self._on_event, on_lost=self._on_lost)
        await client.connect()
        self.clients[record.bridge_id] = client
        return client

    # -- failure ------------------------------------------------------------------------------

    def _on_event(self, bridge_id: str, event: dict[str, Any]) -> None:
        if event.get("type") == "endpoint-expired" and self.on_expired is not None:
            conference, endpoint = event.get("conference"), event.get("endpoint")
            if isinstance(conference, str) and isinstance(endpoint, str):
                self.on_expired(conference, endpoint, str(event.get("reason", "media-lost")))

    def _on_lost(self, bridge_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._retry(bridge_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retry(self, bridge_id: str) -> None:
        client = self.clients.get(bridge_id)
        if client is None:
            return
        try:
            await client.connect(timeout=RECONNECT_TIMEOUT)
            log.info("control connection to bridge %s re-established", bridge_id)
        except BridgeUnavailable:
            self._fail(bridge_id)

    def _fail(self, bridge_id: str) -> None:
        client = self.clients.pop(bridge_id, None)
        if client is None:
            return
        self.failures += 1
        self.failed_at[bridge_id] = self.clock()
        self.selector.forget(bridge_id)
        task = asyncio.get_running_loop().create_task(client.close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.warning("bridge %s failed; its conferences move to other bridges", bridge_id)
        if self.on_failed is not None:
            self.on_failed(bridge_id)
