"""Packet history for answering NACKs (RFC 4585 §6.2.1), bounded by age and by count."""

from __future__ import annotations

from collections import deque


class PacketHistory:
    """Recently sent packets of one outgoing stream, keyed by (rewritten) sequence number.

    Entries older than ``max_age`` seconds or beyond ``max_packets`` are forgotten, so memory
    stays bounded whatever the bitrate.

    Kept as a deque of ``(seq, time, head, payload)`` in the order added (one append per
    packet sent, the cheapest store for the forwarding path) rather than a mapping: packets are
    added in sequence order almost always, so a lookup finds its entry by its distance from
    the newest one and scans (bounded by ``max_packets``) only when that guess misses. A
    sequence number added again replaces its earlier entry, as in a mapping.

    A packet may be stored as its header and its payload apart (``add(..., payload=...)``):
    the forwarding path then keeps the payload object it shares with every other receiver of
    the packet instead of a copy per receiver; lookups join them.
    """

    __slots__ = ("_entries", "max_age", "max_packets")

    def __init__(self, *, max_age: float = 1.0, max_packets: int = 1024) -> None:
        self.max_age = max_age
        self.max_packets = max_packets
        self._entries: deque[tuple[int, float, bytes, bytes]] = deque(maxlen=max_packets)

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, seq: int, data: bytes, now: float, payload: bytes = b"") -> None:
        """Remember the packet ``data + payload`` as sent at ``now``."""
        entries = self._entries
        if entries:
            # not newer than the newest entry (RFC 3550 §A.1 serial comparison): it may be
            # there already
            if ((seq - entries[-1][0] + 0x8000) & 0xFFFF) - 0x8000 <= 0:
                index = self._find(seq)
                if index is not None:
                    del entries[index]
            if entries and entries[0][1] < now - self.max_age:
                # Expire from the old end; bounded by the number of entries.
                limit = now - self.max_age
                while entries and entries[0][1] < limit:
                    entries.popleft()
        entries.append((seq, now, data, payload))  # maxlen drops the oldest beyond max_packets

    def _find(self, seq: int) -> int | None:
        """Index of the entry for ``seq``, or None."""
        entries = self._entries
        n = len(entries)
        if not n:
            return None
        back = (entries[-1][0] - seq) & 0xFFFF
        if back < n and entries[n - 1 - back][0] == seq:
            return n - 1 - back
        for index in range(n - 1, -1, -1):  # out-of-order adds: bounded by max_packets
            if entries[index][0] == seq:
                return index
        return None

    def get(self, seq: int, now: float) -> bytes | None:
        index = self._find(seq)
        if index is None:
            return None
        _seq, stamp, head, payload = self._entries[index]
        if stamp < now - self.max_age:
            return None
        return head + payload if payload else head

    def newest(self, count: int, now: float) -> list[bytes]:
        """Up to ``count`` of the most recently added packets still in the history, newest
        first (bounded by ``count``)."""
        out: list[bytes] = []
        limit = now - self.max_age
        for _seq, stamp, head, payload in reversed(self._entries):
            if len(out) >= count or stamp < limit:
                break
            out.append(head + payload if payload else head)
        return out

    def clear(self) -> None:
        self._entries.clear()
