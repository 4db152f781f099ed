"""The bridge's one UDP socket: batched reads with kernel arrival times, non-blocking sends.

Written on the raw socket rather than asyncio's datagram transport for two reasons:

* Arrival times. Transport-wide congestion feedback (bridge/bwe.py) tells senders when each
  packet arrived; the sender's estimator reads growing delays as congestion. Stamping packets
  when Python gets round to them adds the event loop's own delays, so the kernel stamps them
  instead (``SO_TIMESTAMPNS``, socket(7)).
* Sends. asyncio's datagram transport keeps every datagram it could not send at once in an
  unbounded buffer, in order, for every destination: one receiver behind a full queue would
  delay everybody. Here a datagram that does not fit the socket buffer is dropped and counted,
  as a router would, and the receiver's NACKs and estimate take care of the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Callable

Address = tuple[str, int]
Deliver = Callable[[bytes, Address, float | None], None]

MAX_DATAGRAM = 2048  # larger than any RTP/RTCP/DTLS datagram we accept (MTU-sized)
BATCH = 64  # datagrams read per wake-up at most, so timers and other sockets get their turn
BUFFER_BYTES = 4 << 20  # asked for; the kernel caps it at net.core.[rw]mem_max
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)
_SCM_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", -1)  # SCM_ value = SO_ value (socket(7))


class UdpSocket:
    def __init__(self, deliver: Deliver, on_error: Callable[[str], None]) -> None:
        self._deliver = deliver
        self._on_error = on_error
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.timestamps = False
        # kernel clock (CLOCK_REALTIME) minus time.monotonic(), to bring stamps to monotonic
        self._offset = time.time() - time.monotonic()

    def open(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                # else keep the default size; doctor reports small buffers
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, option, BUFFER_BYTES)
            if _SCM_TIMESTAMPNS >= 0:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, _SCM_TIMESTAMPNS, 1)
                    self.timestamps = True
                except OSError:
                    self.timestamps = False
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        if self._sock is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None

    def sendto(self, data: bytes, addr: Address) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendto(data, addr)
        except BlockingIOError:
            self._on_error("dropped-send-buffer-full")
        except OSError:
            self._on_error("send-error")

    def _readable(self) -> None:
        sock = self._sock
        offset = self._offset
        for _ in range(BATCH):
            if sock is None:
                return
            try:
                data, ancillary, _flags, addr = sock.recvmsg(MAX_DATAGRAM, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error reported for an earlier send
                self._on_error("socket-error")
                continue
            arrival: float | None = None
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == _SCM_TIMESTAMPNS and (
                    len(value) >= _TIMESPEC.size
                ):
                    seconds, nanos = _TIMESPEC.unpack_from(value)
                    arrival = seconds + nanos * 1e-9 - offset
            self._deliver(data, (addr[0], addr[1]), arrival)
            sock = self._sock
