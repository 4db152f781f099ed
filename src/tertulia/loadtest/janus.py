"""Janus VideoRoom as the other server of a side-by-side benchmark.

Three parts:

- :func:`janus_config`: the configuration files for a Janus 1.x (Debian's ``janus``) that
  listens only on loopback, runs only the VideoRoom plugin and the WebSocket transport, is
  ICE-lite like our bridge and never times sessions out (pure).
- :func:`build_publisher_offer` and :func:`build_subscriber_answer`: the SDP a publisher
  offers (Opus + one VP8 encoding, no simulcast) and the answer to the multistream offer Janus
  sends a subscriber (pure).
- :class:`JanusParticipant`: one synthetic participant over Janus's WebSocket API
  (``janus-protocol``): a session, a publisher handle (``join`` + ``publish``) and, once every
  publisher of the room is up, one subscriber handle that subscribes to every other publisher
  in one PeerConnection (``join`` as subscriber with ``streams``, then ``start``). Both
  PeerConnections are :class:`~tertulia.loadtest.peer.MediaPeer` s, the same code that talks
  to our bridge.

Janus API reference: https://janus.conf.meetecho.com/docs/rest.html (sessions, handles,
transactions) and https://janus.conf.meetecho.com/docs/videoroom.html (requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
from pathlib import Path
from typing import Any

import aiohttp

from tertulia.bridge.transport.dtls import DtlsCertificate
from tertulia.loadtest.media import MediaCache
from tertulia.loadtest.peer import MediaPeer, PeerFailed, Remote, Window
from tertulia.loadtest.sdp import AUDIO_LEVEL_ID, MID_ID, OPUS_PT, VP8_PT, parse_answer
from tertulia.protocol.sdp import EXT_AUDIO_LEVEL, EXT_MID

ROOM = 1234
FEED_BASE = 1000  # publisher ids are FEED_BASE + participant index
STEP_TIMEOUT = 15.0
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")


# -- configuration (pure) ------------------------------------------------------------------------


def janus_config(folder: Path, ws_port: int, rtp_ports: tuple[int, int],
                 publishers: int = 64) -> dict[str, str]:
    """The files (name → text, libconfig syntax) for a loopback Janus with only VideoRoom and
    the WebSocket transport. ``folder`` is where the files and the plugin/transport folders
    (:func:`plugin_links`) will live."""
    general = "\n".join([
        "general: {",
        f'  configs_folder = "{folder}"',
        f'  plugins_folder = "{folder / "plugins"}"',
        f'  transports_folder = "{folder / "transports"}"',
        f'  events_folder = "{folder / "none"}"',
        f'  loggers_folder = "{folder / "none"}"',
        "  debug_level = 3",
        "  session_timeout = 0",  # the benchmark sends no keepalives
        '  server_name = "bench"',
        "}",
        "certificates: {",
        "}",
        "media: {",
        f'  rtp_port_range = "{rtp_ports[0]}-{rtp_ports[1]}"',
        "}",
        "nat: {",
        "  nice_debug = false",
        "  ice_lite = true",  # as our bridge: the client's agent controls (RFC 8445 §2.5)
        "}",
        "plugins: {", "}", "transports: {", "}", "loggers: {", "}",
        "events: {", "  broadcast = false", "}",
        "",
    ])
    videoroom = "\n".join([
        "general: {", "}",
        f"room-{ROOM}: {{",
        '  description = "side-by-side benchmark"',
        f"  publishers = {publishers}",
        "  bitrate = 0",
        "  fir_freq = 0",
        '  audiocodec = "opus"',
        '  videocodec = "vp8"',
        "  notify_joining = false",
        "}",
        "",
    ])
    websockets = "\n".join([
        "general: {",
        '  json = "compact"',
        "  ws = true",
        f"  ws_port = {ws_port}",
        '  ws_ip = "127.0.0.1"',
        "  wss = false",
        "}",
        "admin: {", "  admin_ws = false", "  admin_wss = false", "}",
        "",
    ])
    return {"janus.jcfg": general, "janus.plugin.videoroom.jcfg": videoroom,
            "janus.transport.websockets.jcfg": websockets}


def plugin_links(folder: Path, library: Path = JANUS_LIB) -> dict[Path, Path]:
    """Symbolic links (link → target) that make the VideoRoom plugin and the WebSocket
    transport the only ones Janus finds."""
    return {
        folder / "plugins" / "libjanus_videoroom.so": library / "plugins/libjanus_videoroom.so",
        folder / "transports" / "libjanus_websockets.so":
            library / "transports/libjanus_websockets.so",
    }


def write_config(folder: Path, ws_port: int, rtp_ports: tuple[int, int]) -> Path:
    """Write the files and links under ``folder``; returns the path of janus.jcfg."""
    for sub in ("plugins", "transports", "none"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name, text in janus_config(folder, ws_port, rtp_ports).items():
        (folder / name).write_text(text)
    for link, target in plugin_links(folder).items():
        if not link.exists():
            link.symlink_to(target)
    return folder / "janus.jcfg"


# -- SDP (pure) ----------------------------------------------------------------------------------


def build_publisher_offer(ice_ufrag: str, ice_pwd: str, fingerprint: str,
                          candidate: tuple[str, int], audio_ssrc: int, video_ssrc: int,
                          cname: str) -> str:
    """Opus and one VP8 encoding, sendonly, bundled. ``a=setup:active``: we are the DTLS client
    on every connection (Janus then takes the server role, as it does for ``active``
    answers)."""
    lines = ["v=0", f"o=- {random.randrange(1 << 62)} 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
             "a=group:BUNDLE 0 1", "a=msid-semantic: WMS bench"]
    for mid, kind, pt, ssrc in (("0", "audio", OPUS_PT, audio_ssrc),
                                ("1", "video", VP8_PT, video_ssrc)):
        lines += [f"m={kind} 9 UDP/TLS/RTP/SAVPF {pt}", "c=IN IP4 0.0.0.0",
                  f"a=candidate:1 1 udp 2122260223 {candidate[0]} {candidate[1]} typ host",
                  "a=end-of-candidates", f"a=ice-ufrag:{ice_ufrag}", f"a=ice-pwd:{ice_pwd}",
                  f"a=fingerprint:sha-256 {fingerprint}", "a=setup:active", f"a=mid:{mid}",
                  f"a=extmap:{MID_ID} {EXT_MID}", "a=sendonly", "a=rtcp-mux"]
        if kind == "audio":
            lines += [f"a=extmap:{AUDIO_LEVEL_ID} {EXT_AUDIO_LEVEL}",
                      f"a=rtpmap:{pt} opus/48000/2", f"a=fmtp:{pt} minptime=10;useinbandfec=1"]
        else:
            lines += [f"a=rtpmap:{pt} VP8/90000"]
            lines += [f"a=rtcp-fb:{pt} {fb}" for fb in ("ccm fir", "nack", "nack pli")]
        lines += [f"a=msid:bench {kind}", f"a=ssrc:{ssrc} cname:{cname}"]
    return "\r\n".join(lines) + "\r\n"


def build_subscriber_answer(offer: str, ice_ufrag: str, ice_pwd: str, fingerprint: str,
                            candidate: tuple[str, int]) -> str:
    """Accept every audio/video m-line of Janus's subscriber offer as ``recvonly`` with its
    first payload type (RFC 3264 §6); anything else (data channels) is rejected with port 0."""
    sections: list[list[str]] = []
    for raw in offer.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            sections.append([line])
        elif sections and line:
            sections[-1].append(line)
    if not sections:
        raise ValueError("offer has no m-lines")
    out_sections: list[str] = []
    mids: list[str] = []
    for section in sections:
        kind, port, proto, *pts = section[0][2:].split()
        mid = next((x[6:] for x in section if x.startswith("a=mid:")), str(len(mids)))
        if kind not in ("audio", "video") or port == "0" or not pts:
            out_sections += [f"m={kind} 0 {proto} {' '.join(pts) or '0'}", f"a=mid:{mid}"]
            continue
        pt = pts[0]
        mids.append(mid)
        out_sections += [f"m={kind} 9 UDP/TLS/RTP/SAVPF {pt}", "c=IN IP4 0.0.0.0",
                         f"a=candidate:1 1 udp 2122260223 {candidate[0]} {candidate[1]} typ host",
                         "a=end-of-candidates", f"a=ice-ufrag:{ice_ufrag}", f"a=ice-pwd:{ice_pwd}",
                         f"a=fingerprint:sha-256 {fingerprint}", "a=setup:active",
                         f"a=mid:{mid}", "a=recvonly", "a=rtcp-mux"]
        out_sections += [x for x in section
                         if x.startswith((f"a=rtpmap:{pt} ", f"a=fmtp:{pt} ", f"a=rtcp-fb:{pt} "))]
    head = ["v=0", f"o=- {random.randrange(1 << 62)} 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    if mids:
        head.append("a=group:BUNDLE " + " ".join(mids))
    return "\r\n".join(head + out_sections) + "\r\n"


def remote_of(sdp: str) -> Remote:
    """ICE credentials, candidate and fingerprint of Janus's offer or answer."""
    parsed = parse_answer(sdp)  # the session-level parts are the same as our bridge's
    return Remote(parsed.ice_ufrag, parsed.ice_pwd, parsed.fingerprint, parsed.candidate)


