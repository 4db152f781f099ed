"""One media connection of a side-by-side benchmark: ICE, DTLS-SRTP, a stamped single-layer
sender and a counting receiver, independent of whose server is on the other end.

It is the load generator's participant (``participant.py``) cut down to what a comparison
between servers needs and nothing server-specific: the caller does the signalling (ours or
Janus's) and hands over the remote ICE credentials, candidate and fingerprint. As there, after
ICE the nominated socket is taken over from aioice and datagrams are demultiplexed by first
byte (RFC 7983 §7), STUN going back to aioice for consent checks (RFC 7675).

What it sends is the same for every server: Opus (one speech frame per 20 ms packet) and
*one* VP8 layer (the cache's 1,280×720, ~1.5 Mbit/s layer, no simulcast), each packet's
payload ending in a latency stamp (``latency.py``), video paced like a browser.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import aioice

from tertulia.bridge.rtp.packet import build_extension_block
from tertulia.bridge.rtp.rtcp import Fir, GenericNack, Pli, RtcpParseError, parse_rtcp
from tertulia.bridge.transport.dtls import DtlsCertificate
from tertulia.bridge.transport.srtp import SrtpError, SrtpPair
from tertulia.loadtest.accounting import StreamStats, Totals, totals
from tertulia.loadtest.dtls import DtlsClient, feed_handshake
from tertulia.loadtest.latency import read_stamp, stamp_payload
from tertulia.loadtest.media import FPS, MediaCache, vp8_descriptor
from tertulia.loadtest.sdp import AUDIO_LEVEL_ID, MID_ID, OPUS_PT, VP8_PT

_HDR = struct.Struct("!BBHII")
_B0 = 0x90  # version 2, extension present
VIDEO_LAYER = 2  # the cache's top layer: 1280×720 at ~1.5 Mbit/s
PACE_BURST, PACE_INTERVAL = 8, 0.005  # as participant.py
KEYFRAME_REQUEST_INTERVAL = 0.2
RECEIVE_BUFFER = 4 << 20
STEP_TIMEOUT = 15.0
Address = tuple[str, int]


class PeerFailed(Exception):
    pass


@dataclass(slots=True)
class Remote:
    """What the signalling told us about the server's side of this connection."""

    ice_ufrag: str
    ice_pwd: str
    fingerprint: str  # sha-256, upper case
    candidate: Address


@dataclass(slots=True)
class Window:
    """Whether the measured window is open, shared by every peer of one worker process."""

    open: bool = False
    latency_us: list[int] = field(default_factory=list)
    latency_every: int = 4  # unprotect every Nth received RTP packet to read its stamp


class DatagramOwner(Protocol):
    """What Datagrams needs from the peer that owns the socket."""

    dropped: int
    send_errors: int

    def on_dtls(self, data: bytes) -> None: ...

    def on_srtp(self, data: bytes) -> None: ...


class Datagrams(asyncio.DatagramProtocol):
    """The media socket of a synthetic peer: STUN to aioice, DTLS and SRTP to the owner
    (RFC 7983 §7 demultiplexing)."""

    def __init__(self, owner: DatagramOwner, stun: asyncio.DatagramProtocol) -> None:
        self.owner = owner
        self.stun = stun

    def datagram_received(self, data: bytes, addr: Address) -> None:
        first = data[0] if data else 255
        if first < 4:  # RFC 7983 §7: STUN
            self.stun.datagram_received(data, addr)
        elif 20 <= first < 64:
            self.owner.on_dtls(data)
        elif 128 <= first < 192:
            self.owner.on_srtp(data)
        else:
            self.owner.dropped += 1

    def error_received(self, exc: Exception) -> None:
        self.owner.send_errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.stun.connection_lost(exc)  # aioice waits for it when closing


