"""Rates of a VP8 stream's temporal layers, measured from the packets the bridge receives.

Chromium encodes each simulcast layer with ``scalabilityMode`` L1T3: every frame carries a
temporal layer id (TID, RFC 7741 §4.2) of 0, 1 or 2, and dropping the frames above a TID
leaves a decodable stream at a quarter, half or all of the frame rate. To choose among those
subsets the bridge needs what each costs: :class:`TemporalMeter` counts, per SSRC, the bytes
and the frames of each TID as packets arrive (once per packet, whoever receives it) and turns
them into rates on each tick. Rates are *cumulative*: index ``t`` is what forwarding TIDs
``0..t`` takes (T0, T0+T1, T0+T1+T2).

Pure: no clock of its own (``now`` is passed to :meth:`TemporalMeter.tick`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAX_TID", "TID_WINDOW", "TemporalMeter"]

MAX_TID = 3  # the TID field has 2 bits (RFC 7741 §4.2)
# A TID not seen for this long no longer counts as a layer of the stream (the encoder may
# change its structure; a 5 fps screen sends its upper layers rarely, hence not shorter).
TID_WINDOW = 2.0


def _zeros() -> list[int]:
    return [0] * (MAX_TID + 1)


def _fzeros() -> list[float]:
    return [0.0] * (MAX_TID + 1)


@dataclass(slots=True)
class TemporalMeter:
    """Bytes and frames per temporal layer of one SSRC, as cumulative bit and frame rates.

    :meth:`add` is on the hot path (every received video packet) and only counts; the rates
    are computed on :meth:`tick`, exponentially smoothed like bwe.RateMeter.
    """

    octets: list[int] = field(default_factory=_zeros)  # per TID since the last tick
    frames: list[int] = field(default_factory=_zeros)
    bps: list[float] = field(default_factory=_fzeros)  # per TID (not cumulative), smoothed
    fps: list[float] = field(default_factory=_fzeros)
    seen: list[float] = field(default_factory=lambda: [-1e9] * (MAX_TID + 1))
    last: float | None = None
    top: int = 0  # the highest TID seen within TID_WINDOW (0 also for streams without TIDs)
    malformed: int = 0

    def add(self, payload: bytes, size: int) -> int:
        """Count one packet of ``size`` bytes whose RTP payload is ``payload``; returns its
        TID (0 when the descriptor has none). A frame is counted at its first packet (S=1,
        partition 0; RFC 7741 §4.2)."""
        # Hand-written rather than vp8.parse_vp8_descriptor: this runs for every received
        # video packet, most of which (the layers nobody gets) are parsed nowhere else, and
        # only two fields are needed (the RFC 7741 §4.2 layout in vp8.py's docstring).
        try:
            b0 = payload[0]
            tid = 0
            if b0 & 0x80:  # X
                x = payload[1]
                if x & 0x20:  # T: TID/Y/KEYIDX byte after picture ID and TL0PICIDX
                    i = 2
                    if x & 0x80:  # I: 1 or 2 bytes (M)
                        i += 2 if payload[2] & 0x80 else 1
                    if x & 0x40:  # L
                        i += 1
                    tid = payload[i] >> 6
        except IndexError:
            self.malformed += 1
            return 0
        if tid > self.top:  # a new layer counts at once; tick() lets an old one go
            self.top = tid
        self.octets[tid] += size
        if b0 & 0x17 == 0x10:  # S=1, PID=0: a frame's first packet
            self.frames[tid] += 1
        return tid

    def tick(self, now: float, smoothing: float = 0.5) -> None:
        """Turn the counts since the last tick into rates."""
        last = self.last
        if last is None:
            self.last = now
            self.octets = _zeros()
            self.frames = _zeros()
            return
        elapsed = now - last
        if elapsed <= 0:
            return
        top = 0
        for tid in range(MAX_TID + 1):
            octets, frames = self.octets[tid], self.frames[tid]
            if octets:
                self.seen[tid] = now
            bps, fps = octets * 8 / elapsed, frames / elapsed
            old_bps, old_fps = self.bps[tid], self.fps[tid]
            self.bps[tid] = bps if old_bps == 0 else old_bps + smoothing * (bps - old_bps)
            self.fps[tid] = fps if old_fps == 0 else old_fps + smoothing * (fps - old_fps)
            if now - self.seen[tid] < TID_WINDOW:
                top = tid
        self.top = top
        self.octets = _zeros()
        self.frames = _zeros()
        self.last = now

    def cumulative(self) -> list[tuple[float, float]]:
        """``(bit rate, frame rate)`` of forwarding TIDs ``0..t``, for t up to :attr:`top`."""
        out: list[tuple[float, float]] = []
        bps = fps = 0.0
        for tid in range(self.top + 1):
            bps += self.bps[tid]
            fps += self.fps[tid]
            out.append((bps, fps))
        return out