# -- signalling ----------------------------------------------------------------------------------


class JanusError(Exception):
    pass


class JanusSession:
    """One Janus API session over its WebSocket transport: request/response by transaction."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.session_id = 0
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await self.http.ws_connect(self.url, protocols=("janus-protocol",))
        self._reader = asyncio.create_task(self._read())
        reply = await self.request({"janus": "create"})
        self.session_id = int(reply["data"]["id"])

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if data.get("janus") == "ack":  # an asynchronous request was accepted
                continue
            future = self._pending.pop(str(data.get("transaction", "")), None)
            if future is not None and not future.done():
                future.set_result(data)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(JanusError("Janus closed the WebSocket"))

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.ws is not None
        transaction = secrets.token_hex(8)
        future = asyncio.get_running_loop().create_future()
        self._pending[transaction] = future
        if self.session_id:
            message = {**message, "session_id": self.session_id}
        await self.ws.send_str(json.dumps({**message, "transaction": transaction}))
        reply: dict[str, Any] = await asyncio.wait_for(future, STEP_TIMEOUT)
        if reply.get("janus") == "error":
            raise JanusError(str(reply.get("error")))
        return reply

    async def attach(self) -> int:
        reply = await self.request({"janus": "attach", "plugin": "janus.plugin.videoroom"})
        return int(reply["data"]["id"])

    async def message(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
                      ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A VideoRoom request; returns the plugin's data and the JSEP it came with."""
        msg: dict[str, Any] = {"janus": "message", "handle_id": handle, "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        reply = await self.request(msg)
        data: dict[str, Any] = reply.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"{body.get('request')}: {data['error']}")
        return data, reply.get("jsep")

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.request({"janus": "destroy"}), 2)
            with contextlib.suppress(Exception):
                await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


class JanusParticipant:
    """Publishes stamped media and subscribes to every other publisher of the room."""

    def __init__(self, http: aiohttp.ClientSession, url: str, certificate: DtlsCertificate,
                 cache: MediaCache, window: Window, index: int, publishers: int) -> None:
        self.session = JanusSession(http, url)
        self.certificate, self.cache, self.window = certificate, cache, window
        self.index, self.publishers = index, publishers
        self.publisher = MediaPeer(certificate, window, index)
        self.subscriber: MediaPeer | None = None

    @property
    def peers(self) -> list[MediaPeer]:
        return [p for p in (self.publisher, self.subscriber) if p is not None]

    async def publish(self) -> None:
        await self.session.open()
        handle = await self.session.attach()
        await self.session.message(handle, {"request": "join", "ptype": "publisher",
                                            "room": ROOM, "id": FEED_BASE + self.index,
                                            "display": f"load {self.index}"})
        audio_ssrc, video_ssrc = random.randrange(1, 1 << 32), random.randrange(1, 1 << 32)
        peer = self.publisher
        offer = build_publisher_offer(peer.ice.local_username, peer.ice.local_password,
                                      self.certificate.fingerprint, await peer.gather(),
                                      audio_ssrc, video_ssrc, secrets.token_hex(8))
        _, jsep = await self.session.message(
            handle, {"request": "publish", "audio": True, "video": True},
            {"type": "offer", "sdp": offer, "trickle": False})
        if jsep is None or jsep.get("type") != "answer":
            raise PeerFailed("publish: Janus sent no answer")
        await peer.connect(remote_of(jsep["sdp"]))
        peer.start_sending(self.cache, audio_ssrc, video_ssrc)

    async def wait_for_publishers(self, deadline: float) -> list[int]:
        """The other publishers' feed ids once all of them are up (bounded by ``deadline``,
        a loop.time())."""
        handle = await self.session.attach()
        loop = asyncio.get_running_loop()
        others: list[int] = []
        for _ in range(200):  # bounded: also by the deadline
            data, _ = await self.session.message(handle, {"request": "listparticipants",
                                                          "room": ROOM})
            others = [int(p["id"]) for p in data.get("participants", [])
                      if p.get("publisher") and int(p["id"]) != FEED_BASE + self.index]
            if len(others) >= self.publishers - 1 or loop.time() > deadline:
                break
            await asyncio.sleep(0.25)
        with contextlib.suppress(JanusError, TimeoutError):
            await self.session.request({"janus": "detach", "handle_id": handle})
        return sorted(others)

    async def subscribe(self, feeds: list[int]) -> None:
        if not feeds:
            return
        handle = await self.session.attach()
        _, jsep = await self.session.message(handle, {
            "request": "join", "ptype": "subscriber", "room": ROOM,
            "streams": [{"feed": f} for f in feeds]})
        if jsep is None or jsep.get("type") != "offer":
            raise PeerFailed("subscribe: Janus sent no offer")
        peer = self.subscriber = MediaPeer(self.certificate, self.window, self.index)
        answer = build_subscriber_answer(jsep["sdp"], peer.ice.local_username,
                                         peer.ice.local_password, self.certificate.fingerprint,
                                         await peer.gather())
        remote = remote_of(jsep["sdp"])
        await self.session.message(handle, {"request": "start", "room": ROOM},
                                   {"type": "answer", "sdp": answer, "trickle": False})
        await peer.connect(remote)

    async def close(self) -> None:
        for peer in self.peers:
            await peer.close()
        await self.session.close()
