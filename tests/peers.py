"""aiortc test peers that join through the real signalling and media through the real bridge."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aioice.ice
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from av import AudioFrame, VideoFrame


def allow_loopback_candidates() -> None:
    """aioice skips 127.0.0.1 when gathering; tests on loopback need it."""

    def loopback_only(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
        return ["127.0.0.1"] if use_ipv4 else []

    aioice.ice.get_host_addresses = loopback_only  # type: ignore[assignment]


class ToneTrack(MediaStreamTrack):
    """A 440 Hz-ish tone in 20 ms frames (distinct per peer), so received audio is not silence."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: float = 8000.0, *, bursts: bool = False
                 ) -> None:
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self.bursts = bursts  # speech-like: 300 ms of tone, 200 ms of silence
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        rate, samples = 48000, 960
        if self._start is None:
            self._start = time.time()
        wait = self._start + self._pts / rate - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(samples) + self._pts) / rate
        amplitude = self.amplitude
        if self.bursts:  # syllable-like loudness changes (a steady tone counts as noise)
            frame = self._pts // samples
            amplitude *= 0.0 if frame % 25 >= 15 else 0.05 + 0.95 * abs(math.sin(frame * 0.7))
        data = (np.sin(2 * math.pi * self.frequency * t) * amplitude).astype(np.int16)
        frame = AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, rate)
        self._pts += samples
        return frame


class PatternTrack(MediaStreamTrack):
    """Small synthetic video (cheap to encode on two cores)."""

    kind = "video"

    def __init__(self, shade: int, width: int = 160, height: int = 120, fps: int = 15) -> None:
        super().__init__()
        self.shade = shade
        self.width, self.height, self.fps = width, height, fps
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        if self._start is None:
            self._start = time.time()
        wait = self._start + self._count / self.fps - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        img = np.full((self.height, self.width, 3), self.shade, dtype=np.uint8)
        img[:, (self._count * 4) % self.width] = 255
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = self._count * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self._count += 1
        return frame


@dataclass
class SlotCounter:
    video_frames: int = 0
    audio_frames: int = 0
    last_video_size: tuple[int, int] | None = None
    audio_energy: float = 0.0


