"""The bridge: one UDP socket for every endpoint, conferences, allocation and expiry.

This is the I/O shell around the pure parts: it demultiplexes datagrams (RFC 7983), answers
ICE-lite checks, runs DTLS, decrypts SRTP and hands packets to the conference. Bad datagrams are
dropped and counted by reason; nothing a peer sends can raise out of ``datagram_received``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tertulia.bridge import bandwidth, uplink
from tertulia.bridge.conference import Conference
from tertulia.bridge.constraints import ConstraintsError, parse_constraints
from tertulia.bridge.droplog import DropLog
from tertulia.bridge.endpoint import Address, Endpoint
from tertulia.bridge.relay import RelayPeer
from tertulia.bridge.relay_link import Relay, RelayedEndpoint
from tertulia.bridge.relay_table import RelayTable
from tertulia.bridge.rtp.packet import RtpParseError, header_fields
from tertulia.bridge.rtp.rtcp import RtcpParseError, parse_rtcp
from tertulia.bridge.stats import StatsSampler, Totals, snapshot, uplink_totals
from tertulia.bridge.transport import ice
from tertulia.bridge.transport.demux import Kind, classify
from tertulia.bridge.transport.dtls import DtlsCertificate, DtlsState
from tertulia.bridge.transport.srtp import SrtpError
from tertulia.bridge.transport.udp import UdpSocket
from tertulia.protocol.answer import build_answer
from tertulia.protocol.sdp import LocalTransport, negotiate, parse_offer

log = logging.getLogger(__name__)

ExpiredCallback = Callable[[str, str, str], None]  # conference id, endpoint id, reason


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    media_host: str = "127.0.0.1"
    media_port: int = 10000
    public_ip: str = "127.0.0.1"
    relay_ip: str = ""  # what other bridges send relay traffic to; "" = public_ip
    slots: int = 9
    region: str = "default"
    consent_timeout: float = 30.0  # RFC 7675 §5.1: consent expires after 30 s
    connect_timeout: float = 30.0  # an endpoint that never connects is dropped after this
    history_age: float = 1.0


@dataclass(frozen=True, slots=True)
class Allocation:
    answer: str
    endpoint_id: str
    channel_path: str


class AllocationError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Transport-wide feedback and padding run this often (seconds): libwebrtc's own receivers
# send feedback every 50-100 ms, and padding spread this finely does not queue up in bursts.
FAST_TICK = 0.05


class Bridge:
    """A selective forwarding unit listening on one UDP port."""

    def __init__(self, settings: BridgeSettings, *, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.clock = clock
        self.certificate = DtlsCertificate.generate()
        self.conferences: dict[str, Conference] = {}
        self.by_ufrag: dict[str, Endpoint] = {}
        self.by_addr: dict[Address, Endpoint] = {}
        self.counters: Counter[str] = Counter()
        self.on_expired: ExpiredCallback | None = None
        self._socket = UdpSocket(self.datagram_received, self._count_error)
        self.relay_table = RelayTable(self.certificate, self._transmit, self.counters)
        self._ticker: asyncio.Task[None] | None = None
        self._fast_ticker: asyncio.Task[None] | None = None
        self._last_fast = 0.0
        self.started_at = time.time()
        self.closed_totals = Totals()  # traffic of endpoints already gone
        self.closed_uplink: dict[str, int] = {}  # their uplink repair counts (stats.py)
        self.sampler = StatsSampler()
        self.drop_log = DropLog()
        self.relay_sampler = StatsSampler()
        self.draining = False
        self.shutting_down = False
        self._loop: asyncio.AbstractEventLoop | None = None  # for the pacers' timers

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._socket.open(self.settings.media_host, self.settings.media_port)
        self._loop = asyncio.get_running_loop()
        self._ticker = asyncio.create_task(self._tick_loop())
        self._fast_ticker = asyncio.create_task(self._fast_loop())
        log.info(
            "bridge media on udp %s:%d (advertised %s)",
            self.settings.media_host,
            self.settings.media_port,
            self.settings.public_ip,
        )

    async def stop(self) -> None:
        for conference in list(self.conferences.values()):
            for peer_id in list(conference.relays):
                self.relay_close(conference.id, peer_id)
            for endpoint_id in list(conference.endpoints):
                self.expire(conference.id, endpoint_id)
        for task in (self._ticker, self._fast_ticker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._ticker = self._fast_ticker = None
        self._socket.close()

    @property
    def bound(self) -> bool:
        return self._socket.is_open

    def _transmit(self, data: bytes, addr: Address) -> None:
        self._socket.sendto(data, addr)

    def _schedule(self, delay: float, callback: Callable[[float], None]) -> None:
        """An endpoint's pacer timer (bridge/pacer.py): ``callback(now)`` after ``delay``."""
        if self._loop is not None:
            self._loop.call_later(delay, self._timer, callback)

    def _timer(self, callback: Callable[[float], None]) -> None:
        try:
            callback(self.clock())
        except Exception:  # one endpoint's failure must not stop the loop's other work
            log.exception("bridge timer failed")

    def _count_error(self, reason: str) -> None:
        self.counters[reason] += 1

    # -- control API ------------------------------------------------------------------------

    def allocate(self, conference_id: str, endpoint_id: str, offer_sdp: str) -> Allocation:
        """Create an endpoint from the client's offer and return the SDP answer."""
        from tertulia.protocol.sdp import SdpError

        conference = self.conferences.get(conference_id)
        if conference is not None and isinstance(conference.endpoints.get(endpoint_id),
                                                 RelayedEndpoint):
            conference.remove(endpoint_id)  # it moved here from another bridge: local wins
        if conference is not None and endpoint_id in conference.endpoints:
            raise AllocationError("already-offered", "this endpoint already has media")
        try:
            offer = parse_offer(offer_sdp)
            negotiation = negotiate(offer, max_slots=self.settings.slots)
        except SdpError as exc:
            raise AllocationError("bad-sdp", str(exc)) from exc
        creds = ice.IceCredentials.generate(offer.ice_ufrag, offer.ice_pwd)
        while creds.local_ufrag in self.by_ufrag or creds.local_ufrag in self.relay_table.by_ufrag:
            creds = ice.IceCredentials.generate(offer.ice_ufrag, offer.ice_pwd)
        now = self.clock()
        endpoint = Endpoint(
            endpoint_id,
            conference_id,
            negotiation,
            creds,
            self.certificate,
            offer.fingerprint,
            self._transmit,
            now,
            history_age=self.settings.history_age,
            schedule=self._schedule if self._loop is not None else None,
        )
        local = LocalTransport(
            ice_ufrag=creds.local_ufrag,
            ice_pwd=creds.local_pwd,
            fingerprint=self.certificate.fingerprint,
            ip=self.settings.public_ip,
            port=self.settings.media_port,
        )
        answer = build_answer(
            offer,
            negotiation,
            local,
            endpoint.slot_sources(),
            session_id=random.randrange(1, 1 << 62),
        )
        if conference is None:
            conference = Conference(conference_id)
            self.conferences[conference_id] = conference
            self.counters["conferences-created"] += 1
        self.by_ufrag[creds.local_ufrag] = endpoint
        conference.add(endpoint)
        self.counters["endpoints-created"] += 1
        path = f"/bridge/ws/{conference_id}/{endpoint_id}?token={endpoint.channel_token}"
        return Allocation(answer, endpoint_id, path)

    def expire(self, conference_id: str, endpoint_id: str) -> bool:
        """Remove an endpoint; idempotent. Empty conferences are removed too."""
        conference = self.conferences.get(conference_id)
        if conference is None:
            return False
        endpoint = conference.remove(endpoint_id)
        if endpoint is None:
            return False
        self.by_ufrag.pop(endpoint.creds.local_ufrag, None)
        st = endpoint.stats
        self.closed_totals = self.closed_totals.add(
            Totals(st.rtp_in + st.rtcp_in, st.rtp_out + st.rtcp_out, st.bytes_in, st.bytes_out)
        )
        if not isinstance(endpoint, RelayedEndpoint):
            self.closed_uplink = uplink_totals(self.closed_uplink, [endpoint])
        for addr in endpoint.valid_addrs:
            if self.by_addr.get(addr) is endpoint:
                del self.by_addr[addr]
        endpoint.close()
        if not any(not isinstance(e, RelayedEndpoint) for e in conference.endpoints.values()):
            for peer_id in list(conference.relays):  # no one left here to relay
                self.relay_close(conference_id, peer_id)
            del self.conferences[conference_id]
            self.counters["conferences-completed"] += 1
        return True

    # -- relays (bridge/relay_link.py) -----------------------------------------------------

    def relay_open(self, conference_id: str, peer_id: str) -> RelayPeer:
        """Open (or reopen) this conference's relay to bridge ``peer_id``; returns what the
        other bridge needs to reach it."""
        conference = self.conferences.get(conference_id)
        if conference is None:
            conference = Conference(conference_id)
            self.conferences[conference_id] = conference
            self.counters["conferences-created"] += 1
        relay = self.relay_table.open(conference, peer_id, self.clock(),
                                      lambda ufrag: ufrag in self.by_ufrag)
        return RelayPeer(self.settings.relay_ip or self.settings.public_ip,
                         self.settings.media_port,
                         relay.creds.local_ufrag, relay.creds.local_pwd,
                         self.certificate.fingerprint)

    def relay_connect(self, conference_id: str, peer_id: str, peer: RelayPeer,
                      active: bool) -> bool:
        relay = self._relay(conference_id, peer_id)
        if relay is None:
            return False
        self.relay_table.connect(relay, peer, active, self.clock())
        return True

    def relay_close(self, conference_id: str, peer_id: str) -> bool:
        """Idempotent: close the relay and forget the far bridge's participants."""
        conference = self.conferences.get(conference_id)
        return self.relay_table.close(conference, peer_id) if conference else False

    def _relay(self, conference_id: str, peer_id: str) -> Relay | None:
        conference = self.conferences.get(conference_id)
        relay = conference.relays.get(peer_id) if conference else None
        return relay if isinstance(relay, Relay) else None

    def relays(self) -> list[Relay]:
        return [r for c in self.conferences.values() for r in c.relays.values()
                if isinstance(r, Relay)]

    def set_blocked(self, conference_id: str, endpoint_id: str, kind: str, blocked: bool) -> bool:
        """Drop (or forward again) one kind of an endpoint's media: a moderator's mute."""
        endpoint = self.find_endpoint(conference_id, endpoint_id)
        media = endpoint.sending.get(kind) if endpoint else None
        if media is None:
            return False
        media.blocked = blocked
        conference = self.conferences.get(conference_id)
        if not blocked and kind == "video" and endpoint is not None and conference is not None:
            conference.request_keyframe(endpoint, self.clock())  # receivers restart on a keyframe
        return True

    def channel_action(
        self, conference_id: str, endpoint_id: str, action: tuple[str, Any]
    ) -> dict[str, Any] | None:
        """Carry out a bridge-channel request; returns an error reply, if any."""
        conference = self.conferences.get(conference_id)
        endpoint = conference.endpoints.get(endpoint_id) if conference else None
        if conference is None or endpoint is None:
            return None
        kind, value = action
        if kind == "sharing":
            self.set_sharing(conference_id, endpoint_id, bool(value))
        elif kind == "constraints":
            try:
                endpoint.constraints = parse_constraints(value, endpoint.constraints)
            except ConstraintsError as exc:
                return {"type": "error", "code": "bad-message", "message": str(exc)}
            conference.update_video_selection(endpoint, self.clock())
            conference.refresh_layers(self.clock())
        return None

    def set_sharing(self, conference_id: str, endpoint_id: str, active: bool) -> bool:
        conference = self.conferences.get(conference_id)
        endpoint = conference.endpoints.get(endpoint_id) if conference else None
        if conference is None or endpoint is None or "screen" not in endpoint.sending:
            return False
        conference.set_sharing(endpoint, active, self.clock())
        for relay in conference.relays.values():
            if isinstance(relay, Relay):
                relay.announce(endpoint)  # the other bridges' screen slots follow at once
        return True

    def find_endpoint(self, conference_id: str, endpoint_id: str) -> Endpoint | None:
        conference = self.conferences.get(conference_id)
        return conference.endpoints.get(endpoint_id) if conference else None

    # -- datagrams ------------------------------------------------------------------------

    def datagram_received(
        self, data: bytes, addr: Address, arrival: float | None = None
    ) -> None:
        """One datagram; ``arrival`` is the kernel's receive time (monotonic seconds) when
        known, reported back to senders in transport-wide feedback."""
        self.counters["datagrams"] += 1
        try:
            kind = classify(data)
            if kind == Kind.STUN:
                self._on_stun(data, addr)
                return
            endpoint = self.by_addr.get(addr)
            if endpoint is None:
                relay = self.relay_table.by_addr.get(addr)
                if relay is not None:
                    self.relay_table.on_datagram(relay, kind, data, self.clock())
                    return
                self.counters["dropped-unknown-address"] += 1
                return
            if kind == Kind.DTLS:
                self._on_dtls(endpoint, data, addr)
            elif kind == Kind.RTP:
                self._on_rtp(endpoint, data, arrival)
            elif kind == Kind.RTCP:
                self._on_rtcp(endpoint, data)
            else:
                self.counters["dropped-unknown-kind"] += 1
        except Exception:  # never let one peer's datagram take the bridge down
            self.counters["dropped-internal-error"] += 1
            log.exception("error handling a datagram from %s", addr)

    def _on_stun(self, data: bytes, addr: Address) -> None:
        try:
            message = ice.parse(data)
        except ValueError:
            self.counters["dropped-malformed-stun"] += 1
            return
        ufrag = ice.username_local_ufrag(message)
        relays = self.relay_table
        relay = relays.by_ufrag.get(ufrag) if ufrag else None
        if relay is not None:
            relays.on_check(relay, message, addr, self.clock())
            return
        if ufrag is None and addr in relays.by_addr:  # the answer to our own check
            relays.by_addr[addr].heard(self.clock())
            return
        endpoint = self.by_ufrag.get(ufrag) if ufrag else None
        if endpoint is None:
            self.counters["dropped-stun-unknown-user"] += 1
            return
        result = ice.answer_check(message, endpoint.creds, addr)
        if result.error is not None and result.response is None:
            self.counters["dropped-stun-" + result.error.replace(" ", "-")] += 1
            return
        if result.response is not None:
            self._transmit(result.response, addr)
        if result.error is None:
            if endpoint.last_consent is None:
                self.counters["ice-succeeded"] += 1
            dropped = endpoint.accept_check(addr, result.nominated, self.clock())
            self.by_addr[addr] = endpoint
            if dropped is not None and self.by_addr.get(dropped) is endpoint:
                del self.by_addr[dropped]
                self.counters["endpoint-addresses-dropped"] += 1

    def _on_dtls(self, endpoint: Endpoint, data: bytes, addr: Address) -> None:
        if endpoint.on_dtls(data, addr):
            log.info("endpoint connected", extra={"conference": endpoint.conference_id,
                                                  "endpoint": endpoint.id})
            log.debug("endpoint %s address %s:%d", endpoint.id, *addr)  # addresses: debug only
            conference = self.conferences.get(endpoint.conference_id)
            if conference is not None:
                conference.on_connected(endpoint, self.clock())
        if endpoint.dtls.state == DtlsState.FAILED:
            self.counters["dtls-failed"] += 1
            log.warning("DTLS failed: %s", endpoint.dtls.error,
                        extra={"conference": endpoint.conference_id, "endpoint": endpoint.id})
            self._expire_and_report(endpoint, "dtls-failed")

    def _on_rtp(self, endpoint: Endpoint, data: bytes, arrival: float | None = None) -> None:
        srtp = endpoint.srtp
        if srtp is None:
            self.counters["dropped-rtp-before-dtls"] += 1
            return
        try:
            plain = srtp.unprotect_rtp(data)
            header_fields(plain)
        except SrtpError:
            self.counters["dropped-srtp-auth"] += 1
            return
        except (RtpParseError, ValueError):
            self.counters["dropped-malformed-rtp"] += 1
            return
        endpoint.stats.rtp_in += 1
        endpoint.stats.bytes_in += len(data)
        conference = self.conferences.get(endpoint.conference_id)
        if conference is not None:
            conference.on_rtp(endpoint, plain, self.clock(), arrival)

    def _on_rtcp(self, endpoint: Endpoint, data: bytes) -> None:
        srtp = endpoint.srtp
        if srtp is None:
            self.counters["dropped-rtcp-before-dtls"] += 1
            return
        try:
            packets = parse_rtcp(srtp.unprotect_rtcp(data))
        except SrtpError:
            self.counters["dropped-srtcp-auth"] += 1
            return
        except (RtcpParseError, ValueError):
            self.counters["dropped-malformed-rtcp"] += 1
            return
        endpoint.stats.rtcp_in += 1
        conference = self.conferences.get(endpoint.conference_id)
        if conference is not None:
            conference.on_rtcp(endpoint, packets, self.clock())
            for relay in conference.relays.values():
                if isinstance(relay, Relay):
                    relay.forward_sender_reports(endpoint, packets)

    # -- timers ---------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            try:
                self.tick(self.clock())
            except Exception:
                log.exception("bridge tick failed")

    async def _fast_loop(self) -> None:
        while True:
            await asyncio.sleep(FAST_TICK)
            try:
                self.fast_tick(self.clock())
            except Exception:
                log.exception("bridge fast tick failed")

    def fast_tick(self, now: float) -> None:
        """Transport-wide feedback to senders and probing padding to receivers (bwe.py)."""
        elapsed = min(max(now - self._last_fast, 0.0), 0.2) if self._last_fast else FAST_TICK
        self._last_fast = now
        for conference in list(self.conferences.values()):
            for endpoint in list(conference.endpoints.values()):
                bandwidth.transport_feedback(endpoint, conference.bridge_ssrc, now)
                uplink.send_nacks(endpoint, conference.bridge_ssrc, now)  # retries, expiry
                bandwidth.pad(endpoint, elapsed, now)

    def tick(self, now: float) -> None:
        """DTLS retransmissions and consent/connect expiry (RFC 7675 §5.1)."""
        self.drop_log.tick(self.counters, now)
        for conference in list(self.conferences.values()):
            if conference.speaker_tick(now):
                self.counters["dominant-speaker-changes"] += 1
            conference.refresh_layers(now)
            self.relay_table.tick(conference, now)
            for endpoint in list(conference.endpoints.values()):
                if isinstance(endpoint, RelayedEndpoint):
                    continue  # its own bridge watches its consent
                endpoint.dtls_tick(now)
                if endpoint.last_consent is None:
                    if now - endpoint.created > self.settings.connect_timeout:
                        self.counters["endpoints-expired-ice-failed"] += 1
                        self._expire_and_report(endpoint, "media-timeout")
                elif now - endpoint.last_consent > self.settings.consent_timeout:
                    self._expire_and_report(endpoint, "media-timeout")

    def _expire_and_report(self, endpoint: Endpoint, reason: str) -> None:
        if self.expire(endpoint.conference_id, endpoint.id):
            self.counters[f"endpoints-expired-{reason}"] += 1
            if self.on_expired is not None:
                self.on_expired(endpoint.conference_id, endpoint.id, reason)

    # -- stats ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        return snapshot(self, self.clock())
