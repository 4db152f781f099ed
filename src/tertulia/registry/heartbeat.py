"""Keep one record alive: write it every interval; survive registry outages by retrying."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tertulia.registry.base import HEARTBEAT_INTERVAL, RegistryError

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``beat`` now and then every ``interval`` seconds until stopped.

    A failed beat is logged once per outage and retried on the next tick: after a Redis
    restart the record is back within one interval.
    """

    def __init__(self, beat: Callable[[], Awaitable[None]], interval: float = HEARTBEAT_INTERVAL,
                 name: str = "heartbeat") -> None:
        self.beat = beat
        self.interval = interval
        self.name = name
        self.failing = False
        self.beats = 0
        self._task: asyncio.Task[None] | None = None

    async def once(self) -> bool:
        try:
            await self.beat()
        except (RegistryError, OSError) as exc:
            if not self.failing:
                log.warning("%s: registry unreachable (%s); retrying every %.0f s",
                            self.name, exc, self.interval)
            self.failing = True
            return False
        if self.failing:
            log.info("%s: registry reachable again; record re-registered", self.name)
        self.failing = False
        self.beats += 1
        return True

    async def _run(self) -> None:
        while True:
            await self.once()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