@dataclass
class Peer:
    """One synthetic participant."""

    name: str
    ws_url: str
    room: str
    slots: int = 2
    shade: int = 80
    fps: int = 15  # camera frame rate (lower it where many peers share a few cores)
    # Offer abs-send-time, so aiortc estimates its downlink and sends REMB. Many peers in one
    # CPU-starved process see their own scheduling delay as congestion and report a few kbit/s,
    # and the bridge then rightly suspends video: tests about something else may turn it off.
    receive_estimate: bool = True
    frequency: float = 440.0
    loudness: float = 8000.0  # tone amplitude; 0 sends silence
    talking: bool = False  # speech-like bursts instead of a steady tone
    id: str = ""
    pc: RTCPeerConnection | None = None
    session: aiohttp.ClientSession | None = None
    ws: aiohttp.ClientWebSocketResponse | None = None
    channel: aiohttp.ClientWebSocketResponse | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    channel_messages: list[dict[str, Any]] = field(default_factory=list)
    bytes_received: int = 0
    slot_map: list[str | None] = field(default_factory=list)
    counters: dict[int, SlotCounter] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    answer_sdp: str = ""
    screen: bool = False  # also offer a screen share (sendonly) and a screen slot (recvonly)
    screen_frames: int = 0
    screen_size: tuple[int, int] | None = None
    screen_occupant: str | None = None
    sharing: list[str] = field(default_factory=list)
    _pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _next_id: int = 0
    use_ice_servers: bool = False  # use the welcome's iceServers (TURN) instead of none
    ice_servers: list[RTCIceServer] = field(default_factory=list)
    media_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    renegotiations: int = 0  # fresh offers sent after a `renegotiate` from the server
    renegotiate_failures: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # on the signalling WebSocket

    async def request(self, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        assert self.ws is not None
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = future
        await self.ws.send_json({**message, "id": self._next_id})
        return await asyncio.wait_for(future, timeout)

    async def join(self) -> None:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.ws_url, headers=self.headers)
        self._tasks.append(asyncio.create_task(self._read_signal()))
        welcome = await self.request({"type": "join", "room": self.room, "name": self.name})
        assert welcome["type"] == "welcome", welcome
        self.id = welcome["participant"]
        self.present = {p["id"] for p in welcome["participants"]}
        self.slots = min(self.slots, welcome["slots"])

        self.ice_servers = [
            RTCIceServer(urls=s["urls"], username=s.get("username"),
                         credential=s.get("credential"))
            for s in welcome.get("iceServers", [])
        ] if self.use_ice_servers else []
        await self._start_media()

    async def _start_media(self) -> None:
        """One RTCPeerConnection, one offer, the bridge channel and a consumer per slot."""
        assert self.session is not None
        self.media_tasks = []
        config = RTCConfiguration(iceServers=list(self.ice_servers),
                                  bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.pc = RTCPeerConnection(config)
        mic = ToneTrack(self.frequency, self.loudness, bursts=self.talking)
        self.pc.addTransceiver(mic, direction="sendonly")
        self.pc.addTransceiver(PatternTrack(self.shade, fps=self.fps), direction="sendonly")
        if self.screen:
            self.pc.addTransceiver(PatternTrack(250, 320, 180, 5), direction="sendonly")
        for _ in range(self.slots):
            self.pc.addTransceiver("audio", direction="recvonly")
            self.pc.addTransceiver("video", direction="recvonly")
        if self.screen:
            self.pc.addTransceiver("video", direction="recvonly")
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)
        sdp = self.pc.localDescription.sdp
        if not self.receive_estimate:  # no abs-send-time: no REMB from this peer
            sdp = "".join(line for line in sdp.splitlines(keepends=True)
                          if "rtp-hdrext/abs-send-time" not in line)
        answer = await self.request({"type": "offer", "sdp": sdp})
        assert answer["type"] == "answer", answer
        self.answer_sdp = answer["sdp"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        self._route_rtx(answer["sdp"])
        base = self.ws_url.rsplit("/ws", 1)[0]  # a relative channel path is on the shard
        channel = answer["bridgeChannel"]
        self.channel = await self.session.ws_connect(
            channel if channel.startswith("http") else base + channel)
        self._media_task(self._read_channel())
        transceivers = self.pc.getTransceivers()
        for i in range(self.slots):
            self.counters[i] = SlotCounter()
            self._media_task(self._consume(i, transceivers))
        if self.screen:
            self._media_task(self._consume_screen(transceivers[-1]))

    def _media_task(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.append(task)
        self.media_tasks.append(task)

    async def renegotiate(self) -> None:
        """The server asked for a fresh offer (its bridge failed): start media over with a new
        peer connection and a new bridge channel; counters restart from zero."""
        for task in self.media_tasks:
            task.cancel()
        for task in self.media_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = [t for t in self._tasks if t not in self.media_tasks]
        if self.channel is not None and not self.channel.closed:
            await self.channel.close()
        if self.pc is not None:
            await self.pc.close()
        self.counters = {}
        self.slot_map = []
        await self._start_media()
        self.renegotiations += 1

    def _route_rtx(self, answer: str) -> None:
        """Work around aiortc 1.16's RTP router: it never registers RTX SSRCs and routes an
        unknown SSRC only by payload type, which several slot m-lines share, so RTX would be
        dropped. Bind each FID group's RTX SSRC (RFC 5576 §4.2) to its m-line's receiver."""
        assert self.pc is not None
        by_mid = {t.mid: t for t in self.pc.getTransceivers()}
        for section in answer.split("\r\nm=")[1:]:
            lines = section.split("\r\n")
            mid = next((x[6:] for x in lines if x.startswith("a=mid:")), None)
            fid = next((x.split()[1:] for x in lines if x.startswith("a=ssrc-group:FID ")), None)
            transceiver = by_mid.get(mid)
            if transceiver is not None and fid and len(fid) == 2:
                router = transceiver.receiver.transport._rtp_router
                router.ssrc_table[int(fid[1])] = transceiver.receiver

    async def _consume_screen(self, transceiver: RTCRtpTransceiver) -> None:
        try:
            while True:
                frame = await transceiver.receiver.track.recv()
                self.screen_frames += 1
                self.screen_size = (frame.width, frame.height)
        except Exception:
            return

    async def share_screen(self, active: bool) -> None:
        assert self.channel is not None
        await self.channel.send_json({"type": "sharing", "screen": active})

    async def _read_signal(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = msg.json()
            self.bytes_received += len(msg.data)
            items = data["messages"] if data.get("type") == "batch" else [data]
            for item in items:
                self._absorb(item)

    def _absorb(self, data: dict[str, Any]) -> None:
        self.messages.append(data)
        future = self._pending.pop(data.get("ref", -1), None)
        if future is not None and not future.done():
            future.set_result(data)
        if data["type"] == "participant-joined":
            self.present.add(data["participant"]["id"])
        elif data["type"] == "participant-left":
            self.present.discard(data["id"])
        elif data["type"] == "renegotiate":
            self._tasks.append(asyncio.create_task(self._renegotiate_logged()))

    async def _renegotiate_logged(self) -> None:
        try:
            await self.renegotiate()
        except Exception as exc:  # recorded so a test can show why recovery failed
            self.renegotiate_failures.append(repr(exc))

    async def _read_channel(self) -> None:
        assert self.channel is not None
        async for msg in self.channel:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = msg.json()
            self.channel_messages.append(data)
            self.bytes_received += len(msg.data)
            if data["type"] == "slots":
                self.slot_map = [s["participant"] for s in data["slots"]]
                self.screen_occupant = data.get("screen")
                self.sharing = data.get("sharing", [])

    async def _consume(self, slot: int, transceivers: list[RTCRtpTransceiver]) -> None:
        base = 3 if self.screen else 2
        audio = transceivers[base + 2 * slot].receiver.track
        video = transceivers[base + 1 + 2 * slot].receiver.track
        counter = self.counters[slot]

        async def audio_loop() -> None:
            while True:
                frame = await audio.recv()
                counter.audio_frames += 1
                samples = frame.to_ndarray().astype(np.float64)
                counter.audio_energy = float(np.sqrt(np.mean(samples**2)))

        async def video_loop() -> None:
            while True:
                frame = await video.recv()
                counter.video_frames += 1
                counter.last_video_size = (frame.width, frame.height)

        try:
            await asyncio.gather(audio_loop(), video_loop())
        except Exception:  # track ended (MediaStreamError) when the peer closes
            return

    def frames_from(self, participant_id: str) -> SlotCounter | None:
        for slot, occupant in enumerate(self.slot_map):
            if occupant == participant_id:
                return self.counters.get(slot)
        return None

    async def leave(self, *, clean: bool = True) -> None:
        if clean and self.ws is not None and not self.ws.closed:
            await self.ws.send_json({"type": "leave"})
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.pc is not None:
            await self.pc.close()
            self.pc = None
        for ws in (self.channel, self.ws):
            if ws is not None and not ws.closed:
                await ws.close()
        if self.session is not None:
            await self.session.close()
            self.session = None


async def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (bounded loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())
