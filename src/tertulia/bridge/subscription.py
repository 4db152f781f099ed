"""One receive slot stream of one endpoint, and the rewriting that keeps it continuous.

A :class:`SlotStream` is what a receiver negotiated once: an SSRC, a payload type, header
extension ids and a mid. Over its life it carries different sources (whoever occupies the slot);
the rewriting here makes every change look like one continuous RTP stream to the receiver:
sequence numbers continue where they stopped (RFC 3550 §5.1), timestamps advance by the wall time
that passed, and video starts only on a keyframe.

Pure: no sockets, no clock of its own; ``now`` is passed in.
"""

from __future__ import annotations

import functools
import random
import struct
from dataclasses import dataclass, field

from tertulia.bridge.rtp.history import PacketHistory
from tertulia.bridge.rtp.packet import (
    abs_send_time,
    build_extension_block,
    payload_offset,
    rewrite_header,
)
from tertulia.bridge.rtp.projection import TemporalFilter
from tertulia.bridge.rtp.temporal import MAX_TID
from tertulia.bridge.rtp.vp8 import (
    after_descriptor,
    is_keyframe_start,
    parse_vp8_descriptor,
    rewritten_descriptor,
)
from tertulia.protocol.sdp import EXT_ABS_SEND_TIME, EXT_MID, EXT_TWCC

# abs-send-time before the send time is known: SlotStream.forward writes the time itself
# when stamp_send_time is set, else Endpoint._stamped fills it in as the packet leaves.
_SEND_TIME_PLACEHOLDER = bytes(3)
# The bridge's own transport-wide sequence number (draft-holmer-01 §2) for this receiver:
# written first in the block, so it sits at a fixed offset that Endpoint.send_rtp fills in.
_TWCC_PLACEHOLDER = bytes(2)
_HEADER = struct.Struct("!BBHII")  # RFC 3550 §5.1 fixed header


@dataclass(slots=True, eq=False)
class ExtensionMap:
    """Translate a sender's header extension ids into a receiver's (RFC 8285 §5).

    One map is shared by every slot stream with the same ids and mid (see :meth:`between`), so
    that the block it builds for one incoming packet serves all of that packet's receivers.
    Treat it as immutable.
    """

    by_sender_id: dict[int, int]
    mid_id: int | None
    mid_value: bytes
    send_time_id: int | None = None
    twcc_id: int | None = None  # the receiver's transport-wide-cc id (filled in per receiver)
    # The block built for the last (elements, send time) asked for. ``elements`` is compared
    # by identity: Conference.on_rtp parses a packet's extensions once into one list that
    # every receiver's forward() gets, and nothing mutates it; holding the reference keeps
    # the identity from being reused by another list.
    _last_elements: list[tuple[int, bytes]] | None = field(default=None, repr=False)
    _last_send_time: bytes = field(default=b"", repr=False)
    _last_block: bytes = field(default=b"", repr=False)

    @classmethod
    def between(
        cls, sender: dict[str, int], receiver: dict[str, int], mid_value: str
    ) -> ExtensionMap:
        return _extension_map(
            tuple(sorted(sender.items())), tuple(sorted(receiver.items())), mid_value
        )

    def translate(
        self, elements: list[tuple[int, bytes]], send_time: bytes = _SEND_TIME_PLACEHOLDER
    ) -> list[tuple[int, bytes]]:
        out = [(self.twcc_id, _TWCC_PLACEHOLDER)] if self.twcc_id is not None else []
        out += [(self.by_sender_id[i], v) for i, v in elements if i in self.by_sender_id]
        if self.mid_id is not None:
            out.append((self.mid_id, self.mid_value))
        if self.send_time_id is not None:
            out.append((self.send_time_id, send_time))
        return out

    def block(
        self, elements: list[tuple[int, bytes]], send_time: bytes = _SEND_TIME_PLACEHOLDER
    ) -> bytes:
        """The receiver's extension block (with its 4-byte header; b"" for none) for a
        packet with these sender elements."""
        if elements is self._last_elements and send_time == self._last_send_time:
            return self._last_block
        block = build_extension_block(self.translate(elements, send_time))
        self._last_elements = elements
        self._last_send_time = send_time
        self._last_block = block
        return block


@functools.lru_cache(maxsize=1024)
def _extension_map(
    sender: tuple[tuple[str, int], ...], receiver: tuple[tuple[str, int], ...], mid_value: str
) -> ExtensionMap:
    """Interned maps (bounded): receivers that negotiated the same ids share one."""
    receiver_ids = dict(receiver)
    # mid, abs-send-time and transport-wide numbers are the bridge's own: the sender's
    # values are not forwarded
    mapping = {
        sid: receiver_ids[uri]
        for uri, sid in sender
        if uri in receiver_ids and uri not in (EXT_MID, EXT_ABS_SEND_TIME, EXT_TWCC)
    }
    return ExtensionMap(
        mapping, receiver_ids.get(EXT_MID), mid_value.encode(),
        receiver_ids.get(EXT_ABS_SEND_TIME), receiver_ids.get(EXT_TWCC),
    )


