"""Which packets to ask a sender to send again: generic NACK generation for the uplink (pure).

The bridge receives each sender's streams and tracks, per SSRC, the sequence numbers that did
not arrive. A gap is asked for at once (the next NACK the bridge sends), again after about a
round trip if the packet still has not come, at most ``MAX_TRIES`` times, and forgotten after
``LIFETIME`` seconds: a retransmission later than that would come too late for any receiver's
jitter buffer. The same rules as Jitsi's RetransmissionRequester and libwebrtc's NackRequester
(nack_requester.cc: immediate first request, retries spaced by the RTT, bounded list).

Memory is bounded: at most ``MAX_MISSING`` sequence numbers per SSRC are remembered (the oldest
are forgotten first), and a forward jump of more than ``MAX_MISSING`` is a stream restart (a new
encoder, a layer resuming after a pause), not that many losses: nothing is asked for it.

Sequence numbers are 16 bit and wrap (RFC 3550 §5.1); distances use serial arithmetic
(RFC 1982 §3.2, rtp/seqnum.py). Requests are packed as RFC 4585 §6.2.1 generic NACK FCIs
(PID + BLP) by :class:`tertulia.bridge.rtp.rtcp.GenericNack`.
"""

from __future__ import annotations

__all__ = ["DEFAULT_RTT", "LIFETIME", "MAX_MISSING", "MAX_TRIES", "SsrcNacks"]

DEFAULT_RTT = 0.1  # seconds between two requests for one packet when the RTT is unknown
MIN_RETRY = 0.02  # never ask again sooner than this, however short the RTT
LIFETIME = 1.0  # seconds a missing packet is asked for, from when its gap was seen
MAX_TRIES = 4  # requests per missing packet
MAX_MISSING = 300  # missing sequence numbers remembered per SSRC; a larger jump is a restart

_NONE = -1


class SsrcNacks:
    """Missing sequence numbers of one received SSRC and when each was last asked for."""

    __slots__ = ("highest", "missing", "repaired", "restarts")

    def __init__(self) -> None:
        self.highest = _NONE  # highest sequence number seen, -1 before the first packet
        # seq -> [gap seen at, last requested at, requests], in sequence order (gaps are
        # added in increasing order, and a dict keeps insertion order)
        self.missing: dict[int, list[float]] = {}
        self.repaired = 0  # packets that arrived after they were missing
        self.restarts = 0  # forward jumps taken as a stream restart

    def on_packet(self, seq: int, now: float) -> bool:
        """Record an arrival; True when it opened a new gap (a NACK is then due at once)."""
        highest = self.highest
        step = ((seq - highest + 0x8000) & 0xFFFF) - 0x8000  # seq_diff, inlined (hot path)
        if step == 1:
            self.highest = seq
            return False
        if highest == _NONE:
            self.highest = seq
            return False
        if step <= 0:  # late (reordered or retransmitted), or a duplicate
            if self.missing.pop(seq, None) is not None:
                self.repaired += 1
            return False
        self.highest = seq
        if step - 1 > MAX_MISSING:
            self.missing.clear()
            self.restarts += 1
            return False
        missing = self.missing
        entry = [now, -1e9, 0.0]
        for k in range(1, step):
            missing[(highest + k) & 0xFFFF] = list(entry)
        while len(missing) > MAX_MISSING:
            del missing[next(iter(missing))]
        return True

    def due(self, now: float, rtt: float | None) -> list[int]:
        """Sequence numbers to ask for now (oldest first); forgets the expired and too old."""
        missing = self.missing
        if not missing:
            return []
        retry = max(rtt if rtt is not None else DEFAULT_RTT, MIN_RETRY)
        highest = self.highest
        out: list[int] = []
        expired: list[int] = []
        for seq, entry in missing.items():
            seen, sent, tries = entry
            behind = (highest - seq) & 0xFFFF
            if now - seen > LIFETIME or behind > MAX_MISSING:
                expired.append(seq)
            elif tries < MAX_TRIES and now - sent >= retry:
                entry[1] = now
                entry[2] = tries + 1
                out.append(seq)
        for seq in expired:
            del missing[seq]
        return out
