"""Our own TCP accept loop for the HTTP server, built to survive file-descriptor exhaustion.

aiohttp's `TCPSite` leaves accepting to the event loop. When the process runs out of
descriptors (EMFILE) asyncio logs an error for every wake-up and stops accepting for a second;
libuv (uvloop) accepts and drops the connection silently. Neither tells the client why, and
exhausted descriptors took down meet.jit.si's web servers in 2020.

`Acceptor` accepts itself and hands each connection to aiohttp with
`loop.connect_accepted_socket`. On EMFILE/ENFILE it uses the reserve-descriptor trick (libuv,
nginx): one spare descriptor is kept open; it is closed to accept the waiting connection, which
gets a short `503 Service Unavailable` and is closed, and the spare is opened again. Connections
already open keep being served; new ones succeed again as soon as descriptors free up. When
even that fails, the listening sockets are left alone for `retry_delay` seconds (no busy loop).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
import time
from contextlib import suppress

from aiohttp import web

log = logging.getLogger("tertulia.accept")

BACKLOG = 1024
MAX_ACCEPTS_PER_WAKEUP = 64
RETRY_DELAY = 0.5  # seconds without accepting when not even the reserve descriptor helps
WARNING_INTERVAL = 10.0  # at most one exhaustion warning per this many seconds

_BODY = b"server is out of file descriptors, retry shortly\n"
REJECT_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 5\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n"
    b"\r\n" + _BODY
)

_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE}
_OUT_OF_MEMORY = {errno.ENOBUFS, errno.ENOMEM}
# accept(2), Linux: errors of the connection being accepted, not of the listening socket.
# "Treat them like EAGAIN by retrying."
_CONNECTION_ERRORS = {
    errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN, errno.ENOPROTOOPT,
    errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH, errno.ETIMEDOUT,
    getattr(errno, "ENONET", errno.ENETDOWN),
}


class Acceptor:
    """Listen on host:port and feed accepted connections to an aiohttp runner's server."""

    def __init__(
        self,
        *,
        backlog: int = BACKLOG,
        max_per_wakeup: int = MAX_ACCEPTS_PER_WAKEUP,
        retry_delay: float = RETRY_DELAY,
        warning_interval: float = WARNING_INTERVAL,
    ) -> None:
        self.backlog = backlog
        self.max_per_wakeup = max_per_wakeup
        self.retry_delay = retry_delay
        self.warning_interval = warning_interval
        # counters
        self.accepted = 0  # connections handed to aiohttp
        self.rejected_emfile = 0  # connections answered 503 because descriptors ran out
        self.pauses = 0  # times accepting stopped for retry_delay (not even a 503 possible)
        self.accept_errors = 0  # other accept failures (aborted connections, ...)
        self.sockets: list[socket.socket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._factory: web.Server | None = None
        self._reserve: int | None = None
        self._resume_handle: asyncio.TimerHandle | None = None
        self._reading = False
        self._closed = False
        self._warned = False
        self._last_warning = float("-inf")
        self._unreported = 0
        self._handshakes: set[asyncio.Task[None]] = set()
        self._ssl: ssl.SSLContext | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started with port 0)."""
        port: int = self.sockets[0].getsockname()[1]
        return port

    async def start(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Bind every address `host` resolves to ("" or None: all interfaces) and listen;
        with `ssl_context`, every connection speaks TLS (HTTPS and WSS)."""
        self._ssl = ssl_context
        server = runner.server
        if server is None:
            raise RuntimeError("call runner.setup() before starting the acceptor")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._factory = server
        infos = await loop.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        seen: set[tuple[int, tuple[object, ...]]] = set()
        try:
            for family, type_, proto, _name, address in infos:
                if (family, address) in seen:
                    continue
                seen.add((family, address))
                self.sockets.append(self._listen(family, type_, proto, address))
        except BaseException:
            for sock in self.sockets:
                sock.close()
            self.sockets.clear()
            raise
        self._reserve = _open_reserve()
        self._start_reading()

    def _listen(
        self, family: int, type_: int, proto: int, address: tuple[object, ...]
    ) -> socket.socket:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio does
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"error while attempting to bind on address {address!r}: "
                    f"{(exc.strerror or str(exc)).lower()}",
                ) from None
            sock.listen(self.backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        """Stop listening; connections already handed to aiohttp are the runner's to close."""
        if self._closed:
            return
        self._closed = True
        self._stop_reading()
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        if self._reserve is not None:
            with suppress(OSError):
                os.close(self._reserve)
            self._reserve = None
        for task in list(self._handshakes):
            task.cancel()

    # reading the listening sockets

    def _start_reading(self) -> None:
        assert self._loop is not None
        if self._reading or self._closed:
            return
        for sock in self.sockets:
            self._loop.add_reader(sock, self._on_readable, sock)
        self._reading = True

    def _stop_reading(self) -> None:
        if not self._reading or self._loop is None:
            return
        for sock in self.sockets:
            self._loop.remove_reader(sock)
        self._reading = False

    def _pause(self) -> None:
        """Leave the listening sockets alone for retry_delay seconds, then try again."""
        assert self._loop is not None
        if self._closed or self._resume_handle is not None:
            return
        self.pauses += 1
        self._stop_reading()
        self._resume_handle = self._loop.call_later(self.retry_delay, self._resume)

    def _resume(self) -> None:
        self._resume_handle = None
        if self._closed:
            return
        if self._reserve is None:
            self._reserve = _open_reserve()
        self._start_reading()

    def _on_readable(self, listener: socket.socket) -> None:
        try:
            self._accept_some(listener)
        except Exception:  # never let an exception out of a loop callback
            log.exception("unexpected error accepting connections")
            self._pause()

    def _accept_some(self, listener: socket.socket) -> None:
        for _ in range(self.max_per_wakeup):
            if self._closed or not self._reading:
                return
            try:
                conn, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_DESCRIPTORS:
                    outcome = self._reject_with_reserve(listener)
                    if outcome == "rejected":
                        continue
                    if outcome == "empty":
                        return
                    self._exhaustion_warning(exc, paused=True)
                    self._pause()
                    return
                self.accept_errors += 1
                if exc.errno in _CONNECTION_ERRORS:
                    continue
                if exc.errno in _OUT_OF_MEMORY:
                    self._exhaustion_warning(exc, paused=True)
                else:
                    log.warning("accept failed: %s; retrying in %.1f s", exc, self.retry_delay)
                self._pause()
                return
            self._hand_over(conn)

    def _hand_over(self, conn: socket.socket) -> None:
        assert self._loop is not None
        if self._warned:  # one line per warning, however often the limit is hit
            self._warned = False
            log.info(
                "accepting connections again (%d answered 503 while out of descriptors)",
                self.rejected_emfile,
            )
        self.accepted += 1
        try:
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            conn.close()
            return
        task = self._loop.create_task(self._connect(conn))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _connect(self, conn: socket.socket) -> None:
        assert self._loop is not None and self._factory is not None
        try:
            # With TLS this also runs the handshake (asyncio's default 60 s timeout bounds it).
            await self._loop.connect_accepted_socket(self._factory, conn, ssl=self._ssl)
        except BaseException as exc:
            # The transport detaches or closes the socket itself once it owns it, so this
            # closes the descriptor only if the transport never took it over.
            conn.close()
            if not isinstance(exc, Exception):
                raise
            log.debug("could not set up an accepted connection: %r", exc)

    # out of descriptors

    def _reject_with_reserve(self, listener: socket.socket) -> str:
        """Free the spare descriptor, accept one connection, answer 503, close it.

        Returns "rejected", "empty" (nothing was waiting after all) or "failed".
        """
        if self._reserve is None:
            self._reserve = _open_reserve()
            if self._reserve is None:
                return "failed"
        os.close(self._reserve)
        self._reserve = None
        try:
            try:
                conn, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return "empty"
            except OSError as exc:
                if exc.errno in _CONNECTION_ERRORS:
                    self.accept_errors += 1
                    return "rejected"  # that connection is gone; try the next
                return "failed"
            _reject(conn)
            self.rejected_emfile += 1
            self._unreported += 1
            self._exhaustion_warning(None, paused=False)
            return "rejected"
        finally:
            self._reserve = _open_reserve()

    def _exhaustion_warning(self, exc: OSError | None, *, paused: bool) -> None:
        now = time.monotonic()
        if now - self._last_warning < self.warning_interval:
            return
        self._last_warning = now
        self._warned = True
        limit = _nofile_soft_limit()
        if paused:
            log.warning(
                "cannot accept connections (%s): not accepting for %.1f s; open-file limit %s",
                exc, self.retry_delay, limit,
            )
        else:
            log.warning(
                "out of file descriptors (open-file limit %s): answered %d new connection(s) "
                "with 503 since the last report (%d in total); existing connections are unaffected",
                limit, self._unreported, self.rejected_emfile,
            )
            self._unreported = 0


def _open_reserve() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _reject(conn: socket.socket) -> None:
    """Answer 503 without blocking and close. Reading what already arrived first makes the
    kernel close with FIN rather than RST, so the client gets to read the answer."""
    try:
        conn.setblocking(False)
        with suppress(OSError):
            conn.recv(65536)
        conn.send(REJECT_RESPONSE)
        conn.shutdown(socket.SHUT_WR)
        with suppress(OSError):
            conn.recv(65536)
    except OSError:
        pass
    finally:
        conn.close()


def _nofile_soft_limit() -> str:
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return "unknown"
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
