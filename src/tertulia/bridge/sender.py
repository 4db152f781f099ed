"""Sending to one endpoint: rewritten RTP, retransmissions, probing padding and RTCP, each
stamped for the receiver's estimator (abs-send-time, transport-wide numbers) as it leaves, and
video paced to the receiver's estimate (bridge/pacer.py). A mixin of Endpoint (endpoint.py),
which holds the state these methods use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from tertulia.bridge.bwe import RateMeter
from tertulia.bridge.pacer import Pacer
from tertulia.bridge.rtp.packet import abs_send_time, set_extension_value
from tertulia.bridge.rtp.rtcp import RtcpPacket, serialize_rtcp
from tertulia.bridge.sendside import SendSideEstimate
from tertulia.bridge.subscription import SlotStream
from tertulia.bridge.transport.srtp import SrtpPair

Address = tuple[str, int]
IP_UDP_OVERHEAD = 28  # IPv4 + UDP header bytes per datagram (what a link carries beyond it)
# What a link carries per RTP packet beyond it: the SRTP tag (10 bytes with
# AES_CM_128_HMAC_SHA1_80, RFC 3711 §8.2) and IP/UDP; send-side estimates are link rates.
WIRE_OVERHEAD = 10 + IP_UDP_OVERHEAD
Transmit = Callable[[bytes, Address], None]
RTX_WINDOW = 0.5  # seconds of the estimate that retransmissions may take at once
# Call a function with the clock's time after a delay in seconds (the event loop's timer).
Schedule = Callable[[float, Callable[[float], None]], None]


class Paced(NamedTuple):
    """A packet waiting in the pacer (bridge/pacer.py): what Endpoint.send_rtp was given, or
    (``rtx``) a plain packet from the history to resend."""

    packet: bytes
    stream: SlotStream
    seq: int
    stamped: bool = False
    payload: bytes = b""
    twcc_at: int = -1
    rtx: bool = False
    switches: int = 0  # the stream's SlotStream.switches when it was queued



@dataclass(slots=True)
class TrafficStats:
    """Packets and bytes both ways, and what was dropped by reason: an endpoint's and a
    relay's (relay_link.py) counters have these in common."""

    rtp_in: int = 0
    rtp_out: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


@dataclass(slots=True)
class EndpointStats(TrafficStats):
    nacks_received: int = 0
    retransmissions: int = 0
    rtx_sent: int = 0
    nack_misses: int = 0
    plis_received: int = 0
    padding_sent: int = 0
    padding_received: int = 0  # padding-only packets from it (probes): not forwarded
    remb_received: int = 0
    twcc_sent: int = 0
    twcc_received: int = 0  # transport-wide feedback about what the bridge sends it
    rtx_before_switch: int = 0  # NACKs for packets of a layer the slot has left
    rtx_limited: int = 0  # retransmissions not sent: over the estimate (Sender.retransmit)
    paced_discarded: int = 0  # waiting packets of a layer the slot has switched away from
    # uplink repair (bridge/uplink.py): what the bridge asks this sender to send again
    nacks_sent: int = 0  # generic NACK packets (one per SSRC per RTCP datagram)
    nack_requested: int = 0  # sequence numbers asked for, each request counted
    uplink_repaired: int = 0  # missing packets that arrived later (RTX or not)
    rtx_received: int = 0  # RTX packets unwrapped and used in place of a lost packet
    rtx_duplicates: int = 0  # RTX packets for nothing missing (redundant probes): dropped