class MediaPeer:
    def __init__(self, certificate: DtlsCertificate, window: Window, index: int) -> None:
        self.certificate = certificate
        self.window = window
        self.index = index  # the participant's number, stamped into what it sends
        self.ice = aioice.Connection(ice_controlling=True, components=1, use_ipv6=False)
        self.dtls: DtlsClient | None = None
        self.srtp: SrtpPair | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: Address | None = None
        self._dtls_done: asyncio.Future[None] | None = None
        self.streams: dict[int, StreamStats] = {}
        self.dropped = self.srtp_errors = self.rtcp_errors = self.send_errors = 0
        self.plis = self.nacks = self.sent_packets = 0
        self.srtp_error_kinds: collections.Counter[str] = collections.Counter()
        self._received = 0
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self.sender: StampedSender | None = None

    async def gather(self) -> Address:
        """Our host candidate, for the offer or answer."""
        await self.ice.gather_candidates()
        if not self.ice.local_candidates:
            raise PeerFailed("no local ICE candidate")
        c = self.ice.local_candidates[0]
        return c.host, c.port

    async def connect(self, remote: Remote) -> None:
        """ICE (we control; both servers are ICE-lite here), then DTLS as the client."""
        self.ice.remote_username, self.ice.remote_password = remote.ice_ufrag, remote.ice_pwd
        self.ice.remote_is_lite = True
        host, port = remote.candidate
        await self.ice.add_remote_candidate(aioice.Candidate(
            foundation="1", component=1, transport="udp", priority=2130706431,
            host=host, port=port, type="host"))
        await self.ice.add_remote_candidate(None)
        await asyncio.wait_for(self.ice.connect(), STEP_TIMEOUT)
        pair = getattr(self.ice, "_nominated", {}).get(1)
        if pair is None:
            raise PeerFailed("ICE connected but no nominated pair found (aioice changed?)")
        self.transport, self.remote = pair.protocol.transport, pair.remote_addr
        assert self.transport is not None
        self.transport.set_protocol(Datagrams(self, pair.protocol))
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self.dtls = DtlsClient(self.certificate, remote.fingerprint)
        self._dtls_done = asyncio.get_running_loop().create_future()
        self._send_all(self.dtls.start())
        self._tasks.append(asyncio.create_task(self._dtls_timer()))
        await asyncio.wait_for(self._dtls_done, STEP_TIMEOUT)

    async def _dtls_timer(self) -> None:
        for _ in range(200):  # bounded: the handshake either completes or times out
            if self.dtls is None or self.dtls.keys is not None:
                return
            timeout = self.dtls.timeout()
            await asyncio.sleep(min(timeout if timeout is not None else 0.1, 1.0) + 0.01)
            due = self.dtls.timeout()
            if due is not None and due <= 0:
                self._send_all(self.dtls.handle_timeout())

    def _send_all(self, datagrams: list[bytes]) -> None:
        if self.transport is not None and self.remote is not None:
            for d in datagrams:
                self.transport.sendto(d, self.remote)

    def send_rtp(self, packet: bytes) -> None:
        if self.srtp is None or self.transport is None or self.remote is None or self._closed:
            return
        self.transport.sendto(self.srtp.protect_rtp(packet), self.remote)
        self.sent_packets += 1

    def start_sending(self, cache: MediaCache, audio_ssrc: int, video_ssrc: int) -> None:
        self.sender = StampedSender(self, cache, audio_ssrc, video_ssrc)
        self.sender.start()

    # -- receiving ---------------------------------------------------------------------------

    def on_dtls(self, data: bytes) -> None:
        if self.dtls is None:
            return
        keys = feed_handshake(self.dtls, data, self._send_all, self._dtls_done,
                              failure=lambda exc: PeerFailed(str(exc)))
        if keys is not None and self.srtp is None:
            self.srtp = SrtpPair(keys.rx, keys.tx)

    def on_srtp(self, data: bytes) -> None:
        if self.srtp is None or len(data) < 12:
            self.dropped += 1
            return
        if 192 <= data[1] <= 223:  # RFC 5761 §4: RTCP
            self._on_rtcp(data)
            return
        now = time.monotonic_ns()
        _b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
        stats = self.streams.get(ssrc)
        if stats is None:
            stats = self.streams[ssrc] = StreamStats(48000 if b1 & 0x7F == OPUS_PT else 90000)
        stats.add(seq, ts, len(data), now / 1e9)
        self._received += 1
        # Every Nth packet is unprotected from the first one on, not only inside the window:
        # libsrtp infers the rollover counter from the sequence numbers it has seen (RFC 3711
        # §3.3.1), so a stream whose first unprotected packet comes after a wrap would fail.
        if self._received % self.window.latency_every == 1 or self.window.latency_every == 1:
            try:
                plain = self.srtp.unprotect_rtp(data)
            except SrtpError as exc:  # e.g. a replayed index (RFC 3711 §3.3.2)
                self.srtp_errors += 1
                self.srtp_error_kinds[str(exc)[:60]] += 1
                return
            stamp = read_stamp(plain)
            if stamp is not None and self.window.open:
                self.window.latency_us.append((now - stamp[1]) // 1000)

    def _on_rtcp(self, data: bytes) -> None:
        assert self.srtp is not None
        try:
            packets = parse_rtcp(self.srtp.unprotect_rtcp(data))
        except (SrtpError, RtcpParseError):
            self.rtcp_errors += 1
            return
        for packet in packets:
            if isinstance(packet, (Pli, Fir)):
                self.plis += 1
                if self.sender is not None:
                    self.sender.keyframe(time.monotonic())
            elif isinstance(packet, GenericNack):
                self.nacks += 1  # counted, not answered: this peer keeps no packet history

    def totals(self) -> Totals:
        return totals(list(self.streams.values()))

    async def close(self) -> None:
        self._closed = True
        if self.sender is not None:
            self.sender.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.ice.close()


class StampedSender:
    """Opus every 20 ms and one VP8 layer at 30 fps, replayed from the cache, stamped."""

    def __init__(self, peer: MediaPeer, cache: MediaCache, audio_ssrc: int,
                 video_ssrc: int) -> None:
        self.peer = peer
        self.cache = cache
        self.audio_ssrc, self.video_ssrc = audio_ssrc, video_ssrc
        self.audio_seq = self.video_seq = 0
        self.audio_ts = self.video_ts = 0
        self.frame = self.audio_frame = 0
        self.picture_id = 0
        self.last_restart = -1e9
        self.keyframe_restarts = 0
        self._audio_ext = {level: build_extension_block(
            [(AUDIO_LEVEL_ID, bytes((0x80 | level,))), (MID_ID, b"0")]) for level in range(128)}
        self._video_ext = build_extension_block([(MID_ID, b"1")])
        self._paced: collections.deque[bytes] = collections.deque()
        self._pacing = False
        self._handles: list[asyncio.TimerHandle] = []
        self._stopped = False

    def start(self) -> None:
        now = time.monotonic()
        self._audio_tick(now)
        self._video_tick(now)

    def stop(self) -> None:
        self._stopped = True
        for handle in self._handles:
            handle.cancel()

    def keyframe(self, now: float) -> None:
        """A PLI/FIR: replay from the cached key frame (at most every 200 ms)."""
        if now - self.last_restart >= KEYFRAME_REQUEST_INTERVAL:
            self.last_restart = now
            self.frame = 0
            self.keyframe_restarts += 1

    def _at(self, when: float, callback: Callable[[float], None]) -> None:
        loop = asyncio.get_running_loop()
        self._handles = [h for h in self._handles if not h.cancelled()][-4:]
        self._handles.append(loop.call_at(when - time.monotonic() + loop.time(), callback, when))

    @staticmethod
    def _next(when: float, period: float) -> float:
        nxt, now = when + period, time.monotonic()
        return now + period if nxt < now - 0.2 else nxt  # far behind: skip, do not burst

    def _audio_tick(self, when: float) -> None:
        if self._stopped:
            return
        frames = self.cache.speech
        f = frames[self.audio_frame % len(frames)]
        self.audio_frame += 1
        packet = (_HDR.pack(_B0, OPUS_PT, self.audio_seq, self.audio_ts, self.audio_ssrc)
                  + self._audio_ext[f.level] + f.payload)
        self.audio_seq = (self.audio_seq + 1) & 0xFFFF
        self.audio_ts = (self.audio_ts + 960) & 0xFFFFFFFF
        self.peer.send_rtp(stamp_payload(packet, self.peer.index, time.monotonic_ns()))
        self._at(self._next(when, 0.02), self._audio_tick)

    def _video_tick(self, when: float) -> None:
        if self._stopped:
            return
        frames = self.cache.layers[VIDEO_LAYER]
        frame = frames[self.frame % len(frames)]
        last = len(frame.chunks) - 1
        for i, chunk in enumerate(frame.chunks):
            b1 = VP8_PT | (0x80 if i == last else 0)
            self._paced.append(
                _HDR.pack(_B0, b1, self.video_seq, self.video_ts, self.video_ssrc)
                + self._video_ext + vp8_descriptor(i == 0, self.picture_id, self.picture_id)
                + chunk)
            self.video_seq = (self.video_seq + 1) & 0xFFFF
        self.picture_id = (self.picture_id + 1) & 0x7FFF
        self.video_ts = (self.video_ts + 90000 // FPS) & 0xFFFFFFFF
        self.frame = (self.frame + 1) % len(frames)  # the loop starts again on its key frame
        if not self._pacing:
            self._pace()
        self._at(self._next(when, 1 / FPS), self._video_tick)

    def _pace(self) -> None:
        for _ in range(min(PACE_BURST, len(self._paced))):
            packet = self._paced.popleft()
            self.peer.send_rtp(stamp_payload(packet, self.peer.index, time.monotonic_ns()))
        self._pacing = bool(self._paced) and not self._stopped
        if self._pacing:
            asyncio.get_running_loop().call_later(PACE_INTERVAL, self._pace)
