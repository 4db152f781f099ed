"""A relay to another bridge of a conference: transport, and the relayed participants.

Transport: the two bridges meet on their media ports with ICE + DTLS-SRTP, like a browser
and the bridge. The focus gives each side the other's address, ICE ufrag/password and DTLS
fingerprint over the authenticated control API (``relay-open`` / ``relay-connect``). The
*active* side sends ICE connectivity checks (controlling, with USE-CANDIDATE; RFC 8445
§7.2.4) that the passive side answers exactly like a client's, and is the DTLS client; the
passive side is the DTLS server. Both check the peer's certificate against the signalled
fingerprint (RFC 8122 §5) and derive SRTP keys from the handshake (RFC 5764 §4.2). Relay
control messages (bridge/relay.py) travel as DTLS application data on the same association.

Far side: each participant the other bridge sends becomes a :class:`RelayedEndpoint` in the
conference: a sender with no receive slots, so the conference's own slots, layers, last-N,
bandwidth allocation and dominant speaker treat it like a local sender.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aioice import stun

from tertulia.bridge.endpoint import Address, Endpoint, SendingMedia
from tertulia.bridge.relay import (
    MAX_MESSAGE,
    RelayMessageError,
    RelayPeer,
    SourceDescription,
    constraints_message,
    describe,
    encode,
    keyframe_message,
    parse_message,
    should_relay,
    source_message,
    sources_message,
)
from tertulia.bridge.rtp.rtcp import (
    Fir,
    Pli,
    RtcpPacket,
    RtcpParseError,
    SenderReport,
    parse_rtcp,
    serialize_rtcp,
)
from tertulia.bridge.sender import TrafficStats
from tertulia.bridge.transport.dtls import DtlsCertificate
from tertulia.bridge.transport.ice import IceCredentials, random_ice_string
from tertulia.bridge.transport.relay_dtls import RelayDtls
from tertulia.bridge.transport.srtp import SrtpError
from tertulia.protocol.sdp import (
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_RID,
    NegotiatedMedia,
    Negotiation,
)

if TYPE_CHECKING:
    from tertulia.bridge.conference import Conference

log = logging.getLogger(__name__)

STATE_INTERVAL = 1.0  # sources, descriptions and constraints are re-sent this often
CHECK_INTERVAL = 0.5  # the active side's connectivity checks (consent, RFC 7675 §5.1)
RELAY_TIMEOUT = 10.0  # nothing authenticated heard for this long: the relay is down
STREAM_WINDOW = 5.0  # an SSRC counts as a relayed stream if a packet crossed this recently

Transmit = Callable[[bytes, Address], None]


def _negotiated(description: SourceDescription) -> Negotiation:
    by_role: dict[str, NegotiatedMedia] = {}
    for m in description.media:
        extmaps = {uri: ext for uri, ext in ((EXT_AUDIO_LEVEL, m.level_ext),
                                             (EXT_MID, m.mid_ext), (EXT_RID, m.rid_ext))
                   if ext is not None}
        by_role[m.role] = NegotiatedMedia(
            mid=m.mid, kind=m.kind, payload_type=m.payload_type,
            clock_rate=48000 if m.kind == "audio" else 90000, channels=None, fmtp=None,
            rtcp_fb=(), extmaps=extmaps, ssrcs=(), rids=m.rids)
    return Negotiation(audio=by_role.get("audio"), video=by_role.get("video"), slots=(),
                       rejected=(), screen=by_role.get("screen"))


class RelayedEndpoint(Endpoint):
    """A participant of another bridge, seen here through a relay: it sends, never receives."""

    relayed = True

    def __init__(self, relay: Relay, description: SourceDescription, now: float) -> None:
        creds = IceCredentials("relayed", random_ice_string(24), "-", "-")
        super().__init__(description.participant, relay.conference.id, _negotiated(description),
                         creds, relay.certificate, "", lambda data, addr: None, now)
        self.relay = relay
        self.twcc_ext_id = None  # the sender's own bridge answers its transport-wide feedback
        self.shape = description.shape()
        self.update(description)

    def update(self, description: SourceDescription) -> None:
        """Learn (or forget) SSRCs and simulcast layers from a fresh description."""
        self.media_by_ssrc.clear()
        for m in description.media:
            media = self.sending.get(m.role)
            if media is None:
                continue
            for ssrc, layer in m.ssrcs:
                self.media_by_ssrc[ssrc] = media
                if layer >= 0:
                    media.layer_of[ssrc] = layer

    @property
    def connected(self) -> bool:
        return self.relay.connected

    def send_rtcp(self, packets: list[RtcpPacket]) -> None:
        """Keyframe requests go to the sender's bridge; other feedback stays here (the far
        bridge keeps its own RTCP with the sender)."""
        for packet in packets:
            if isinstance(packet, Pli):
                self.relay.request_keyframe(packet.media_ssrc)
            elif isinstance(packet, Fir):
                for ssrc, _ in packet.entries:
                    self.relay.request_keyframe(ssrc)


@dataclass(slots=True)
class RelayStats(TrafficStats):
    messages_in: int = 0
    messages_out: int = 0
    keyframes_requested: int = 0
    streams_in: dict[int, float] = field(default_factory=dict)  # ssrc -> last packet
    streams_out: dict[int, float] = field(default_factory=dict)


def _live(streams: dict[int, float], now: float) -> int:
    for ssrc in [s for s, t in streams.items() if now - t > 4 * STREAM_WINDOW]:
        del streams[ssrc]  # bounded: forget streams long gone
    return sum(1 for t in streams.values() if now - t < STREAM_WINDOW)


class Relay:
    """One conference's relay to one other bridge (``peer_id``)."""

    def __init__(self, conference: Conference, peer_id: str, certificate: DtlsCertificate,
                 transmit: Transmit, now: float) -> None:
        self.conference = conference
        self.peer_id = peer_id
        self.certificate = certificate
        self._transmit = transmit
        self.creds = IceCredentials(random_ice_string(8), random_ice_string(24), "", "")
        self.peer: RelayPeer | None = None
        self.active = False
        self.dtls: RelayDtls | None = None
        self.addr: Address | None = None
        self.created = now
        self.last_heard = now
        self.closed = False
        self.stats = RelayStats()
        self.remote: dict[str, RelayedEndpoint] = {}  # participants of the far bridge
        self._owner: dict[int, RelayedEndpoint] = {}  # far SSRC -> its participant
        self.heights: dict[str, int] = {}  # far receivers' wants, per local camera
        self._announced: dict[str, SourceDescription] = {}  # what we last described
        self._known: set[int] = set()  # every SSRC described
        self._last_state = -1e9
        self._last_check = -1e9
        self._sent_heights: dict[str, int] = {}

    # -- setup ------------------------------------------------------------------------------

    def connect(self, peer: RelayPeer, active: bool, now: float) -> None:
        """``relay-connect``: the far side's parameters; the active side starts at once."""
        self.peer = peer
        self.active = active
        self.creds.remote_ufrag, self.creds.remote_pwd = peer.ufrag, peer.pwd
        self.dtls = RelayDtls(self.certificate, peer.fingerprint, active)
        self.last_heard = now
        if active:
            self.addr = (peer.ip, peer.port)
            self._check(now)
            self._send_all(self.dtls.handshake())

    @property
    def connected(self) -> bool:
        return (not self.closed and self.dtls is not None and self.dtls.srtp is not None
                and self.addr is not None)

    def _send_all(self, datagrams: list[bytes]) -> None:
        if self.addr is not None:
            for data in datagrams:
                self._transmit(data, self.addr)

    def _check(self, now: float) -> None:
        """A connectivity check to the passive side (RFC 8445 §7.2.4): it learns our
        address from it, and each one renews consent (RFC 7675)."""
        if self.addr is None:
            return
        self._last_check = now
        request = stun.Message(message_method=stun.Method.BINDING,
                               message_class=stun.Class.REQUEST)
        request.attributes["USERNAME"] = f"{self.creds.remote_ufrag}:{self.creds.local_ufrag}"
        request.attributes["PRIORITY"] = 0x7E0000FF  # host candidate (RFC 8445 §5.1.2.1)
        request.attributes["ICE-CONTROLLING"] = secrets.randbits(64)
        request.attributes["USE-CANDIDATE"] = None
        request.add_message_integrity(self.creds.remote_pwd.encode())
        request.add_fingerprint()
        self._transmit(bytes(request), self.addr)

    def accept_check(self, addr: Address, now: float) -> None:
        """Passive side: a valid check from the active side (bridge.py answered it)."""
        self.addr = addr
        self.last_heard = now

    # -- datagrams --------------------------------------------------------------------------

    def heard(self, now: float) -> None:
        self.last_heard = now

    def on_dtls(self, data: bytes, now: float) -> None:
        if self.dtls is None:
            self.stats.drop("dtls-before-connect")
            return
        was = self.dtls.srtp is not None
        out, messages = self.dtls.feed(data)
        self._send_all(out)
        if self.dtls.failed:
            self.stats.drop("dtls-failed")
            for participant in list(self.remote):  # nothing more can come from them
                self._remove_remote(participant)
            return
        self.last_heard = now
        if not was and self.dtls.srtp is not None:
            log.info("relay to bridge %s connected", self.peer_id,
                     extra={"conference": self.conference.id})
            self._last_state = -1e9
            self.tick(now)
        for message in messages:
            self._on_message(message, now)

    def on_rtp(self, data: bytes, now: float) -> None:
        srtp = self.dtls.srtp if self.dtls is not None else None
        if srtp is None:
            self.stats.drop("rtp-before-dtls")
            return
        try:
            plain = srtp.unprotect_rtp(data)
        except SrtpError:
            self.stats.drop("srtp-auth")
            return
        if len(plain) < 12:
            self.stats.drop("malformed-rtp")
            return
        self.last_heard = now
        ssrc = int.from_bytes(plain[8:12], "big")
        self.stats.rtp_in += 1
        self.stats.bytes_in += len(data)
        sender = self._owner.get(ssrc)
        if sender is None:
            self.stats.drop("unannounced-ssrc")
            return
        if self.conference.endpoints.get(sender.id) is not sender:
            self.stats.drop("source-is-local")  # it moved here: its old copy must not mix in
            return
        self.stats.streams_in[ssrc] = now
        sender.stats.rtp_in += 1
        sender.stats.bytes_in += len(data)
        self.conference.on_rtp(sender, plain, now)

    def on_rtcp(self, data: bytes, now: float) -> None:
        srtp = self.dtls.srtp if self.dtls is not None else None
        if srtp is None:
            self.stats.drop("rtcp-before-dtls")
            return
        try:
            packets = parse_rtcp(srtp.unprotect_rtcp(data))
        except (SrtpError, RtcpParseError, ValueError):
            self.stats.drop("srtcp-auth-or-malformed")
            return
        self.last_heard = now
        self.stats.rtcp_in += 1
        for packet in packets:
            if isinstance(packet, SenderReport):
                sender = self._owner.get(packet.ssrc)
                if sender is not None and self.conference.endpoints.get(sender.id) is sender:
                    self.conference.on_rtcp(sender, [packet], now)

    # -- sending ------------------------------------------------------------------------------

    def forward_rtp(self, sender: Endpoint, media: SendingMedia, ssrc: int, plain: bytes,
                    now: float) -> None:
        """Every packet of a local sender goes over the relay once (bridge/relay.py)."""
        if not should_relay(getattr(sender, "relayed", False), media.blocked):
            return
        if not self.connected:
            return
        if ssrc not in self._known:
            self._describe(sender)  # a new SSRC: tell the far side before its packets
            self._known.add(ssrc)  # once: one beyond the description's cap is not retried
        srtp = self.dtls.srtp if self.dtls is not None else None
        assert srtp is not None and self.addr is not None
        data = srtp.protect_rtp(plain)
        self.stats.rtp_out += 1
        self.stats.bytes_out += len(data)
        self.stats.streams_out[ssrc] = now
        self._transmit(data, self.addr)

    def forward_sender_reports(self, sender: Endpoint, packets: list[RtcpPacket]) -> None:
        """A local sender's SRs (lip sync, RFC 3550 §6.4.1) go to the far side too."""
        if getattr(sender, "relayed", False) or not self.connected:
            return
        reports = [SenderReport(ssrc=p.ssrc, ntp_timestamp=p.ntp_timestamp,
                                rtp_timestamp=p.rtp_timestamp, packet_count=p.packet_count,
                                octet_count=p.octet_count, reports=[])
                   for p in packets if isinstance(p, SenderReport)]
        srtp = self.dtls.srtp if self.dtls is not None else None
        if not reports or srtp is None or self.addr is None:
            return
        data = srtp.protect_rtcp(serialize_rtcp(reports))
        self.stats.rtcp_out += 1
        self.stats.bytes_out += len(data)
        self._transmit(data, self.addr)

    def send_message(self, message: bytes) -> None:
        if self.dtls is None or len(message) > MAX_MESSAGE:
            if len(message) > MAX_MESSAGE:
                self.stats.drop("message-too-large-to-send")
            return
        self.stats.messages_out += 1
        self._send_all(self.dtls.send(message))

    def announce(self, sender: Endpoint) -> None:
        """Describe a local participant now (its screen share went on or off)."""
        if self.connected:
            self._describe(sender)

    def _describe(self, sender: Endpoint) -> None:
        description = describe(sender)
        self._announced[sender.id] = description
        self._known = {s for d in self._announced.values() for s in d.ssrcs()}
        self.send_message(encode(source_message(description)))

    def request_keyframe(self, ssrc: int) -> None:
        self.stats.keyframes_requested += 1
        self.send_message(encode(keyframe_message(ssrc)))

    def max_height(self, sender_id: str) -> int | None:
        """What the far side's receivers want of a local camera (None: not sent there)."""
        if sender_id not in self._announced:
            return None
        return self.heights.get(sender_id, -1)  # until told, assume no limit

    # -- relay messages ---------------------------------------------------------------------

    def _on_message(self, data: bytes, now: float) -> None:
        try:
            kind, body = parse_message(data)
        except RelayMessageError as exc:
            self.stats.drop("bad-message")
            log.debug("relay message dropped: %s", exc)
            return
        self.stats.messages_in += 1
        if kind == "source" and isinstance(body, SourceDescription):
            self._on_source(body, now)
        elif kind == "sources" and isinstance(body, list):
            for participant in [p for p in self.remote if p not in body]:
                self._remove_remote(participant)
        elif kind == "constraints" and isinstance(body, dict):
            self.heights = body
        elif kind == "keyframe" and isinstance(body, int):
            self._on_keyframe(body, now)

    def _on_source(self, description: SourceDescription, now: float) -> None:
        participant = description.participant
        existing = self.remote.get(participant)
        local = self.conference.endpoints.get(participant)
        if local is not None and local is not existing:
            self.stats.drop("source-is-local")  # a participant that moved here: local wins
            return
        if existing is not None and existing.shape != description.shape():
            self._remove_remote(participant)
            existing = None
        if existing is None:
            existing = RelayedEndpoint(self, description, now)
            self.remote[participant] = existing
            self.conference.add(existing)
        else:
            existing.update(description)
        self._owner = {s: e for e in self.remote.values() for s in e.media_by_ssrc}
        if description.sharing != existing.sharing and "screen" in existing.sending:
            self.conference.set_sharing(existing, description.sharing, now)

    def _remove_remote(self, participant: str) -> None:
        endpoint = self.remote.pop(participant, None)
        if endpoint is not None and self.conference.endpoints.get(participant) is endpoint:
            self.conference.remove(participant)
            endpoint.close()
        self._owner = {s: e for e in self.remote.values() for s in e.media_by_ssrc}

    def _on_keyframe(self, ssrc: int, now: float) -> None:
        for endpoint in self.conference.endpoints.values():
            media = endpoint.media_by_ssrc.get(ssrc)
            if media is not None and not getattr(endpoint, "relayed", False):
                self.conference.request_keyframe(endpoint, now, media.role,
                                                 ssrc if media.layered else None)
                return

    # -- timers -------------------------------------------------------------------------------

    def _heights(self) -> dict[str, int]:
        return {p: e.max_height_wanted for p, e in self.remote.items()
                if e.max_height_wanted is not None}

    def tick(self, now: float) -> None:
        """Handshake retransmissions, checks, and the periodic state messages (constraints
        also at once when they change)."""
        if self.closed or self.dtls is None:
            return
        if self.dtls.timeout_due():
            self._send_all(self.dtls.handle_timeout())
        if self.active and now - self._last_check >= CHECK_INTERVAL:
            self._check(now)
        if not self.connected:
            return
        if now - self._last_state < STATE_INTERVAL:
            heights = self._heights()
            if heights != self._sent_heights:
                self._sent_heights = heights
                self.send_message(encode(constraints_message(heights)))
            return
        self._last_state = now
        local = [e for e in self.conference.endpoints.values()
                 if not getattr(e, "relayed", False)]
        ids = {e.id for e in local}
        self._announced = {k: v for k, v in self._announced.items() if k in ids}
        self.send_message(encode(sources_message([e.id for e in local])))
        for endpoint in local:
            self._describe(endpoint)
        heights = self._heights()
        self._sent_heights = heights
        self.send_message(encode(constraints_message(heights)))

    def expired(self, now: float) -> bool:
        return not self.closed and now - self.last_heard > RELAY_TIMEOUT

    def close(self) -> None:
        """Idempotent: remove the far side's participants and say goodbye."""
        if self.closed:
            return
        for participant in list(self.remote):
            self._remove_remote(participant)
        if self.dtls is not None:
            self._send_all(self.dtls.close())
        self.closed = True

    def streams(self, now: float) -> tuple[int, int]:
        """(SSRCs received, SSRCs sent) over this relay in the last few seconds."""
        return _live(self.stats.streams_in, now), _live(self.stats.streams_out, now)
