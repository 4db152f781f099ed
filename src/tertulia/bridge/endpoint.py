"""One participant's media connection on this bridge.

An endpoint owns its transport state (ICE-lite credentials and addresses, DTLS, SRTP), what it
sends (its audio and video sources, identified by payload type and SSRC) and what it receives
(its fixed receive slots). Routing between endpoints is the conference's job.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tertulia.bridge.bwe import RateMeter, ReceiverEstimate, RttMeter, TwccRecorder
from tertulia.bridge.constraints import ReceiverConstraints
from tertulia.bridge.rtp.history import PacketHistory
from tertulia.bridge.rtp.packet import abs_send_time, set_extension_value
from tertulia.bridge.rtp.rtcp import RtcpPacket, serialize_rtcp
from tertulia.bridge.rtp.temporal import TemporalMeter
from tertulia.bridge.sendside import SendSideEstimate
from tertulia.bridge.subscription import SlotStream
from tertulia.bridge.transport.dtls import DtlsCertificate, DtlsServer, DtlsState
from tertulia.bridge.transport.ice import IceCredentials
from tertulia.bridge.transport.srtp import SrtpPair
from tertulia.protocol.sdp import (
    EXT_ABS_SEND_TIME,
    EXT_AUDIO_LEVEL,
    EXT_MID,
    EXT_RID,
    EXT_TWCC,
    NegotiatedMedia,
    Negotiation,
    SlotSource,
)

log = logging.getLogger(__name__)

Address = tuple[str, int]
IP_UDP_OVERHEAD = 28  # IPv4 + UDP header bytes per datagram (what a link carries beyond it)
# What a link carries per RTP packet beyond it: the SRTP tag (10 bytes with
# AES_CM_128_HMAC_SHA1_80, RFC 3711 §8.2) and IP/UDP; send-side estimates are link rates.
WIRE_OVERHEAD = 10 + IP_UDP_OVERHEAD
# SSRCs an endpoint may use (declared and learned). A browser uses about ten: audio, three
# simulcast layers and their RTX, a screen and its RTX; SSRCs beyond this are not forwarded.
MAX_SSRCS = 64
Transmit = Callable[[bytes, Address], None]


@dataclass(slots=True)
class SendingMedia:
    """One thing the endpoint sends (mic, camera or screen): parameters and current SSRC."""

    role: str  # "audio" | "video" (camera) | "screen"
    kind: str  # "audio" | "video"
    mid: str
    payload_type: int
    extmap: dict[str, int]
    current_ssrc: int | None = None
    last_keyframe_request: float = -1e9
    keyframe_requests: int = 0
    blocked: bool = False  # a moderator muted it: packets are dropped, not forwarded
    last_packet: float = -1e9
    audio_level_id: int | None = None  # RFC 6464 header extension id, for audio
    # simulcast (RFC 8853): layers by rid, lowest resolution first, learned from the rid
    # header extension (RFC 8852 §3) since Chrome declares no SSRCs for them
    rids: tuple[str, ...] = ()
    rid_ext_id: int | None = None
    layer_of: dict[int, int] = field(default_factory=dict)  # ssrc -> layer index
    last_seen: dict[int, float] = field(default_factory=dict)  # ssrc -> last packet time
    layer_height: dict[int, int] = field(default_factory=dict)  # ssrc -> keyframe height
    rate: dict[int, RateMeter] = field(default_factory=dict)  # ssrc -> its bit rate (video)
    # ssrc -> bit and frame rates of its VP8 temporal layers (video; rtp/temporal.py)
    temporal: dict[int, TemporalMeter] = field(default_factory=dict)

    @property
    def layered(self) -> bool:
        return len(self.rids) > 1

    def layers(self, now: float, window: float = 1.0) -> list[int]:
        """SSRCs of the layers that sent in the last ``window`` seconds, lowest first."""
        live = [s for s in self.layer_of if now - self.last_seen.get(s, -1e9) < window]
        return sorted(live, key=lambda s: self.layer_of[s])


@dataclass(slots=True)
class EndpointStats:
    rtp_in: int = 0
    rtp_out: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    nacks_received: int = 0
    retransmissions: int = 0
    rtx_sent: int = 0
    nack_misses: int = 0
    plis_received: int = 0
    padding_sent: int = 0
    remb_received: int = 0
    twcc_sent: int = 0
    twcc_received: int = 0  # transport-wide feedback about what the bridge sends it
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def _slot_stream(
    kind: str, media: NegotiatedMedia, cname: str, history_age: float
) -> SlotStream:
    rtx = media.rtx_payload_type
    return SlotStream(
        kind=kind,
        ssrc=random.randrange(1, 1 << 32),
        payload_type=media.payload_type,
        clock_rate=media.clock_rate,
        receiver_extmap=dict(media.extmaps),
        mid=media.mid,
        cname=cname,
        history=PacketHistory(max_age=history_age),
        rtx_ssrc=random.randrange(1, 1 << 32) if rtx is not None else None,
        rtx_payload_type=rtx,
    )


class Endpoint:
    """Transport and media state of one participant on this bridge."""

    def __init__(
        self,
        endpoint_id: str,
        conference_id: str,
        negotiation: Negotiation,
        creds: IceCredentials,
        certificate: DtlsCertificate,
        remote_fingerprint: str,
        transmit: Transmit,
        now: float,
        *,
        history_age: float = 1.0,
    ) -> None:
        self.id = endpoint_id
        self.conference_id = conference_id
        self.negotiation = negotiation
        self.creds = creds
        self.dtls = DtlsServer(certificate, remote_fingerprint)
        self.srtp: SrtpPair | None = None
        self._transmit = transmit
        self.created = now
        self.last_consent: float | None = None
        self.addr: Address | None = None
        self.valid_addrs: set[Address] = set()
        self.closed = False
        self.stats = EndpointStats()
        self.channel_token = secrets.token_urlsafe(18)
        self.channel_listeners: list[Callable[[dict[str, Any]], None]] = []

        self.sending: dict[str, SendingMedia] = {}
        self.media_by_ssrc: dict[int, SendingMedia] = {}
        for role, media in (
            ("audio", negotiation.audio),
            ("video", negotiation.video),
            ("screen", negotiation.screen),
        ):
            if media is None:
                continue
            sending = SendingMedia(
                role, media.kind, media.mid, media.payload_type, dict(media.extmaps)
            )
            if media.kind == "audio":
                sending.audio_level_id = media.extmaps.get(EXT_AUDIO_LEVEL)
            if media.kind == "video" and len(media.rids) > 1:
                sending.rids = media.rids
                sending.rid_ext_id = media.extmaps.get(EXT_RID)
            self.sending[role] = sending
            for ssrc in media.ssrcs[:1]:  # the first is the media SSRC (RFC 5576 §4.2)
                self.media_by_ssrc[ssrc] = sending
        self.by_mid = {m.mid: m for m in self.sending.values()}
        self._mid_ext_ids = {
            m.extmap[EXT_MID] for m in self.sending.values() if EXT_MID in m.extmap
        }
        # Bandwidth (bridge/bwe.py): the uplink's transport-wide sequence numbers, reported
        # back to the sender; the downlink's estimate, allocation and probing.
        self.twcc_ext_id = next(
            (m.extmap[EXT_TWCC] for m in self.sending.values() if EXT_TWCC in m.extmap), None
        )
        self.twcc = TwccRecorder()
        self.estimate = ReceiverEstimate()
        self.rtt = RttMeter()  # from its reception reports about the SRs we send it
        self.send_rate = RateMeter()
        self.audio_rate = RateMeter()  # audio sent to it, IP/UDP included: reserved first
        # sender id -> (layer SSRC, highest TID) it gets (None: off); allocation.py
        self.allocation: dict[str, tuple[int, int] | None] = {}
        self.bwe_suspended: set[str] = set()  # senders whose video does not fit the estimate
        self.padding_bps = 0.0
        self.padding_credit = 0.0  # bytes of padding owed
        self.probe_until = 0.0  # a probe above the estimate runs until then (bwe.py)
        self.next_probe = 0.0
        self.sharing = False  # the client says its screen share is on
        self.max_height_wanted: int | None = None  # last `sender-constraints` sent
        self.constraints = ReceiverConstraints()
        # senders whose camera video this endpoint receives (see Conference.update_video_selection)
        self.videos: set[str] = set()
        self.wanted_videos: list[str] = []  # by last-N and constraints, in priority order

        # Receive slots: (audio, video) stream pairs, and who occupies each.
        self.slots: list[tuple[SlotStream, SlotStream]] = []
        for i, (audio, video) in enumerate(negotiation.slots):
            cname = f"slot-{i}-{secrets.token_hex(4)}"
            self.slots.append(
                (
                    _slot_stream("audio", audio, cname, history_age),
                    _slot_stream("video", video, cname, history_age),
                )
            )
        self.occupants: list[str | None] = [None] * len(self.slots)
        self.screen_slot: SlotStream | None = None
        if negotiation.screen_slot is not None:
            self.screen_slot = _slot_stream(
                "video", negotiation.screen_slot, f"screen-{secrets.token_hex(4)}",
                history_age,
            )
        self.screen_occupant: str | None = None
        self.sharers: list[str] = []  # everyone sharing a screen, most recent last
        self.stream_by_ssrc: dict[int, SlotStream] = {}
        for pair in self.slots:
            for stream in pair:
                self.stream_by_ssrc[stream.ssrc] = stream
        if self.screen_slot is not None:
            self.stream_by_ssrc[self.screen_slot.ssrc] = self.screen_slot
        # the receiver's abs-send-time id: stamped on every video packet as it leaves
        video_slots = [pair[1] for pair in self.slots]
        if self.screen_slot is not None:
            video_slots.append(self.screen_slot)
        self.abs_send_time_id = next(
            (v.receiver_extmap[EXT_ABS_SEND_TIME] for v in video_slots
             if EXT_ABS_SEND_TIME in v.receiver_extmap), None
        )
        # slot streams whose abs-send-time element is the one _stamped() would fill in get
        # the send time while they rewrite the header (SlotStream.forward), saving a scan; the
        # others need no scan unless their ids put another element on that id
        stamp_id = self.abs_send_time_id
        for stream in self.stream_by_ssrc.values():
            extmap = stream.receiver_extmap
            stream.stamp_send_time = stamp_id is not None and (
                extmap.get(EXT_ABS_SEND_TIME) == stamp_id
            )
            stream.send_time_scan = (
                stamp_id is not None and not stream.stamp_send_time
                and stamp_id in extmap.values()
            )
        # The receiver's transport-wide-cc id on what the bridge sends it (protocol/sdp.py
        # accepts it only with rtcp-fb transport-cc): the bridge then numbers every packet it
        # sends and estimates from the receiver's feedback (bridge/sendside.py), not REMB.
        self.twcc_send_id = next(
            (s.receiver_extmap[EXT_TWCC] for s in self.stream_by_ssrc.values()
             if EXT_TWCC in s.receiver_extmap), None
        )
        self.sendside = SendSideEstimate() if self.twcc_send_id is not None else None
        self.probe_wanted: float | None = None  # bit/s its layers would take, when above

    def identify(
        self, ssrc: int, pt: int, extensions: list[tuple[int, bytes]]
    ) -> SendingMedia | None:
        """Which sending media a new SSRC belongs to: by its mid header extension (RFC 8843
        §9.2), else by payload type when only one sending media uses it. At most MAX_SSRCS
        are learned per endpoint, so a client cycling through SSRCs cannot grow memory."""
        if len(self.media_by_ssrc) >= MAX_SSRCS:
            return None
        for ext_id, value in extensions:
            if ext_id in self._mid_ext_ids:
                media = self.by_mid.get(value.decode(errors="replace"))
                if media is not None and media.payload_type == pt:
                    if media.layered:
                        return self._identify_layer(media, ssrc, extensions)
                    self.media_by_ssrc[ssrc] = media
                    return media
        candidates = [m for m in self.sending.values() if m.payload_type == pt]
        if len(candidates) == 1:  # camera and screen share a payload type: then mid decides
            if candidates[0].layered:
                return self._identify_layer(candidates[0], ssrc, extensions)
            self.media_by_ssrc[ssrc] = candidates[0]
            return candidates[0]
        return None

    def _identify_layer(
        self, media: SendingMedia, ssrc: int, extensions: list[tuple[int, bytes]]
    ) -> SendingMedia | None:
        """Place a new SSRC of a simulcast camera by its rid (RFC 8852 §3)."""
        for ext_id, value in extensions:
            if ext_id == media.rid_ext_id:
                rid = value.decode(errors="replace")
                if rid in media.rids:
                    media.layer_of[ssrc] = media.rids.index(rid)
                    self.media_by_ssrc[ssrc] = media
                    return media
        return None

    # -- negotiation helpers -------------------------------------------------------------

    def slot_sources(self) -> dict[str, SlotSource]:
        """What the SDP answer declares for each receive m-line, keyed by mid."""
        out: dict[str, SlotSource] = {}
        for i, (audio, video) in enumerate(self.slots):
            stream_id = f"slot-{i}"
            out[audio.mid] = SlotSource(audio.ssrc, audio.cname, stream_id, f"slot-{i}-audio")
            out[video.mid] = SlotSource(
                video.ssrc, video.cname, stream_id, f"slot-{i}-video", video.rtx_ssrc
            )
        if self.screen_slot is not None:
            screen = self.screen_slot
            out[screen.mid] = SlotSource(
                screen.ssrc, screen.cname, "screen", "screen-video", screen.rtx_ssrc
            )
        return out

    # -- transport -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.srtp is not None and self.addr is not None and not self.closed

    def accept_check(self, addr: Address, nominated: bool, now: float) -> None:
        """A valid connectivity check arrived from ``addr`` (also consent, RFC 7675 §5.1)."""
        self.last_consent = now
        self.valid_addrs.add(addr)
        if nominated or self.addr is None:
            self.addr = addr

    def on_dtls(self, data: bytes, addr: Address) -> bool:
        """Feed a DTLS datagram; returns True when the handshake just completed."""
        was = self.dtls.state
        for out in self.dtls.feed(data):
            self._transmit(out, addr)
        if self.dtls.state == DtlsState.CONNECTED and was != DtlsState.CONNECTED:
            keys = self.dtls.keys
            assert keys is not None
            self.srtp = SrtpPair(keys.rx, keys.tx)
            if self.addr is None:
                self.addr = addr
            return True
        return False

    def dtls_tick(self, now: float) -> None:
        """Retransmit handshake flights when OpenSSL's timer says so (RFC 6347 §4.2.4)."""
        timeout = self.dtls.timeout()
        if timeout is not None and timeout <= 0 and self.addr is not None:
            for out in self.dtls.handle_timeout():
                self._transmit(out, self.addr)

    # -- sending to this endpoint ----------------------------------------------------------

    def _stamped(self, packet: bytes, now: float, renumber: bool = False) -> bytes:
        """The packet with the bridge's send time in abs-send-time, which the receiver's
        estimator reads (bridge/bwe.py); with ``renumber`` (a packet sent again from the
        history: RTX, padding) also with a new transport-wide number, recorded."""
        sendside = self.sendside if renumber else None
        if self.abs_send_time_id is None and sendside is None:
            return packet
        buf = bytearray(packet)
        changed = self.abs_send_time_id is not None and set_extension_value(
            buf, self.abs_send_time_id, abs_send_time(now))
        if sendside is not None and self.twcc_send_id is not None:
            history = sendside.history
            if set_extension_value(buf, self.twcc_send_id, (history.seq & 0xFFFF).to_bytes(2)):
                history.add(now, len(buf) + WIRE_OVERHEAD)
                changed = True
        return bytes(buf) if changed else packet

    def send_rtp(
        self, packet: bytes, stream: SlotStream, seq: int, now: float, *,
        stamped: bool = False, payload: bytes = b"", twcc_at: int = -1,
    ) -> None:
        """Send the rewritten packet ``packet + payload`` of ``stream`` (given apart, the
        payload is neither copied nor kept once per receiver); ``stamped`` when there is
        nothing to stamp (Forwarded.stamped); ``twcc_at`` where in ``packet`` this
        receiver's transport-wide number goes (Forwarded.twcc_at)."""
        if self.srtp is None or self.addr is None:
            return
        sendside = self.sendside
        if twcc_at >= 0 and sendside is not None:  # one 2-byte write, one ring slot
            n = sendside.history.add(now, len(packet) + len(payload) + WIRE_OVERHEAD)
            packet = b"".join((packet[:twcc_at], n.to_bytes(2), packet[twcc_at + 2:]))
        if not stamped:
            packet = self._stamped(packet + payload, now)
            payload = b""
        data = self.srtp.protect_rtp_parts(packet, payload)
        # plaintext: retransmissions are protected anew
        stream.history.add(seq, packet, now, payload)
        self.stats.rtp_out += 1
        self.stats.bytes_out += len(data)
        self.send_rate.add(len(data))
        if stream.kind == "audio":
            self.audio_rate.add(len(data) + IP_UDP_OVERHEAD)
        self._transmit(data, self.addr)

    def send_padding(self, stream: SlotStream, budget: int, now: float) -> int:
        """Probe: resend the newest packets of ``stream`` on its RTX stream (RFC 4588 §4),
        up to ``budget`` bytes; the receiver drops the duplicates but its estimator counts
        them. Returns the bytes sent."""
        if self.srtp is None or self.addr is None or stream.rtx_ssrc is None:
            return 0
        sent = 0
        for plain in stream.history.newest(8, now):
            if sent >= budget:
                break
            data = self.srtp.protect_rtp(
                self._stamped(stream.rtx_packet(plain), now, renumber=True))
            sent += len(data)
            self.stats.padding_sent += 1
            self.stats.bytes_out += len(data)
            self.send_rate.add(len(data))
            self._transmit(data, self.addr)
        return sent

    def send_rtcp(self, packets: list[RtcpPacket]) -> None:
        if self.srtp is None or self.addr is None or not packets:
            return
        data = self.srtp.protect_rtcp(serialize_rtcp(packets))
        self.stats.rtcp_out += 1
        self.stats.bytes_out += len(data)
        self._transmit(data, self.addr)

    def retransmit(self, stream: SlotStream, seqs: list[int], now: float) -> None:
        """Answer a NACK from the history (RFC 4585 §6.2.1): on the RTX stream when the
        receiver negotiated RTX (RFC 4588), else the original packet again."""
        if self.addr is None or self.srtp is None:
            return
        for seq in seqs:
            plain = stream.history.get(seq, now)
            if plain is None:
                self.stats.nack_misses += 1
                continue
            self.stats.retransmissions += 1
            if stream.rtx_ssrc is not None:
                self.stats.rtx_sent += 1
                data = self.srtp.protect_rtp(
                    self._stamped(stream.rtx_packet(plain), now, renumber=True))
            else:  # same index again (allow_repeat_tx), so the same bytes: no new stamp
                data = self.srtp.protect_rtp(plain)
            self.stats.bytes_out += len(data)
            self.send_rate.add(len(data))
            self._transmit(data, self.addr)

    # -- bridge channel ---------------------------------------------------------------------

    def slots_message(self) -> dict[str, Any]:
        return {
            "type": "slots",
            "slots": [{"slot": i, "participant": p} for i, p in enumerate(self.occupants)],
            "screen": self.screen_occupant,
            "sharing": list(self.sharers),
        }

    def notify(self, message: dict[str, Any]) -> None:
        for listener in list(self.channel_listeners):
            try:
                listener(message)
            except Exception:  # a broken listener must not break media routing
                log.exception("bridge channel listener failed")

    def close(self) -> None:
        """Idempotent: send close_notify once, forget addresses, drop listeners."""
        if self.closed:
            return
        if self.addr is not None:
            for out in self.dtls.close():
                self._transmit(out, self.addr)
        else:
            self.dtls.close()
        self.closed = True
        self.srtp = None
        self.notify({"type": "closed"})
        self.channel_listeners.clear()
