"""The bridge's relays (bridge/relay_link.py) as its datagram handler sees them: found by our
ICE ufrag (the active side's checks) and by the far bridge's address (everything else)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from tertulia.bridge.conference import Conference
from tertulia.bridge.endpoint import Address
from tertulia.bridge.relay import RelayPeer
from tertulia.bridge.relay_link import Relay
from tertulia.bridge.stats import Totals
from tertulia.bridge.transport import ice
from tertulia.bridge.transport.demux import Kind
from tertulia.bridge.transport.dtls import DtlsCertificate

log = logging.getLogger(__name__)

Transmit = Callable[[bytes, Address], None]


class RelayTable:
    def __init__(self, certificate: DtlsCertificate, transmit: Transmit,
                 counters: Counter[str]) -> None:
        self.certificate = certificate
        self._transmit = transmit
        self.counters = counters
        self.by_ufrag: dict[str, Relay] = {}  # our ICE ufrag of each relay
        self.by_addr: dict[Address, Relay] = {}  # the far bridge's address of each relay
        self.closed_totals = Totals()  # traffic of relays already closed

    def open(self, conference: Conference, peer_id: str, now: float,
             taken: Callable[[str], bool]) -> Relay:
        """A new relay of ``conference`` to bridge ``peer_id`` (an old one is closed first);
        ``taken`` says whether a ufrag is already an endpoint's."""
        if peer_id in conference.relays:
            self.close(conference, peer_id)
        for _ in range(100):  # bounded: 48 random bits collide almost never
            relay = Relay(conference, peer_id, self.certificate, self._transmit, now)
            ufrag = relay.creds.local_ufrag
            if ufrag not in self.by_ufrag and not taken(ufrag):
                break
        conference.relays[peer_id] = relay
        self.by_ufrag[relay.creds.local_ufrag] = relay
        self.counters["relays-opened"] += 1
        return relay

    def connect(self, relay: Relay, peer: RelayPeer, active: bool, now: float) -> None:
        relay.connect(peer, active, now)
        if relay.addr is not None:  # the active side sends to the address it was given
            self.by_addr[relay.addr] = relay

    def close(self, conference: Conference, peer_id: str) -> bool:
        """Idempotent: close the relay and forget the far bridge's participants."""
        relay = conference.relays.pop(peer_id, None)
        if relay is None or not isinstance(relay, Relay):
            return False
        relay.close()
        st = relay.stats
        self.closed_totals = self.closed_totals.add(
            Totals(st.rtp_in + st.rtcp_in, st.rtp_out + st.rtcp_out, st.bytes_in, st.bytes_out))
        self.by_ufrag.pop(relay.creds.local_ufrag, None)
        if relay.addr is not None and self.by_addr.get(relay.addr) is relay:
            del self.by_addr[relay.addr]
        self.counters["relays-closed"] += 1
        return True

    def on_check(self, relay: Relay, message: Any, addr: Address, now: float) -> None:
        """The active side of a relay checks us like a client would (ICE, RFC 8445 §7.3)."""
        result = ice.answer_check(message, relay.creds, addr)
        if result.response is not None:
            self._transmit(result.response, addr)
        if result.error is not None:
            self.counters["dropped-relay-stun-" + result.error.replace(" ", "-")] += 1
            return
        if relay.addr != addr:
            if relay.addr is not None and self.by_addr.get(relay.addr) is relay:
                del self.by_addr[relay.addr]
            self.by_addr[addr] = relay
        relay.accept_check(addr, now)

    def on_datagram(self, relay: Relay, kind: Kind, data: bytes, now: float) -> None:
        if kind == Kind.DTLS:
            relay.on_dtls(data, now)
        elif kind == Kind.RTP:
            relay.on_rtp(data, now)
        elif kind == Kind.RTCP:
            relay.on_rtcp(data, now)
        else:
            self.counters["dropped-unknown-kind"] += 1

    def tick(self, conference: Conference, now: float) -> None:
        """Timers of the conference's relays; a silent one is closed."""
        for peer_id, relay in list(conference.relays.items()):
            if not isinstance(relay, Relay):
                continue
            relay.tick(now)
            if relay.expired(now):
                log.warning("relay to bridge %s went silent: closing it", peer_id,
                            extra={"conference": conference.id})
                self.counters["relays-expired"] += 1
                self.close(conference, peer_id)