@dataclass(slots=True)
class Forwarded:
    """A packet ready to protect and send, and the facts the caller records about it. The
    packet is ``header + payload``: kept apart, the payload stays the object every receiver
    of the packet shares (see Endpoint.send_rtp)."""

    header: bytes  # fixed header, CSRCs and extension block
    payload: bytes
    seq: int
    # Nothing for Endpoint.send_rtp to stamp: abs-send-time already holds the send time, or
    # the packet has no element the endpoint would stamp (see SlotStream.stamp_send_time).
    stamped: bool = False
    # Offset in ``header`` of the 2-byte transport-wide sequence number to fill in, or -1.
    twcc_at: int = -1

    @property
    def packet(self) -> bytes:
        return self.header + self.payload


@dataclass(slots=True)
class SlotStream:
    """The outgoing half of a subscription: one slot's audio or video towards one receiver."""

    kind: str  # "audio" | "video"
    ssrc: int
    payload_type: int
    clock_rate: int
    receiver_extmap: dict[str, int]
    mid: str
    cname: str
    history: PacketHistory = field(default_factory=PacketHistory)
    rtx_ssrc: int | None = None  # RFC 4588 retransmission stream, when the receiver has RTX
    rtx_payload_type: int | None = None
    rtx_seq: int = field(default_factory=lambda: random.randrange(0, 1 << 16))
    # VP8 picture ID / TL0PICIDX continuity across source and layer changes (RFC 7741 §4.2)
    pid_offset: int = 0
    tl0_offset: int = 0
    last_out_pid: int | None = None
    last_out_tl0: int | None = None
    vp8_pending: bool = False  # recompute the offsets on the next packet
    role: str = ""  # set on attach: which sending media of the source ("audio"/"video"/"screen")
    # Current source, by (sender endpoint id, the sender SSRC being forwarded); None when empty.
    source: tuple[str, int] | None = None
    # The sender SSRC this slot should show (a simulcast layer, or a new SSRC of the source):
    # forwarding moves to it on its next keyframe.
    target: int | None = None
    target_since: float = -1e9  # when the target last changed (bridge clock)
    ext: ExtensionMap | None = None
    started: bool = False
    seq_offset: int = 0
    ts_offset: int = 0
    first_seq: int = 0
    start_out_seq: int = 0  # the outgoing number of the first packet since the last start
    last_out_seq: int = field(default_factory=lambda: random.randrange(0, 1 << 16))
    last_out_ts: int = field(default_factory=lambda: random.randrange(0, 1 << 32))
    last_send_time: float | None = None
    packets_sent: int = 0
    octets_sent: int = 0
    switches: int = 0
    # Write the bridge's send time into abs-send-time while rewriting (set by the receiving
    # Endpoint when that is the element it would stamp on sending), rather than a placeholder
    # that the endpoint finds and overwrites afterwards.
    stamp_send_time: bool = False
    # Whether Endpoint.send_rtp must still look for an element to stamp; cleared by the
    # Endpoint when it knows there is none or stamp_send_time covers it.
    send_time_scan: bool = True
    # Temporal layer filter (rtp/projection.py) while this receiver gets fewer than all of
    # the source's temporal layers, or until the renumbering it did is folded back into the
    # offsets; None (the plain path) otherwise.
    temporal: TemporalFilter | None = None

    @property
    def max_tid(self) -> int | None:
        """The highest temporal layer id this receiver should get; None for all."""
        tf = self.temporal
        return None if tf is None or tf.target >= MAX_TID else tf.target

    def set_max_tid(self, tid: int | None) -> None:
        """Limit forwarding to TIDs ``0..tid`` (None: all). Takes effect at a frame that
        allows the switch (rtp/projection.py)."""
        tf = self.temporal
        if tid is None or tid >= MAX_TID:
            if tf is not None:
                tf.target = MAX_TID
            return
        if tf is None:
            if self.kind != "video":
                return
            tf = self.temporal = TemporalFilter()
        tf.target = max(0, tid)

    def attach(self, sender_id: str, ssrc: int, sender_extmap: dict[str, int]) -> None:
        """Point this slot at a source; forwarding resumes at its next usable packet. For the
        same sender with another SSRC (a simulcast layer) only the target changes: the slot
        keeps forwarding the current SSRC until the target's next keyframe."""
        if self.source is not None and self.source[0] == sender_id:
            self.target = ssrc
            return
        self.source = (sender_id, ssrc)
        self.target = ssrc
        self.ext = ExtensionMap.between(sender_extmap, self.receiver_extmap, self.mid)
        self.started = False
        self.switches += 1

    def detach(self) -> None:
        self.source = None
        self.target = None
        self.ext = None
        self.started = False

    @property
    def waiting_for_keyframe(self) -> bool:
        if self.source is None or self.kind != "video":
            return False
        return not self.started or self.source[1] != self.target

    def forward(
        self,
        plain: bytes,
        ssrc: int,
        seq: int,
        ts: int,
        extensions: list[tuple[int, bytes]],
        payload: bytes,
        now: float,
    ) -> Forwarded | None:
        """Rewrite one packet of the current source for this receiver, or None to skip it."""
        source = self.source
        if source is None:
            return None
        if ssrc != source[1]:
            # Another SSRC of the same sender: switch only to the target, on a keyframe.
            if ssrc != self.target or (self.kind == "video" and not is_keyframe_start(payload)):
                return None
            self.source = (source[0], ssrc)
            self.started = False
            self.switches += 1
        if not self.started:
            if self.kind == "video" and not is_keyframe_start(payload):
                return None
            self._start(seq, ts, now)
        elif ((seq - self.first_seq + 0x8000) & 0xFFFF) - 0x8000 < 0:  # seq_diff, inlined
            # Reordered packet from before the switch point: the receiver never saw that range.
            return None
        tf = self.temporal
        if tf is None or not payload:  # the plain path: every packet of the source
            pid_shift = 0
            out_seq = (seq + self.seq_offset) & 0xFFFF
        else:
            shifts = self._filter(tf, plain, seq, payload)
            if shifts is None:
                return None
            seq_shift, pid_shift = shifts
            out_seq = (seq + self.seq_offset - seq_shift) & 0xFFFF
        out_ts = (ts + self.ts_offset) & 0xFFFFFFFF
        octets = len(payload)
        descriptor = b""
        if self.kind == "video" and payload:
            descriptor, payload = self._continue_picture_ids(payload, pid_shift)
        # seq_diff(out_seq, last_out_seq) > 0, inlined (hot path)
        if ((out_seq - self.last_out_seq + 0x8000) & 0xFFFF) - 0x8000 > 0:
            self.last_out_seq = out_seq
            self.last_out_ts = out_ts
            self.last_send_time = now
        ext = self.ext
        assert ext is not None
        stamped = self.stamp_send_time and ext.send_time_id is not None
        block = ext.block(
            extensions, abs_send_time(now) if stamped else _SEND_TIME_PLACEHOLDER
        )
        # The header rewrite of rtp.packet.rewrite_header, with the payload type, SSRC and
        # extension block known to be valid and the block shared among receivers.
        b0 = plain[0]
        csrc_end = 12 + 4 * (b0 & 0x0F)
        head = _HEADER.pack(
            (b0 | 0x10) if block else (b0 & 0xEF),
            (plain[1] & 0x80) | self.payload_type,
            out_seq,
            out_ts,
            self.ssrc,
        )
        if csrc_end > 12:
            head = b"".join((head, plain[12:csrc_end], block, descriptor))
        else:
            head = b"".join((head, block, descriptor))
        self.packets_sent += 1
        self.octets_sent += octets
        # the twcc element is the block's first: value after the 4-byte block header and the
        # element's 1-byte (RFC 8285 §4.2) or 2-byte (§4.3) header
        twcc_at = (csrc_end + (5 if block[0] == 0xBE else 6)) if ext.twcc_id is not None else -1
        return Forwarded(head, payload, out_seq, stamped or not self.send_time_scan, twcc_at)

    def _filter(self, tf: TemporalFilter, plain: bytes, seq: int, payload: bytes
                ) -> tuple[int, int] | None:
        """The temporal filter's verdict on one packet (see rtp/projection.py)."""
        try:
            desc = parse_vp8_descriptor(payload)
        except ValueError:
            return tf.accept(seq, bool(plain[1] & 0x80), None, 0, None, False, False, False)
        start = desc.start_of_partition and desc.partition_id == 0
        shifts = tf.accept(
            seq, bool(plain[1] & 0x80), desc.picture_id,
            1 << 15 if desc.picture_id_15bit else 1 << 7, desc.tid, desc.layer_sync, start,
            start and is_keyframe_start(payload),
        )
        if shifts is not None and tf.target == MAX_TID and tf.settled():
            # back to all layers and nothing dropped within reach: fold the renumbering into
            # the offsets and leave the filter (the plain path is cheaper)
            self.seq_offset = (self.seq_offset - tf.seqs.forgotten) & 0xFFFF
            if desc.picture_id is not None:
                modulus = 1 << 15 if desc.picture_id_15bit else 1 << 7
                self.pid_offset = (self.pid_offset - tf.pids.forgotten) % modulus
            self.temporal = None
            return 0, 0  # (this packet's shifts are in the new offsets)
        return shifts

    def _start(self, seq: int, ts: int, now: float) -> None:
        """Continue the outgoing sequence and timestamp lines from where they stopped."""
        self.started = True
        if self.temporal is not None:  # a new line of numbers: nothing dropped in it yet
            target = self.temporal.target
            self.temporal = (
                TemporalFilter(target=target, current=target) if target < MAX_TID else None
            )
        self.vp8_pending = True
        self.first_seq = seq
        out_seq = (self.last_out_seq + 1) & 0xFFFF
        self.start_out_seq = out_seq
        self.seq_offset = (out_seq - seq) & 0xFFFF
        # Advance the timestamp by the wall time since the last packet (at least one tick), so
        # the receiver's jitter buffer sees time pass rather than a jump backwards.
        elapsed = 0.0 if self.last_send_time is None else max(0.0, now - self.last_send_time)
        gap = max(1, int(elapsed * self.clock_rate))
        out_ts = (self.last_out_ts + gap) & 0xFFFFFFFF
        self.ts_offset = (out_ts - ts) & 0xFFFFFFFF
        # Make the first packet's seq count as "newer" in forward().
        self.last_out_seq = (out_seq - 1) & 0xFFFF

    def _continue_picture_ids(self, payload: bytes, pid_shift: int = 0
                              ) -> tuple[bytes, bytes]:
        """Shift VP8 picture IDs and TL0PICIDX so they continue where this slot left off: a
        receiver sees one stream even when the slot moves to another layer or sender (the
        fields are per-encoder counters, RFC 7741 §4.2), less ``pid_shift`` frames left out
        before this one by the temporal filter. Returns ``(descriptor, rest)``
        making up the payload to send: ``(b"", payload)`` when nothing changes (no offset,
        or not VP8), else the rewritten descriptor and the payload after it, which every
        receiver of the packet shares."""
        try:
            desc = parse_vp8_descriptor(payload)
        except ValueError:
            return b"", payload
        if desc.picture_id is None:
            return b"", payload
        modulus = 1 << 15 if desc.picture_id_15bit else 1 << 7
        if self.vp8_pending:
            self.vp8_pending = False
            if self.last_out_pid is None:
                self.pid_offset = self.tl0_offset = 0
            else:
                self.pid_offset = (self.last_out_pid + 1 - desc.picture_id) % modulus
                if desc.tl0picidx is not None and self.last_out_tl0 is not None:
                    self.tl0_offset = (self.last_out_tl0 + 1 - desc.tl0picidx) & 0xFF
        pid_offset = (self.pid_offset - pid_shift) % modulus if pid_shift else self.pid_offset
        out_pid = (desc.picture_id + pid_offset) % modulus
        out_tl0 = None if desc.tl0picidx is None else (desc.tl0picidx + self.tl0_offset) & 0xFF
        self.last_out_pid = out_pid
        if out_tl0 is not None:
            self.last_out_tl0 = out_tl0
        if not pid_offset and not self.tl0_offset:
            return b"", payload
        return (
            rewritten_descriptor(payload, desc, out_pid, out_tl0),
            after_descriptor(payload),
        )

    def rtx_packet(self, original: bytes) -> bytes:
        """Wrap a sent packet for retransmission on the RTX stream (RFC 4588 §4): same timestamp,
        marker and extensions, RTX payload type and SSRC, the RTX stream's own sequence number,
        and the original sequence number (OSN) in front of the original payload."""
        assert self.rtx_ssrc is not None and self.rtx_payload_type is not None
        start = payload_offset(original)
        osn = original[2:4]
        self.rtx_seq = (self.rtx_seq + 1) & 0xFFFF
        header = rewrite_header(
            original[:start],
            pt=self.rtx_payload_type,
            seq=self.rtx_seq,
            ts=int.from_bytes(original[4:8], "big"),
            ssrc=self.rtx_ssrc,
        )
        payload = original[start:]
        if original[0] & 0x20:  # drop the original padding (RFC 3550 §5.1): RTX pads itself
            payload = payload[: len(payload) - payload[-1]]
            header = bytes([header[0] & ~0x20]) + header[1:]
        return header + osn + payload

    def translate_rtp_timestamp(self, ts: int) -> int:
        return (ts + self.ts_offset) & 0xFFFFFFFF
