"""One-way latency through a forwarding server, and side-by-side ratios (pure).

Both servers a side-by-side benchmark compares (our bridge and Janus's VideoRoom) forward RTP
payloads unchanged: they rewrite SSRC, sequence numbers, timestamps and, for VP8, the payload
descriptor at the *front* of the payload, but never its bytes after that. So the sender
overwrites the last :data:`STAMP_SIZE` bytes of every payload with a stamp (a marker, its
index and ``time.monotonic_ns()`` just before the packet is protected and sent) and the
receiver, after unprotecting it, reads the stamp back. Senders and receivers run on the same
machine, where ``CLOCK_MONOTONIC`` is one clock for every process, so the difference is the
one-way time through the server, both kernels' socket paths and the receiving event loop.
Neither server decodes the media, so the overwritten bytes cost nothing but a corrupt
picture nobody looks at.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

_STAMP = struct.Struct("!2sHQ")  # marker, sender index, monotonic ns
STAMP_SIZE = _STAMP.size
MARKER = b"\xa7\x5e"


def stamp_payload(packet: bytes, sender: int, now_ns: int) -> bytes:
    """``packet`` (a complete RTP packet, header included) with its last bytes replaced by a
    stamp. Packets too short to hold one after a minimal 12-byte header are returned as
    they are."""
    if len(packet) < 12 + STAMP_SIZE:
        return packet
    return packet[:-STAMP_SIZE] + _STAMP.pack(MARKER, sender & 0xFFFF, now_ns)


def read_stamp(packet: bytes) -> tuple[int, int] | None:
    """``(sender, sent_ns)`` from an unprotected RTP packet's stamp, or None when the packet
    carries none (too short, or not stamped)."""
    if len(packet) < 12 + STAMP_SIZE:
        return None
    marker, sender, sent = _STAMP.unpack_from(packet, len(packet) - STAMP_SIZE)
    if marker != MARKER:
        return None
    return sender, sent


def percentile(values: list[int] | list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


@dataclass(frozen=True, slots=True)
class Cost:
    """What one server spent over the measured window."""

    cpu_seconds: float  # process user + system time (all threads), /proc/<pid>/stat
    packets: int  # RTP packets the receivers got from it in the same window

    @property
    def us_per_packet(self) -> float | None:
        return 1e6 * self.cpu_seconds / self.packets if self.packets > 0 else None


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """``ours ÷ theirs``, or None when either is missing or the divisor is not positive."""
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs
