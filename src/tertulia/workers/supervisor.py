"""The supervisor of `tertulia serve --workers K`: starts K bridge worker processes, feeds the
in-memory registry with their records, restarts the ones that die.

Every ``HEARTBEAT_INTERVAL`` it reads each worker's ``/about/bridge/stats`` and writes the
worker's record (stress, endpoints, draining), which is what a bridge's own heartbeat would
write. A worker that exits has its record removed at once and the pool re-read, so the focus
moves its participants to the other workers (the failover of `tertulia shard`); it is then
restarted with a new bridge id after a bounded back-off (policy.py). A worker that stops
answering for ``HUNG_AFTER`` seconds is killed and restarted the same way. Workers start in a
session of their own (a terminal's Ctrl-C reaches only serve, which stops them in order) and
die with serve even when serve is killed (child.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tertulia.config import Settings
from tertulia.registry import Registry
from tertulia.registry.base import HEARTBEAT_INTERVAL
from tertulia.workers import policy

log = logging.getLogger("tertulia.workers")

START_TIMEOUT = 30.0  # seconds a worker has to answer /about/health at serve's start
POLL_TIMEOUT = 2.0
HUNG_AFTER = 15.0  # seconds without an answer to the stats poll before a worker is killed
STOP_TIMEOUT = 10.0  # SIGINT, then SIGKILL after this


class WorkerStartError(OSError):
    """A worker could not be started when serve started (the message says why)."""


@dataclass(slots=True)
class Worker:
    index: int
    media_port: int
    bridge_id: str = ""
    port: int = 0  # its HTTP port on 127.0.0.1 (control API, bridge channel, stats)
    process: asyncio.subprocess.Process | None = None
    generation: int = 0
    restarts: int = 0
    failures: int = 0  # consecutive deaths without a stable run in between
    started_at: float = 0.0
    answered_at: float = 0.0
    stats: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.running and self.process is not None else None


class WorkerSupervisor:
    def __init__(self, settings: Settings, registry: Registry, *, secret: str | None = None,
                 on_change: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.settings = settings
        self.registry = registry
        # HS256 key of the control API between serve and its workers: made at start, kept in
        # memory and handed to the workers in their environment, never written anywhere.
        self.secret = secret or secrets.token_urlsafe(32)
        self.on_change = on_change
        self.workers = [Worker(i, settings.media_port + i) for i in range(settings.workers)]
        self.session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker and wait until each answers; WorkerStartError when one does not
        (its media port taken, say), after stopping the others."""
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            for worker in self.workers:
                await self._spawn(worker)
            await asyncio.gather(*(self._wait_ready(w) for w in self.workers))
        except BaseException:
            await self.stop()
            raise
        for worker in self.workers:
            await self._poll(worker)
        self._tasks = [asyncio.create_task(self._supervise(w)) for w in self.workers]

    async def stop(self) -> None:
        """Idempotent: SIGINT every worker (a bridge's clean stop), SIGKILL what is left after
        STOP_TIMEOUT, and wait for all of them: no process is left behind."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        running = [w.process for w in self.workers if w.running and w.process is not None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
        if running:
            _, late = await asyncio.wait([asyncio.create_task(p.wait()) for p in running],
                                         timeout=STOP_TIMEOUT)
            for process in running:
                if process.returncode is None:
                    log.warning("worker pid %d did not stop in %.0f s: killed", process.pid,
                                STOP_TIMEOUT)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if late:
                await asyncio.wait(late, timeout=STOP_TIMEOUT)
        for worker in self.workers:
            with contextlib.suppress(Exception):
                await self.registry.remove_bridge(worker.bridge_id)
        if self.session is not None:
            await self.session.close()
            self.session = None

    # -- one worker --------------------------------------------------------------------------

    async def _spawn(self, worker: Worker) -> None:
        worker.generation += 1
        worker.bridge_id = f"worker{worker.index}-{worker.generation}"
        worker.stats = None
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))  # ephemeral: no port to configure, none to collide
            sock.listen(1024)
            worker.port = sock.getsockname()[1]
            env = policy.child_environment(os.environ, policy.worker_environment(
                self.settings, worker.index, worker.bridge_id, self.secret))
            worker.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tertulia.workers.child", str(sock.fileno()),
                str(os.getpid()), str(worker.index),
                env=env, pass_fds=(sock.fileno(),), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, start_new_session=True,
            )
        worker.started_at = worker.answered_at = time.monotonic()
        log.info("worker %d started: pid %d, bridge %s, udp %d, http 127.0.0.1:%d",
                 worker.index, worker.process.pid, worker.bridge_id, worker.media_port,
                 worker.port)

    async def _wait_ready(self, worker: Worker) -> None:
        assert self.session is not None and worker.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        url = f"http://127.0.0.1:{worker.port}/about/health"
        while time.monotonic() < deadline:
            if worker.process.returncode is not None:
                raise WorkerStartError(
                    f"bridge worker {worker.index} (udp port {worker.media_port}) exited with "
                    f"status {worker.process.returncode} at start; its error is above")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with self.session.get(
                        url, timeout=aiohttp.ClientTimeout(total=POLL_TIMEOUT)) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise WorkerStartError(f"bridge worker {worker.index} did not answer within "
                               f"{START_TIMEOUT:.0f} s")

    async def fetch(self, worker: Worker, path: str) -> Any:
        """GET ``path`` of a running worker as JSON; None when it does not answer."""
        if self.session is None or not worker.running:
            return None
        try:
            async with self.session.get(
                    f"http://127.0.0.1:{worker.port}{path}",
                    timeout=aiohttp.ClientTimeout(total=POLL_TIMEOUT)) as response:
                if response.status != 200:
                    return None
                return await response.json()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return None

    async def _poll(self, worker: Worker) -> None:
        stats = await self.fetch(worker, "/about/bridge/stats")
        if not isinstance(stats, dict) or not worker.running:
            return
        worker.stats, worker.answered_at = stats, time.monotonic()
        await self.registry.put_bridge(policy.record(
            worker.index, worker.bridge_id, worker.port, self.settings.region, stats))

    async def _supervise(self, worker: Worker) -> None:
        while not self._stopping:
            process = worker.process
            assert process is not None
            exited = asyncio.create_task(process.wait())
            try:
                while not exited.done():
                    await asyncio.wait({exited}, timeout=HEARTBEAT_INTERVAL)
                    if exited.done():
                        break
                    await self._poll(worker)
                    if time.monotonic() - worker.answered_at > HUNG_AFTER:
                        log.warning("worker %d (pid %d) has not answered for %.0f s: killed",
                                    worker.index, process.pid, HUNG_AFTER)
                        with contextlib.suppress(ProcessLookupError):
                            process.kill()
            finally:
                exited.cancel()
            if self._stopping:
                return
            await self._restart(worker, process.returncode)

    async def _restart(self, worker: Worker, status: int | None) -> None:
        ran_for = time.monotonic() - worker.started_at
        worker.failures = policy.next_failures(worker.failures, ran_for)
        delay = policy.restart_delay(worker.failures)
        log.warning("worker %d (bridge %s) exited with status %s after %.1f s; its "
                    "participants move to the other workers; restarting in %.1f s",
                    worker.index, worker.bridge_id, status, ran_for, delay)
        worker.stats = None
        with contextlib.suppress(Exception):
            await self.registry.remove_bridge(worker.bridge_id)
        if self.on_change is not None:
            with contextlib.suppress(Exception):
                await self.on_change()  # the pool notices now, not at its next poll
        while not self._stopping:
            await asyncio.sleep(delay)
            try:
                await self._spawn(worker)
            except OSError as exc:  # descriptors or processes exhausted: try again later
                worker.failures += 1
                delay = policy.restart_delay(worker.failures)
                log.error("worker %d could not be restarted (%s); again in %.1f s",
                          worker.index, exc, delay)
                continue
            worker.restarts += 1
            return

    def port_of(self, index: int) -> int | None:
        """The HTTP port of worker ``index`` while it runs."""
        if 0 <= index < len(self.workers) and self.workers[index].running:
            return self.workers[index].port
        return None
