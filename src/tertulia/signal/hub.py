"""What all signalling sessions of one server share: rooms, the focus, limits and counters."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tertulia.focus.focus import Focus
from tertulia.signal.forwarded import Throttle, TrustedProxies
from tertulia.signal.limits import KeyedLimiter, Limits
from tertulia.signal.rooms import Rooms
from tertulia.signal.tokens import TokenVerifier

log = logging.getLogger("tertulia.signal")


@dataclass
class Hub:
    """What all sessions of one signal server share."""

    rooms: Rooms
    focus: Focus
    limits: Limits
    tokens: TokenVerifier
    slots: int
    call_later: Callable[[float, Callable[[], None]], Any]
    clock: Callable[[], float] = time.monotonic
    join_limiter: KeyedLimiter = field(init=False)
    guess_limiter: KeyedLimiter = field(init=False)
    # open connections' close callbacks, so shutdown can close them all at once
    connections: dict[int, Callable[[int], None]] = field(default_factory=dict)
    # joins, messages, rate_limited, auth_failures, knocks, resumes (for /metrics)
    counters: Counter[str] = field(default_factory=Counter)
    per_address: Counter[str] = field(default_factory=Counter)  # open WebSockets by address
    # participant id -> RTCIceServer dicts for its welcome (TURN credentials; see turn.py)
    ice_servers: Callable[[str], list[dict[str, Any]]] = field(default=lambda _pid: [])
    # Sharding (docs/operations.md): a shard refuses joins whose room differs from the /ws
    # URL's `room` parameter, which the front hashes on; a shard also requires the parameter.
    require_room_param: bool = False
    region_header: str = "X-Proxy-Region"
    shard_id: str = ""  # named in `welcome` when set (a shard of a cluster)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)  # offers waiting on a bridge
    # Reverse proxies whose X-Forwarded-For names the client (docs/security.md); none: the
    # socket's peer is the client.
    trusted_proxies: TrustedProxies = field(default_factory=TrustedProxies)
    forwarded_log: Throttle = field(default_factory=Throttle)

    def __post_init__(self) -> None:
        self.join_limiter = KeyedLimiter(
            self.limits.joins_per_second_per_address, self.limits.join_burst_per_address
        )
        self.guess_limiter = KeyedLimiter(
            self.limits.password_guesses_per_minute_per_address / 60.0,
            self.limits.password_guesses_per_minute_per_address,
        )

    def client_address(self, peer: str | None, forwarded: Sequence[str]) -> str:
        """The key of the per-address limits for a request from ``peer`` carrying these
        ``X-Forwarded-For`` fields. A trusted proxy's malformed header is ignored (the
        proxy's own address is used), counted, and logged at most once per 10 s."""
        resolved = self.trusted_proxies.client_address(peer, forwarded)
        if resolved.malformed:
            self.counters["forwarded_malformed"] += 1
            count = self.forwarded_log.note(self.clock())
            if count:
                log.warning("ignored %d malformed X-Forwarded-For header(s) from a trusted "
                            "proxy since the last report; limits applied to the proxy's "
                            "address instead", count)
            log.debug("malformed X-Forwarded-For from %s: %r", peer, list(forwarded)[:4])
        return resolved.address
