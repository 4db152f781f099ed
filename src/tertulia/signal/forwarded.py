"""The client's address behind trusted reverse proxies, from ``X-Forwarded-For``.

Pure: strings in, an address out. The per-address limits (open WebSockets, joins, password
guesses) key on what :meth:`TrustedProxies.client_address` returns.

The rule (the usual one, e.g. MDN's "trusted proxy list"): only when the direct peer is a
trusted proxy is the header read at all. Its entries (all ``X-Forwarded-For`` fields joined in
order, RFC 9110 §5.3) are walked from the right, skipping trusted proxies; the first address that
is not trusted is the client. Entries to its left were written by the client or by proxies we do
not know, so they are never read. When every entry is trusted, the left-most is the client.

Hand-written rather than aiohttp-remotes' ``XForwardedStrict``: that middleware answers a
malformed or unexpected header with HTTP 400 and rewrites ``request.remote`` for every route,
while here a bad header must cost the client nothing (it is ignored: the peer's own address is
used) and is only counted and logged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HEADER = "X-Forwarded-For"
# Entries read from the right at most: a longer run of trusted proxies is a broken header.
MAX_HOPS = 16
# What an address that is not an IP address (a Unix socket, no peer) counts as.
UNKNOWN = "unknown"


def parse_address(text: str) -> Address | None:
    """An IP address as written in ``X-Forwarded-For`` (bare, no port, no brackets); an
    IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, RFC 4291 §2.5.5.2) becomes the IPv4 one, so
    one client has one key whichever socket family it arrived on. None when it is not one."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDR blocks (``10.0.0.5``, ``10.0.0.0/24``, ``::1``); ValueError naming the
    bad entry otherwise (also for host bits set: ``10.0.0.5/24`` is ambiguous)."""
    networks: list[Network] = []
    for entry in entries:
        text = entry.strip()
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or CIDR block "
                             "(e.g. 10.0.0.5, 10.0.0.0/24, ::1)") from None
        if ipaddress.ip_interface(text).ip != network.network_address:
            raise ValueError(f"{text!r} has host bits set; did you mean {network}?")
        networks.append(network)
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The client's address, and whether a trusted proxy's header had to be ignored."""

    address: str
    malformed: bool = False


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` is believed; none by default."""

    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        return cls(parse_networks(entries))

    def trusts(self, address: Address) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)

    def client_address(self, peer: str | None, forwarded: Sequence[str]) -> Resolved:
        """``peer``: the socket's remote address; ``forwarded``: every ``X-Forwarded-For``
        field of the request, in order. A malformed header from a trusted peer is ignored:
        the peer's address is the answer, with ``malformed`` set."""
        direct = parse_address(peer) if peer else None
        if direct is None:
            return Resolved(peer or UNKNOWN)
        if not forwarded or not self.trusts(direct):
            return Resolved(str(direct))
        entries = ",".join(forwarded).split(",")
        client: Address | None = None
        for hop, entry in enumerate(reversed(entries)):
            if hop == MAX_HOPS:
                return Resolved(str(direct), malformed=True)
            client = parse_address(entry)
            if client is None:
                return Resolved(str(direct), malformed=True)
            if not self.trusts(client):
                break
        # `entries` is never empty, so `client` is set: the first untrusted one from the right,
        # or the left-most when all are trusted.
        assert client is not None
        return Resolved(str(client))


@dataclass(slots=True)
class Throttle:
    """At most one report per ``interval`` seconds: :meth:`note` counts an event and returns
    how many to report now (0: stay quiet), so a flood of bad headers cannot flood the log."""

    interval: float = 10.0
    pending: int = 0
    last: float | None = None

    def note(self, now: float) -> int:
        self.pending += 1
        if self.last is not None and now - self.last < self.interval:
            return 0
        count, self.pending, self.last = self.pending, 0, now
        return count
