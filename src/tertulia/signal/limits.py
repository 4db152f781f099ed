"""Rate limits for the signal server: token buckets, per connection and per address.

Pure: time is passed in. Per-address state is bounded (least recently used addresses are
forgotten first), so a flood from many addresses cannot grow memory without limit.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst``; starts full."""

    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def allow(self, now: float, cost: float = 1.0) -> bool:
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class KeyedLimiter:
    """One token bucket per key (e.g. client address), at most ``max_keys`` remembered."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str, now: float, cost: float = 1.0) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, self.burst)
            self._buckets[key] = bucket
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.allow(now, cost)

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(slots=True)
class AbuseMeter:
    """Counts refused messages over a sliding window; past ``threshold`` the peer is abusive."""

    window: float = 10.0
    threshold: int = 2000
    count: int = 0
    window_start: float = 0.0

    def refused(self, now: float) -> bool:
        """Record one refused message; True when the connection should be closed."""
        if now - self.window_start > self.window:
            self.window_start, self.count = now, 0
        self.count += 1
        return self.count > self.threshold


@dataclass(frozen=True, slots=True)
class Limits:
    """Every signalling limit, with defaults (docs/protocol.md, "Limits")."""

    max_message_bytes: int = 256 * 1024
    messages_per_second: float = 20.0
    message_burst: float = 40.0
    joins_per_second_per_address: float = 5.0
    join_burst_per_address: float = 20.0
    password_guesses_per_minute: float = 5.0
    password_guesses_per_minute_per_address: float = 20.0
    max_participants_per_room: int = 100
    max_rooms: int = 1000
    chat_history: int = 100
    max_chat_chars: int = 2000
    lobby_queue: int = 50
    resume_grace: float = 10.0
    connections_per_address: int = 500
    # Slow clients (slowloris): a connection must deliver a complete HTTP request head within
    # ``request_timeout`` seconds of connecting or of its previous response, and an upgraded
    # signalling WebSocket that is in no room (and not knocking) and sends nothing for
    # ``idle_socket_timeout`` seconds is closed.
    request_timeout: float = 15.0
    idle_socket_timeout: float = 60.0
