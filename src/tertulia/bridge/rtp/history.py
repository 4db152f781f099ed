"""Packet history for answering NACKs (RFC 4585 §6.2.1), bounded by age and by count."""

from __future__ import annotations

from collections import OrderedDict


class PacketHistory:
    """Recently sent packets of one outgoing stream, keyed by (rewritten) sequence number.

    Entries older than ``max_age`` seconds or beyond ``max_packets`` are forgotten, so memory
    stays bounded whatever the bitrate.
    """

    __slots__ = ("_entries", "max_age", "max_packets")

    def __init__(self, *, max_age: float = 1.0, max_packets: int = 1024) -> None:
        self.max_age = max_age
        self.max_packets = max_packets
        self._entries: OrderedDict[int, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, seq: int, data: bytes, now: float) -> None:
        entries = self._entries
        entries.pop(seq, None)
        entries[seq] = (now, data)
        if len(entries) > self.max_packets:
            entries.popitem(last=False)
        # Expire from the old end; bounded by the number of entries.
        limit = now - self.max_age
        while entries:
            first = next(iter(entries.values()))
            if first[0] >= limit:
                break
            entries.popitem(last=False)

    def get(self, seq: int, now: float) -> bytes | None:
        entry = self._entries.get(seq)
        if entry is None or entry[0] < now - self.max_age:
            return None
        return entry[1]

    def newest(self, count: int, now: float) -> list[bytes]:
        """Up to ``count`` of the most recently added packets still in the history, newest
        first (bounded by ``count``)."""
        out: list[bytes] = []
        limit = now - self.max_age
        for stamp, data in reversed(self._entries.values()):
            if len(out) >= count or stamp < limit:
                break
            out.append(data)
        return out

    def clear(self) -> None:
        self._entries.clear()
