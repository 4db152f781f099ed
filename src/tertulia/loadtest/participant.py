"""One synthetic participant: real signalling, full ICE, DTLS-SRTP, replayed media.

It joins through the signalling WebSocket exactly as the web client does (``join``, one
``offer``, the bridge channel named in ``answer``), runs a controlling ICE agent (aioice)
against the bridge's ICE-lite candidate, the active DTLS side, SRTP (pylibsrtp), and then
sends cached Opus/VP8 packets and counts what it receives without decoding.

After ICE, the datagram path bypasses aioice: aioice parses every datagram as STUN first and
queues data behind an ``asyncio.Queue``, which would cost the load generator more CPU per
packet than the bridge spends forwarding it. Our own protocol object takes over the nominated
socket and demultiplexes by first byte (RFC 7983 §7), handing STUN (consent checks, RFC 7675)
back to aioice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import random
import secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aioice

from tertulia.bridge.rtp.rtcp import Fir, GenericNack, Pli, RtcpParseError, parse_rtcp
from tertulia.bridge.transport.dtls import DtlsCertificate
from tertulia.bridge.transport.srtp import SrtpError, SrtpPair
from tertulia.loadtest.accounting import PerSender, StreamStats
from tertulia.loadtest.dtls import DtlsClient, DtlsError, feed_handshake
from tertulia.loadtest.media import LAYERS, MediaCache
from tertulia.loadtest.peer import Datagrams
from tertulia.loadtest.schedule import Planned, speaking
from tertulia.loadtest.sdp import OfferParams, build_offer, parse_answer
from tertulia.loadtest.sender import MediaSender, SentHistory, active_layers

_RTP = struct.Struct("!BBHII")
Address = tuple[str, int]
STEP_TIMEOUT = 15.0
# Pacing (as browsers do): at most PACE_BURST video packets every PACE_INTERVAL seconds, so a
# key frame (about 90 packets across the three layers) leaves over ~50 ms instead of at once.
PACE_BURST = 8
PACE_INTERVAL = 0.005
RECEIVE_BUFFER = 4 << 20


@dataclass
class Context:
    """What the participants of one worker process share."""

    base_url: str  # http(s)://host:port
    http: aiohttp.ClientSession
    certificate: DtlsCertificate
    cache: MediaCache
    start: float  # wall-clock time.time() of t = 0
    speaking: str = "rotate:5"
    srtp_check: int = 8  # unprotect every Nth RTP packet (1: all) to verify authentication
    senders_in_room: dict[str, int] = field(default_factory=dict)

    @property
    def ws_base(self) -> str:
        return "ws" + self.base_url[4:] if self.base_url.startswith("http") else self.base_url


class JoinFailed(Exception):
    pass


class Participant:
    def __init__(self, ctx: Context, planned: Planned) -> None:
        self.ctx = ctx
        self.plan = planned
        self.name = f"load {planned.index}"
        self.id = ""
        self.state = "waiting"  # waiting, joining, joined, failed, left
        self.error = ""
        self.times: dict[str, float] = {}  # seconds since this participant started joining
        self.join_wall: float | None = None
        self.t0 = 0.0
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.channel: aiohttp.ClientWebSocketResponse | None = None
        self.ice: aioice.Connection | None = None
        self.dtls: DtlsClient | None = None
        self.srtp: SrtpPair | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: Address | None = None
        self._dtls_done: asyncio.Future[None] | None = None
        self.streams: dict[int, StreamStats] = {}  # by slot SSRC
        self.slot_of: dict[int, int] = {}  # slot SSRC -> slot index
        self.video_ssrcs: set[int] = set()
        self.occupants: list[str | None] = []
        self.from_sender: dict[str, PerSender] = {}
        self.sender: MediaSender | None = None
        self.history: dict[int, SentHistory] = {}
        self.active = active_layers(-1)
        self.sent_packets = 0
        self.sent_bytes = 0
        self.nacks = self.plis = self.retransmitted = 0
        self.srtp_errors = self.rtcp_errors = self.dropped = self.send_errors = 0
        self.late_ticks = 0
        self.layer_resumes = 0
        self.channel_messages: dict[str, int] = {}
        self._paced: collections.deque[tuple[int, int, bytes]] = collections.deque()
        self._pacing = False
        self._timers: list[asyncio.TimerHandle] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._rtp_seen = 0

    # -- joining ---------------------------------------------------------------------------

    def _mark(self, what: str) -> None:
        self.times[what] = time.monotonic() - self.t0

    async def run_join(self) -> None:
        self.state, self.t0 = "joining", time.monotonic()
        self.join_wall = time.time()  # wall clock: comparable across worker processes
        try:
            await self._join()
        except (JoinFailed, DtlsError, ConnectionError, aiohttp.ClientError, OSError,
                TimeoutError, ValueError) as exc:
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"[:300]
            await self.close()
            return
        self.state = "joined"

    async def _request(self, message: dict[str, Any], retry: tuple[str, ...] = ()
                       ) -> dict[str, Any]:
        assert self.ws is not None
        for attempt in range(8):  # bounded: rate limits and a busy focus get a few retries
            self._next_id += 1
            future = asyncio.get_running_loop().create_future()
            self._pending[self._next_id] = future
            await self.ws.send_str(json.dumps({**message, "id": self._next_id}))
            reply: dict[str, Any] = await asyncio.wait_for(future, STEP_TIMEOUT)
            if reply.get("type") == "error" and reply.get("code") in retry and attempt < 7:
                await asyncio.sleep(min(4.0, 0.25 * 2**attempt) * (0.7 + 0.6 * random.random()))
                continue
            return reply
        raise JoinFailed("retries exhausted")

    async def _join(self) -> None:
        room = self.plan.room
        url = f"{self.ctx.ws_base}/ws?room={room.lower()}"
        self.ws = await self.ctx.http.ws_connect(url, heartbeat=15.0)
        self._tasks.append(asyncio.create_task(self._read_signal()))
        welcome = await self._request({"type": "join", "room": room, "name": self.name},
                                      retry=("rate-limited",))
        if welcome.get("type") != "welcome":
            raise JoinFailed(f"join refused: {welcome.get('code')} {welcome.get('message')}")
        self.id = welcome["participant"]
        self._mark("welcome")
        self.ice = aioice.Connection(ice_controlling=True, components=1, use_ipv6=False)
        await self.ice.gather_candidates()
        local = self.ice.local_candidates
        if not local:
            raise JoinFailed("no local ICE candidate")
        audio_ssrc = random.randrange(1, 1 << 32)
        offer = build_offer(OfferParams(
            ice_ufrag=self.ice.local_username, ice_pwd=self.ice.local_password,
            fingerprint=self.ctx.certificate.fingerprint, audio_ssrc=audio_ssrc,
            cname=secrets.token_hex(8), slots=int(welcome["slots"]),
            candidate=(local[0].host, local[0].port), session_id=random.randrange(1 << 62),
        ))
        reply = await self._request({"type": "offer", "sdp": offer},
                                    retry=("bridge-unavailable", "rate-limited"))
        if reply.get("type") != "answer":
            raise JoinFailed(f"offer refused: {reply.get('code')} {reply.get('message')}")
        self._mark("answer")
        answer = parse_answer(reply["sdp"])
        for i, (a, v) in enumerate(answer.slots):
            self.streams[a] = StreamStats(48000)
            self.streams[v] = StreamStats(90000)
            self.slot_of[a] = self.slot_of[v] = i
            self.video_ssrcs.add(v)
        self.occupants = [None] * len(answer.slots)
        self.ice.remote_username, self.ice.remote_password = answer.ice_ufrag, answer.ice_pwd
        self.ice.remote_is_lite = answer.ice_lite
        host, port = answer.candidate
        await self.ice.add_remote_candidate(aioice.Candidate(
            foundation="1", component=1, transport="udp", priority=2130706431,
            host=host, port=port, type="host"))
        await self.ice.add_remote_candidate(None)
        await asyncio.wait_for(self.ice.connect(), STEP_TIMEOUT)
        self._mark("ice")
        self._take_over_socket()
        self.dtls = DtlsClient(self.ctx.certificate, answer.fingerprint)
        self._dtls_done = asyncio.get_running_loop().create_future()
        self._send_all(self.dtls.start())
        self._tasks.append(asyncio.create_task(self._dtls_timer()))
        await asyncio.wait_for(self._dtls_done, STEP_TIMEOUT)
        self._mark("dtls")
        channel_url = self.ctx.ws_base + reply["bridgeChannel"]
        self.channel = await self.ctx.http.ws_connect(channel_url, heartbeat=15.0)
        self._tasks.append(asyncio.create_task(self._read_channel()))
        self._mark("channel")
        if self.plan.sender:
            self.sender = MediaSender(self.ctx.cache, audio_ssrc,
                                      tuple(random.randrange(1, 1 << 32) for _ in LAYERS))
            self.history = {s: SentHistory() for s in self.sender.video_ssrcs}
            now = time.monotonic()
            self._audio_tick(now + random.random() * 0.02)
            self._video_tick(now + random.random() / 30)

    def _take_over_socket(self) -> None:
        assert self.ice is not None
        # aioice keeps the nominated pair private; it is the one pair carrying data.
        nominated = getattr(self.ice, "_nominated", {})
        pair = nominated.get(1)
        if pair is None:
            raise JoinFailed("ICE connected but no nominated pair found (aioice changed?)")
        self.transport = pair.protocol.transport
        self.remote = pair.remote_addr
        assert self.transport is not None
        self.transport.set_protocol(Datagrams(self, pair.protocol))
        sock = self.transport.get_extra_info("socket")
        if sock is not None:  # room for bursts while this process is busy (capped by rmem_max)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    async def _dtls_timer(self) -> None:
        for _ in range(200):  # bounded: the handshake either completes or times out
            if self.dtls is None or self.dtls.keys is not None:
                return
            timeout = self.dtls.timeout()
            await asyncio.sleep(min(timeout if timeout is not None else 0.1, 1.0) + 0.01)
            due = self.dtls.timeout() if self.dtls is not None else None
            if self.dtls is not None and due is not None and due <= 0:
                self._send_all(self.dtls.handle_timeout())

    def _send_all(self, datagrams: list[bytes]) -> None:
        if self.transport is not None and self.remote is not None:
            for d in datagrams:
                self.transport.sendto(d, self.remote)

    # -- signalling and bridge channel ---------------------------------------------------------

    async def _read_signal(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            for item in data["messages"] if data.get("type") == "batch" else [data]:
                future = self._pending.pop(item.get("ref", -1), None)
                if future is not None and not future.done():
                    future.set_result(item)
                elif item.get("type") in ("kicked", "meeting-ended"):
                    self.error = f"removed: {item.get('type')}"
                elif item.get("type") == "error" and "ref" not in item:
                    self.error = f"server error: {item.get('code')}"  # media-timeout, …
        if self.state == "joined":
            self.state, self.error = "failed", self.error or "signalling closed by the server"

    async def _read_channel(self) -> None:
        assert self.channel is not None
        async for msg in self.channel:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            kind = str(data.get("type"))
            self.channel_messages[kind] = self.channel_messages.get(kind, 0) + 1
            if kind == "slots":
                self.occupants = [s.get("participant") for s in data["slots"]]
            elif data.get("type") == "sender-constraints" and self.sender is not None:
                active = active_layers(int(data.get("maxHeight", -1)))
                for i, (was, now) in enumerate(zip(self.active, active, strict=True)):
                    if now and not was:  # a resumed layer starts on a key frame
                        self.sender.layers[i].frame = 0
                        self.layer_resumes += 1
                self.active = active

    # -- sending -------------------------------------------------------------------------------

    def _protect_send(self, packet: bytes) -> bytes | None:
        if self.srtp is None or self.transport is None or self.remote is None:
            return None
        data = self.srtp.protect_rtp(packet)
        self.transport.sendto(data, self.remote)
        self.sent_packets += 1
        self.sent_bytes += len(data)
        return data

    def _schedule(self, when: float, callback: Any) -> None:
        loop = asyncio.get_running_loop()
        self._timers = [t for t in self._timers if not t.cancelled()][-4:]
        self._timers.append(loop.call_at(when - time.monotonic() + loop.time(), callback, when))

    def _next(self, when: float, period: float) -> float:
        nxt = when + period
        now = time.monotonic()
        if nxt < now - 0.2:  # far behind (an overloaded machine): skip, do not burst
            self.late_ticks += 1
            return now + period
        return nxt

    def _audio_tick(self, when: float) -> None:
        if self.sender is None or self.state in ("failed", "left"):
            return
        t = time.time() - self.ctx.start
        talking = speaking(self.ctx.speaking, self.plan.position,
                           self.ctx.senders_in_room.get(self.plan.room, 1), t)
        self._protect_send(self.sender.audio_packet(talking))
        self._schedule(self._next(when, 0.02), self._audio_tick)

    def _video_tick(self, when: float) -> None:
        if self.sender is None or self.state in ("failed", "left"):
            return
        for layer, on in enumerate(self.active):
            if not on:
                continue
            ssrc = self.sender.video_ssrcs[layer]
            frame = self.sender.video_frame(layer)
            self._paced.extend((ssrc, seq, packet) for seq, packet in frame)
        if not self._pacing:
            self._pace()
        self._schedule(self._next(when, 1 / 30), self._video_tick)

    def _pace(self) -> None:
        for _ in range(min(PACE_BURST, len(self._paced))):
            ssrc, seq, packet = self._paced.popleft()
            data = self._protect_send(packet)
            if data is not None:
                self.history[ssrc].add(ssrc, seq, data)
        self._pacing = bool(self._paced) and self.state not in ("failed", "left")
        if self._pacing:
            asyncio.get_running_loop().call_later(PACE_INTERVAL, self._pace)

    # -- receiving -----------------------------------------------------------------------------

    def on_dtls(self, data: bytes) -> None:
        if self.dtls is None:
            return
        keys = feed_handshake(self.dtls, data, self._send_all, self._dtls_done)
        if keys is not None and self.srtp is None:
            self.srtp = SrtpPair(keys.rx, keys.tx)

    def on_srtp(self, data: bytes) -> None:
        if self.srtp is None or len(data) < 12:
            self.dropped += 1
            return
        if 192 <= data[1] <= 223:  # RFC 5761 §4: RTCP
            self._on_rtcp(data)
            return
        _b0, _b1, seq, ts, ssrc = _RTP.unpack_from(data)
        stats = self.streams.get(ssrc)
        if stats is None:
            self.dropped += 1  # not a slot SSRC (e.g. RTX, which is not offered)
            return
        self._rtp_seen += 1
        if self._rtp_seen % self.ctx.srtp_check == 1 or self.ctx.srtp_check == 1:
            try:
                self.srtp.unprotect_rtp(data)
            except SrtpError:
                self.srtp_errors += 1
                return
        now = time.monotonic()
        if "first_media" not in self.times:
            self._mark("first_media")
        stats.add(seq, ts, len(data), now)
        slot = self.slot_of[ssrc]
        occupant = self.occupants[slot] if slot < len(self.occupants) else None
        if occupant is not None:
            per = self.from_sender.get(occupant)
            if per is None:
                per = self.from_sender[occupant] = PerSender()
            if ssrc in self.video_ssrcs:
                per.video += 1
            else:
                per.audio += 1

    def _on_rtcp(self, data: bytes) -> None:
        assert self.srtp is not None
        try:
            packets = parse_rtcp(self.srtp.unprotect_rtcp(data))
        except (SrtpError, RtcpParseError):
            self.rtcp_errors += 1
            return
        now = time.monotonic()
        for packet in packets:
            if isinstance(packet, (Pli, Fir)) and self.sender is not None:
                self.plis += 1
                ssrcs = ([packet.media_ssrc] if isinstance(packet, Pli)
                         else [e[0] for e in packet.entries])
                for ssrc in ssrcs:
                    self.sender.request_keyframe(ssrc, now)
            elif isinstance(packet, GenericNack):
                self.nacks += 1
                history = self.history.get(packet.media_ssrc)
                for seq in packet.lost:
                    again = history.get(packet.media_ssrc, seq) if history else None
                    if again is not None and self.transport is not None and self.remote:
                        self.transport.sendto(again, self.remote)
                        self.retransmitted += 1

    # -- results ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Counters for the periodic sample (cheap; summed by the worker)."""
        streams = list(self.streams.values())
        return {
            "packets": sum(s.packets for s in streams),
            "bytes": sum(s.bytes for s in streams),
            "expected": sum(s.expected for s in streams),
            "lost": sum(s.lost for s in streams),
            "jitter_ms": max((s.jitter_ms for s in streams if s.packets > 1), default=0.0),
        }

    def result(self) -> dict[str, Any]:
        streams = [(ssrc, s) for ssrc, s in self.streams.items() if s.packets]
        return {
            "index": self.plan.index,
            "room": self.plan.room,
            "sender": self.plan.sender,
            "id": self.id,
            "state": self.state,
            "error": self.error,
            "times": {k: round(v, 4) for k, v in self.times.items()},
            "join_wall": self.join_wall,
            **self.snapshot(),
            "audio_jitter_ms": max((s.jitter_ms for i, s in streams
                                    if i not in self.video_ssrcs), default=0.0),
            "video_jitter_ms": max((s.jitter_ms for i, s in streams if i in self.video_ssrcs),
                                   default=0.0),
            "audio_expected": sum(s.expected for i, s in streams if i not in self.video_ssrcs),
            "audio_lost": sum(s.lost for i, s in streams if i not in self.video_ssrcs),
            "video_expected": sum(s.expected for i, s in streams if i in self.video_ssrcs),
            "video_lost": sum(s.lost for i, s in streams if i in self.video_ssrcs),
            "from": {k: {"audio": v.audio, "video": v.video} for k, v in self.from_sender.items()},
            "gaps": {str(i): s.gaps for i, s in streams if s.gaps},
            "sent_packets": self.sent_packets,
            "sent_bytes": self.sent_bytes,
            "plis": self.plis, "nacks": self.nacks, "retransmitted": self.retransmitted,
            "keyframe_restarts": self.sender.keyframe_restarts if self.sender else 0,
            "srtp_errors": self.srtp_errors, "rtcp_errors": self.rtcp_errors,
            "dropped": self.dropped, "send_errors": self.send_errors,
            "late_ticks": self.late_ticks,
            "layer_resumes": self.layer_resumes,
            "channel_messages": self.channel_messages,
        }

    async def close(self) -> None:
        if self.state == "joined":
            self.state = "left"
        for timer in self._timers:
            timer.cancel()
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.send_str(json.dumps({"type": "leave"}))
        for ws in (self.channel, self.ws):
            if ws is not None and not ws.closed:
                with contextlib.suppress(Exception):
                    await ws.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.ice is not None:
            with contextlib.suppress(Exception):
                await self.ice.close()
            self.ice = None
