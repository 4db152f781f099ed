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
from tertulia.bridge.pacer import Pacer
from tertulia.bridge.rtp.history import PacketHistory
from tertulia.bridge.rtp.nack_requester import SsrcNacks
from tertulia.bridge.rtp.temporal import TemporalMeter
from tertulia.bridge.sender import (
    IP_UDP_OVERHEAD,
    WIRE_OVERHEAD,
    Address,
    EndpointStats,
    Paced,
    Schedule,
    Sender,
    Transmit,
)
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
    EXT_RRID,
    EXT_TWCC,
    NegotiatedMedia,
    Negotiation,
    SlotSource,
)

log = logging.getLogger(__name__)

# SSRCs an endpoint may use (declared and learned). A browser uses about ten: audio, three
# simulcast layers and their RTX, a screen and its RTX; SSRCs beyond this are not forwarded.
MAX_SSRCS = 64
# Addresses an endpoint answers on (valid checks from each); beyond it the oldest is dropped.
MAX_ADDRS = 8
__all__ = ["IP_UDP_OVERHEAD", "MAX_ADDRS", "MAX_SSRCS", "WIRE_OVERHEAD", "Address", "Endpoint",
           "EndpointStats", "Paced", "Schedule", "SendingMedia", "Transmit"]


# A simulcast layer counts as live while it sent within this many seconds.
LIVE_WINDOW = 1.0
# A layer's rate is known this long after it started or resumed sending: four of the 0.25 s
# ticks that smooth it (bwe.RateMeter, rtp/temporal.py), 94% of the way from where it was.
SETTLE_TIME = 1.0


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
    # ssrc -> when it started sending again after LIVE_WINDOW or more of silence (or at all)
    live_since: dict[int, float] = field(default_factory=dict)
    layer_height: dict[int, int] = field(default_factory=dict)  # ssrc -> keyframe height
    rate: dict[int, RateMeter] = field(default_factory=dict)  # ssrc -> its bit rate (video)
    # ssrc -> bit and frame rates of its VP8 temporal layers (video; rtp/temporal.py)
    temporal: dict[int, TemporalMeter] = field(default_factory=dict)
    # uplink repair (bridge/uplink.py): the sender negotiated generic NACK (RFC 4585 §4.2)
    # and RTX (RFC 4588) on this m-line; ssrc -> its missing sequence numbers
    nack: bool = False
    rtx_payload_type: int | None = None
    nacks: dict[int, SsrcNacks] = field(default_factory=dict)

    @property
    def layered(self) -> bool:
        return len(self.rids) > 1

    def layers(self, now: float, window: float = LIVE_WINDOW) -> list[int]:
        """SSRCs of the layers that sent in the last ``window`` seconds, lowest first."""
        live = [s for s in self.layer_of if now - self.last_seen.get(s, -1e9) < window]
        return sorted(live, key=lambda s: self.layer_of[s])

    def settled(self, ssrc: int, now: float) -> bool:
        """Whether the layer has sent long enough for its measured rate to be its rate."""
        return now - self.live_since.get(ssrc, -1e9) >= SETTLE_TIME


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


class Endpoint(Sender):
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
        schedule: Schedule | None = None,
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
        # addresses a valid check came from, oldest first (a dict keeps the order), at most
        # MAX_ADDRS: a client has a few candidates, not one per port it can send from
        self.valid_addrs: dict[Address, None] = {}
        self.closed = False
        self.stats = EndpointStats()
        self.channel_token = secrets.token_urlsafe(18)
        self.channel_listeners: list[Callable[[dict[str, Any]], None]] = []

        self.sending: dict[str, SendingMedia] = {}
        self.media_by_ssrc: dict[int, SendingMedia] = {}
        # RTX SSRC -> media SSRC of what it repairs (a=ssrc-group:FID, or learned from the
        # repaired-rtp-stream-id of a simulcast layer's RTX, RFC 8852 §3.2)
        self.rtx_media: dict[int, int] = {}
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
            sending.nack = "nack" in media.rtcp_fb
            sending.rtx_payload_type = media.rtx_payload_type
            for media_ssrc, rtx_ssrc in media.fid:
                if len(self.rtx_media) < MAX_SSRCS:
                    self.rtx_media[rtx_ssrc] = media_ssrc
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
        # Pacing (bridge/pacer.py): with a send-side estimate and a timer to drain the queue.
        self.pacer: Pacer[Paced] = Pacer()
        self.committed_bps = 0.0  # what its allocation sends it: audio and chosen layers
        self._schedule = schedule if self.sendside is not None else None
        self._pace_pending = False
        self._queued_switch: dict[int, int] = {}
        self._rtx_tokens = 0.0
        self._rtx_at = now

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

    def learn_rtx(self, ssrc: int, pt: int, extensions: list[tuple[int, bytes]]) -> bool:
        """Whether a new SSRC is the RTX stream of a simulcast layer: RTX payload type and a
        repaired-rtp-stream-id naming the rid of a layer whose SSRC is known (RFC 8852 §3.2;
        Chrome declares no SSRCs for rid layers). Learned at most MAX_SSRCS times."""
        if len(self.rtx_media) >= MAX_SSRCS:
            return False
        for media in self.sending.values():
            rrid_id = media.extmap.get(EXT_RRID)
            if pt != media.rtx_payload_type or rrid_id is None or not media.layered:
                continue
            for ext_id, value in extensions:
                if ext_id != rrid_id:
                    continue
                rid = value.decode(errors="replace")
                if rid not in media.rids:
                    return False
                layer = media.rids.index(rid)
                media_ssrc = next((s for s, i in media.layer_of.items() if i == layer), None)
                if media_ssrc is None:
                    return False  # its layer has not sent yet: nothing to repair
                self.rtx_media[ssrc] = media_ssrc
                return True
        return False

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

    def accept_check(self, addr: Address, nominated: bool, now: float) -> Address | None:
        """A valid connectivity check arrived from ``addr`` (also consent, RFC 7675 §5.1).
        Returns an address this endpoint no longer answers on, when ``addr`` took its place
        among the MAX_ADDRS it keeps (the oldest that is not the one in use)."""
        self.last_consent = now
        self.valid_addrs.pop(addr, None)
        self.valid_addrs[addr] = None  # newest last
        if nominated or self.addr is None:
            self.addr = addr
        if len(self.valid_addrs) <= MAX_ADDRS:
            return None
        oldest = next(a for a in self.valid_addrs if a != self.addr)
        del self.valid_addrs[oldest]
        return oldest

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
        self.pacer.clear()
        self.notify({"type": "closed"})
        self.channel_listeners.clear()
