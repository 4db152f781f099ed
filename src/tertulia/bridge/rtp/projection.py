"""Forwarding a temporal subset of a VP8 stream with continuous sequence numbers and picture IDs.

A receiver limited to TIDs ``0..n`` gets only the frames whose TID (RFC 7741 §4.2) is at most
``n``. The frames left out must not show as loss: RTP sequence numbers (RFC 3550 §5.1) are
renumbered so the packets sent stay contiguous, and VP8 picture IDs so the frames sent stay
contiguous (a receiver keeps state per picture ID and waits for a missing one; Chromium's
VP8 reference finder stashes later frames behind such a gap). TL0PICIDX needs no change: TID 0
frames are never dropped.

How (the principles of Jitsi's VP8 projection, doc/svc.md in jitsi-videobridge): every
dropped packet and frame is remembered in a sorted list of unwrapped numbers; a packet that
is forwarded goes out as ``its number − (dropped numbers below it)``, so a late (reordered)
packet still finds its own place. A decision is made once per frame (by picture ID) and kept,
so all packets of a frame, late ones included, share it. When packets are missing, the
bridge decides at once how much room to leave for them: missing numbers that can only belong
to a dropped frame (the same frame on both sides of the gap, or the tail of a frame whose next
picture ID follows at once) count as dropped; otherwise room is left, and if they turn out to
be dropped the receiver sees a gap it may NACK (unavoidable without waiting; rare on a
healthy link, see :attr:`TemporalFilter.gaps`).

Switching (RFC 7741 §4.2): down at any frame boundary (the first packet of a frame); up by one
layer at a frame of the next TID with the Y (layer sync) bit, which depends only on TL0,
or to the target at once on a key frame. A TID 0 frame alone is no switching point: the
encoder's TID 1 frames may reference the previous TID 1 frame (libvpx's golden buffer), which
a receiver limited to TID 0 never got. Chromium sets Y on a TID 1 and a TID 2 frame every
eight frames, so an upward switch waits at most about half a second at 30 fps.

Pure: packets in, decisions out; no clock.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field

from tertulia.bridge.rtp.temporal import MAX_TID

__all__ = ["FRAME_WINDOW", "SEQ_WINDOW", "TemporalFilter"]

# Packets more than this many sequence numbers (frames: picture IDs) behind the newest are
# too late to place and are dropped; the dropped numbers older than that are forgotten (their
# count is kept). At 720p and 30 fps Chromium sends ~150 packets/s: several seconds.
SEQ_WINDOW = 1024
FRAME_WINDOW = 128


def _unwrap(value: int, highest: int | None, modulus: int) -> int:
    """``value`` (mod ``modulus``) placed nearest to the unwrapped ``highest``."""
    if highest is None:
        return value + modulus  # one cycle up: late packets before the first stay positive
    half = modulus >> 1
    return highest + ((value - highest + half) % modulus) - half


@dataclass(slots=True)
class _Numbers:
    """Dropped numbers of one counter (sequence numbers or picture IDs), unwrapped."""

    window: int
    dropped: list[int] = field(default_factory=list)  # sorted, within the window
    forgotten: int = 0  # dropped numbers that fell out of the window (all below it)

    def drop(self, number: int) -> None:
        dropped = self.dropped
        if not dropped or number > dropped[-1]:
            dropped.append(number)
        else:
            i = bisect_left(dropped, number)
            if i < len(dropped) and dropped[i] == number:
                return
            insort(dropped, number)

    def is_dropped(self, number: int) -> bool:
        i = bisect_left(self.dropped, number)
        return i < len(self.dropped) and self.dropped[i] == number

    def below(self, number: int) -> int:
        """How many dropped numbers are smaller than ``number``: its shift."""
        dropped = self.dropped
        if not dropped or number > dropped[-1]:
            return self.forgotten + len(dropped)
        return self.forgotten + bisect_left(dropped, number)

    def forget_before(self, lowest: int) -> None:
        dropped = self.dropped
        if dropped and dropped[0] < lowest:
            n = bisect_left(dropped, lowest)
            del dropped[:n]
            self.forgotten += n


@dataclass(slots=True)
class TemporalFilter:
    """One slot stream's temporal layer filter and renumbering (see the module docstring).

    ``target`` is the highest TID wanted (``MAX_TID``: all), ``current`` the one applied now.
    :meth:`accept` returns, for a packet to forward, how much to take off its sequence
    number and its picture ID; None to drop it.
    """

    target: int = MAX_TID
    current: int = MAX_TID
    seqs: _Numbers = field(default_factory=lambda: _Numbers(SEQ_WINDOW))
    pids: _Numbers = field(default_factory=lambda: _Numbers(FRAME_WINDOW))
    frames: dict[int, bool] = field(default_factory=dict)  # unwrapped picture ID -> forwarded
    highest_seq: int | None = None
    highest_pid: int | None = None
    last_frame: int | None = None  # picture ID of the packet at highest_seq
    last_end: bool = True  # that packet ended its frame (RTP marker, RFC 7741 §4.1)
    forwarded: int = 0
    dropped: int = 0
    too_late: int = 0
    gaps: int = 0  # dropped late packets the receiver sees as a gap
    top_seen: int = 0  # the highest TID of the frames decided so far

    def settled(self) -> bool:
        """Nothing is filtered or pending: the stream may go back to plain forwarding with
        the accumulated shifts folded into its offsets."""
        return (self.target == MAX_TID and self.current >= self.top_seen
                and not self.seqs.dropped and not self.pids.dropped)

    def accept(
        self, seq: int, marker: bool, picture_id: int | None, pid_modulus: int, tid: int | None,
        layer_sync: bool, frame_start: bool, keyframe: bool,
    ) -> tuple[int, int] | None:
        """Decide one packet: ``(sequence shift, picture ID shift)`` to forward it, None to
        drop it. ``frame_start``: S=1 and partition 0; ``keyframe``: the start of a key
        frame (RFC 6386 §9.1)."""
        s = _unwrap(seq, self.highest_seq, 1 << 16)
        highest = self.highest_seq
        if highest is not None and s <= highest - SEQ_WINDOW:
            self.too_late += 1
            return None
        if picture_id is None:  # no frames to tell apart: forward, keep the numbering
            return self._forward(s, marker, None, highest)
        p = _unwrap(picture_id, self.highest_pid, pid_modulus)
        if self.highest_pid is not None and p <= self.highest_pid - FRAME_WINDOW:
            self.too_late += 1
            return None
        decision = self.frames.get(p)
        in_order = highest is None or s > highest
        if decision is None:
            decision = self._decide(tid or 0, layer_sync, frame_start and in_order,
                                    keyframe and in_order)
            self.frames[p] = decision
            if not decision:
                self.pids.drop(p)
            if self.highest_pid is None or p > self.highest_pid:
                self.highest_pid = p
                if len(self.frames) > 2 * FRAME_WINDOW:  # (amortised: not every frame)
                    lowest = p - FRAME_WINDOW
                    for old in [f for f in self.frames if f <= lowest]:
                        del self.frames[old]
                    self.pids.forget_before(lowest)
        if in_order and highest is not None and s > highest + 1:
            self._missing(highest, s, p, frame_start)
        if not decision:
            if in_order:
                self.seqs.drop(s)
                self._advance(s, marker, p)
            elif not self.seqs.is_dropped(s):
                self.gaps += 1  # room was left for it: the receiver sees a gap
            self.dropped += 1
            return None
        return self._forward(s, marker, p, highest)

    def _forward(self, s: int, marker: bool, p: int | None, highest: int | None
                 ) -> tuple[int, int]:
        if highest is None or s > highest:
            self._advance(s, marker, p)
        self.forwarded += 1
        return self.seqs.below(s), (self.pids.below(p) if p is not None else 0)

    def _advance(self, s: int, marker: bool, p: int | None) -> None:
        self.highest_seq = s
        self.last_frame = p
        self.last_end = marker
        self.seqs.forget_before(s - SEQ_WINDOW)

    def _decide(self, tid: int, layer_sync: bool, boundary: bool, keyframe: bool) -> bool:
        """Forward a new frame? Applies pending switches at the frames that allow them."""
        if tid > self.top_seen:
            self.top_seen = tid
        if keyframe:
            self.current = self.target  # nothing before a key frame is referenced
        elif boundary and self.target < self.current:
            self.current = self.target  # down: at any frame boundary
        elif (boundary and self.current < self.target and tid == self.current + 1
              and layer_sync):
            self.current = tid  # up one layer at a layer sync frame (RFC 7741 §4.2, Y)
        return tid <= self.current

    def _missing(self, highest: int, s: int, p: int, frame_start: bool) -> None:
        """Packets ``highest+1 .. s-1`` have not arrived: count them as dropped when they
        can only belong to a dropped frame (see the module docstring)."""
        before = self.last_frame
        if before is None or s - highest > SEQ_WINDOW:
            return  # (a long outage: leave the room, the keyframe that follows resets it)
        frames = self.frames
        if p == before:
            owners = [p]  # the same frame on both sides
        elif p != before + 1:
            return  # whole frames are missing: their TIDs are unknown, leave room
        elif frame_start and not self.last_end:
            owners = [before]  # the tail of the frame before; the next one starts here
        elif self.last_end and not frame_start:
            owners = [p]  # the head of this frame
        else:
            owners = [before, p]  # tail and head, split unknown
        if any(frames.get(owner, True) for owner in owners):
            return
        for missing in range(highest + 1, s):
            self.seqs.drop(missing)