class Sender:
    """The sending half of an endpoint."""

    srtp: SrtpPair | None
    addr: Address | None
    stats: EndpointStats
    sendside: SendSideEstimate | None
    pacer: Pacer[Paced]
    send_rate: RateMeter
    audio_rate: RateMeter
    abs_send_time_id: int | None
    twcc_send_id: int | None
    _transmit: Transmit
    _schedule: Schedule | None
    _pace_pending: bool
    _queued_switch: dict[int, int]  # slot SSRC -> SlotStream.switches of its last queued
    _rtx_tokens: float
    _rtx_at: float

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
        receiver's transport-wide number goes (Forwarded.twcc_at). Video waits in the pacer
        when the receiver's link has had its share (bridge/pacer.py); audio never does."""
        if self.srtp is None or self.addr is None:
            return
        pacer = self.pacer
        if pacer.rate:
            size = len(packet) + len(payload) + WIRE_OVERHEAD
            if stream.kind == "audio":
                pacer.count(size, now)
            elif not pacer.admit(size, now):
                switches = stream.switches
                if self._queued_switch.get(stream.ssrc, switches) != switches:
                    self._discard_switched(stream, switches)
                self._queued_switch[stream.ssrc] = switches
                self._queue(Paced(packet, stream, seq, stamped, payload, twcc_at,
                                  switches=switches), size, now)
                return
        self._send_rtp(packet, stream, seq, now, stamped, payload, twcc_at)

    def _send_rtp(
        self, packet: bytes, stream: SlotStream, seq: int, now: float, stamped: bool,
        payload: bytes, twcc_at: int,
    ) -> None:
        assert self.srtp is not None and self.addr is not None
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

    def _queue(self, item: Paced, size: int, now: float, *, priority: bool = False) -> None:
        if self.pacer.push(item, size, now, priority=priority) is not None:
            self.stats.drop("pacer-queue-full")
        self._wake(now)

    def _discard_switched(self, stream: SlotStream, switches: int) -> None:
        """The slot moved to another layer or source, which starts with a key frame: what
        still waits of the one before is late, and sending it would only delay the key frame
        on a link that is already full (the layer went down to fit it). The receiver sees a
        gap in sequence numbers just before a key frame, which it gets over at once."""
        self.stats.paced_discarded += self.pacer.discard(
            lambda item: item.stream is stream and not item.rtx and item.switches != switches)

    def _wake(self, now: float) -> None:
        if self._pace_pending or self._schedule is None:
            return
        wait = self.pacer.next_wait(now)
        if wait is not None:
            self._pace_pending = True
            self._schedule(wait, self._pace)

    def _pace(self, now: float) -> None:
        """The pacer's timer: send what may go now, then wait for the rest."""
        self._pace_pending = False
        if self.srtp is None or self.addr is None:
            self.pacer.clear()
            return
        for item in self.pacer.due(now):
            if item.rtx:
                self._resend(item.stream, item.packet, now)
            else:
                self._send_rtp(item.packet, item.stream, item.seq, now, item.stamped,
                               item.payload, item.twcc_at)
        self._wake(now)

    def send_padding(self, stream: SlotStream, budget: int, now: float) -> int:
        """Probe: resend the newest packets of ``stream`` on its RTX stream (RFC 4588 §4),
        up to ``budget`` bytes; the receiver drops the duplicates but its estimator counts
        them. Returns the bytes sent."""
        if self.srtp is None or self.addr is None or stream.rtx_ssrc is None:
            return 0
        if self.pacer.waiting:  # the link is busy with media already
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
        receiver negotiated RTX (RFC 4588), else the original packet again. Paced ahead of
        video (bridge/pacer.py)."""
        if self.addr is None or self.srtp is None:
            return
        pacer = self.pacer
        # The first sequence number of the layer or source the slot shows now: what came
        # before ends at the key frame that started it, and the receiver gets over that gap
        # without it (it decodes from the key frame).
        start = stream.start_out_seq
        for seq in seqs:
            if (stream.kind == "video" and stream.started
                    and ((seq - start + 0x8000) & 0xFFFF) - 0x8000 < 0):
                self.stats.rtx_before_switch += 1
                continue
            plain = stream.history.get(seq, now)
            if plain is None:
                self.stats.nack_misses += 1
                continue
            if pacer.rate:
                size = len(plain) + 2 + WIRE_OVERHEAD
                if not self._rtx_allowed(size, now):
                    self.stats.rtx_limited += 1
                    continue
                if not pacer.admit(size, now):
                    self._queue(Paced(plain, stream, seq, rtx=True), size, now, priority=True)
                    continue
            self._resend(stream, plain, now)

    def _rtx_allowed(self, size: int, now: float) -> bool:
        """Retransmissions may use up to the estimate (a token bucket holding RTX_WINDOW of
        it), as libwebrtc limits its own (the RateLimiter on RTPSender::ReSendPacket, at the
        target rate): on a full link, answering every NACK feeds the loss that caused it."""
        sendside = self.sendside
        if sendside is None:
            return True
        rate = sendside.value() / 8
        tokens = min(self._rtx_tokens + max(now - self._rtx_at, 0.0) * rate, rate * RTX_WINDOW)
        self._rtx_at = now
        if tokens < size:
            self._rtx_tokens = tokens
            return False
        self._rtx_tokens = tokens - size
        return True

    def _resend(self, stream: SlotStream, plain: bytes, now: float) -> None:
        assert self.srtp is not None and self.addr is not None
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
