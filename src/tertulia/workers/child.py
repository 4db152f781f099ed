"""One bridge worker of `tertulia serve --workers K` (started by the supervisor, not by hand).

    python -m tertulia.workers.child <listening fd> <parent pid> <worker index>

Its settings come from the TERTULIA_* environment the supervisor set (policy.py); its HTTP
port (control API, bridge channel, stats) is the listening socket it inherited, bound by the
parent on 127.0.0.1 with an ephemeral port, so there is no race for a free port. It runs the
very code of `tertulia bridge` without registering itself: the parent keeps the registry.

A fresh interpreter (not a fork of serve) because serve's event loop, threads and sockets must
not be copied into the worker; `multiprocessing`'s spawn would start a fresh interpreter too,
but with pickling and a pipe of its own, for nothing this module needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys

from tertulia.cluster import bridge_process
from tertulia.config import ConfigError, load
from tertulia.logs import setup
from tertulia.workers.policy import channel_base

PR_SET_PDEATHSIG = 1  # prctl(2): signal this process when its parent dies
PARENT_POLL = 1.0  # seconds between two checks that the parent still lives (fallback)


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when serve dies, however it dies (Linux prctl(2)); the check of
    getppid afterwards covers a parent that died before the prctl call."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


async def _watch_parent(parent: int) -> None:
    """Where prctl is missing: stop (as on SIGINT) once the parent is gone."""
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_POLL)
    os.kill(os.getpid(), signal.SIGINT)


class _WorkerTag(logging.Filter):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


async def _run(fd: int, parent: int, index: int) -> None:
    settings = load(None)
    setup(settings.log_level)
    for handler in logging.getLogger().handlers:  # every line says which worker wrote it
        handler.addFilter(_WorkerTag(index))
    watcher = asyncio.create_task(_watch_parent(parent))
    sock = socket.socket(fileno=fd)
    try:
        await bridge_process.run(settings, sock=sock, channel_base=channel_base(index),
                                 register=False)
    finally:
        watcher.cancel()


def main(argv: list[str]) -> int:
    if len(argv) != 3 or not all(a.isdigit() for a in argv):
        print("usage: python -m tertulia.workers.child FD PARENT_PID INDEX", file=sys.stderr)
        return 2
    fd, parent, index = (int(a) for a in argv)
    die_with_parent(parent)
    runner = asyncio.run
    with contextlib.suppress(ImportError):
        import uvloop  # as `tertulia serve`: faster datagram handling when installed

        runner = uvloop.run
    try:
        runner(_run(fd, parent, index))
    except ConfigError as exc:
        print(f"tertulia worker {index}: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tertulia worker {index}: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
