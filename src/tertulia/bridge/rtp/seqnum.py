"""Modular arithmetic for RTP sequence numbers (16 bit) and timestamps (32 bit).

RFC 3550 §5.1: the sequence number is a 16-bit counter and the timestamp a 32-bit clock; both
wrap around.  Comparisons therefore use the *shortest* distance on the circle (serial number
arithmetic, RFC 1982 §3.2; the same idea as RFC 3550 §A.1 ``update_seq``).

Distances are returned in the half-open range ``[-2**(n-1), 2**(n-1) - 1]``: when two values are
exactly half the circle apart the distance is reported as negative, so ``seq_newer`` is false in
both directions (RFC 1982 §3.2 leaves that case undefined).
"""

from __future__ import annotations

__all__ = [
    "SEQ_MOD",
    "TS_MOD",
    "SeqUnwrapper",
    "seq_add",
    "seq_diff",
    "seq_newer",
    "ts_add",
    "ts_diff",
    "ts_newer",
]

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
_SEQ_MASK = SEQ_MOD - 1
_SEQ_HALF = SEQ_MOD >> 1
_TS_MASK = TS_MOD - 1
_TS_HALF = TS_MOD >> 1


def seq_add(a: int, b: int) -> int:
    """``(a + b) mod 2**16``; ``b`` may be negative."""
    return (a + b) & _SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """Signed shortest distance ``a - b`` between two sequence numbers, in ``[-32768, 32767]``."""
    return ((a - b + _SEQ_HALF) & _SEQ_MASK) - _SEQ_HALF


def seq_newer(a: int, b: int) -> bool:
    """True when ``a`` comes after ``b`` (RFC 1982 §3.2 serial comparison, as in RFC 3550 §A.1)."""
    return seq_diff(a, b) > 0


def ts_add(a: int, b: int) -> int:
    """``(a + b) mod 2**32``; ``b`` may be negative."""
    return (a + b) & _TS_MASK


def ts_diff(a: int, b: int) -> int:
    """Signed shortest distance ``a - b`` between two RTP timestamps, in ``[-2**31, 2**31 - 1]``."""
    return ((a - b + _TS_HALF) & _TS_MASK) - _TS_HALF


def ts_newer(a: int, b: int) -> bool:
    """True when timestamp ``a`` is later than ``b``."""
    return ts_diff(a, b) > 0


class SeqUnwrapper:
    """Extends 16-bit sequence numbers to a 64-bit index (RFC 3550 §A.1 "extended" sequence).

    The first value seen maps to itself (``0..65535``).  Each later value is placed at the
    shortest distance from the *highest* index seen so far, so late (reordered) packets get
    indices below the highest one and a forward jump across 0 adds one cycle of 65536.
    A packet reordered before the very first one across the wrap gets a negative index
    (e.g. first 0, then 65535 gives -1); callers that need non-negative indices can start
    from a later cycle via ``start_cycle`` (the first value then maps to
    ``start_cycle * 65536 + seq``).
    """

    __slots__ = ("_base", "_highest")

    def __init__(self, start_cycle: int = 0) -> None:
        if start_cycle < 0:
            raise ValueError("start_cycle must be >= 0")
        self._base = start_cycle * SEQ_MOD
        self._highest: int | None = None

    @property
    def highest(self) -> int | None:
        """Highest index returned so far, or None before the first call."""
        return self._highest

    def unwrap(self, seq: int) -> int:
        """Return the extended index of ``seq`` and update the highest index seen."""
        if not 0 <= seq <= _SEQ_MASK:
            raise ValueError(f"sequence number out of range: {seq}")
        highest = self._highest
        if highest is None:
            self._highest = self._base + seq
            return self._highest
        index = highest + seq_diff(seq, highest & _SEQ_MASK)
        if index > highest:
            self._highest = index
        return index

    def peek(self, seq: int) -> int:
        """Like :meth:`unwrap` but without updating the state."""
        highest = self._highest
        if highest is None:
            return self._base + (seq & _SEQ_MASK)
        return highest + seq_diff(seq, highest & _SEQ_MASK)
