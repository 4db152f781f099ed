"""The media socket's public address, asked of a STUN server at start-up (RFC 8489).

Behind a 1:1 NAT (a cloud VM with an elastic address, a home router forwarding the media port)
the bridge cannot see the address clients must send media to. With `--stun-server` and no
`--public-ip`, `serve` sends a Binding request from the media port's own address (before the
bridge binds it) and advertises the address the STUN server saw. Encoding is aioice's STUN
codec, as the bridge uses for ICE.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, replace

from aioice import stun

from tertulia.config import Settings, split_host_port

log = logging.getLogger(__name__)

# RFC 8489 §6.2.1: retransmit with RTO doubling from 500 ms. We stop after ATTEMPTS requests
# (0.5 + 1 + 2 s = 3.5 s at most): start-up must not hang on a STUN server that is down.
INITIAL_RTO = 0.5
ATTEMPTS = 3


class StunError(Exception):
    """The STUN server could not tell the public address; the message says why."""


@dataclass(frozen=True, slots=True)
class Mapping:
    ip: str
    port: int
    local_port: int  # the port the request was sent from

    @property
    def port_preserved(self) -> bool:
        """Clients reach the bridge on the port the bridge advertises only if the NAT keeps
        it (1:1 NAT or a port forward of the same number)."""
        return self.port == self.local_port


def binding_request() -> tuple[bytes, bytes]:
    """(datagram, transaction id) of a Binding request (RFC 8489 §5)."""
    message = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    return bytes(message), message.transaction_id


def parse_mapping(data: bytes, transaction_id: bytes) -> tuple[str, int] | None:
    """The mapped address of a success response to `transaction_id`, or None for anything
    else (other traffic, malformed, errors). XOR-MAPPED-ADDRESS (RFC 8489 §14.2), else the
    classic MAPPED-ADDRESS (§14.1) of older servers."""
    try:
        message = stun.parse_message(data)
    except ValueError:
        return None
    if (
        message.transaction_id != transaction_id
        or message.message_method != stun.Method.BINDING
        or message.message_class != stun.Class.RESPONSE
    ):
        return None
    for name in ("XOR-MAPPED-ADDRESS", "MAPPED-ADDRESS"):
        value = message.attributes.get(name)
        if isinstance(value, tuple) and len(value) == 2:
            return str(value[0]), int(value[1])
    return None


class _Client(asyncio.DatagramProtocol):
    def __init__(self, transaction_id: bytes) -> None:
        self.transaction_id = transaction_id
        self.answer: asyncio.Future[tuple[str, int]] = (
            asyncio.get_running_loop().create_future()
        )

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        mapped = parse_mapping(data, self.transaction_id)
        if mapped is not None and not self.answer.done():
            self.answer.set_result(mapped)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable
        log.debug("STUN: %s", exc)


async def discover(
    server: tuple[str, int],
    bind: tuple[str, int],
    *,
    attempts: int = ATTEMPTS,
    initial_rto: float = INITIAL_RTO,
) -> Mapping:
    """Ask `server` which address a datagram from `bind` arrives from."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(server[0], server[1], type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise StunError(f"cannot resolve STUN server {server[0]}: {exc}") from exc
    family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
    target = next((i[4] for i in infos if i[0] == family), None)
    if target is None:
        raise StunError(f"STUN server {server[0]} has no address of the media socket's family")
    data, transaction_id = binding_request()
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Client(transaction_id), local_addr=bind, family=family
        )
    except OSError as exc:
        raise StunError(f"cannot bind {bind[0]}:{bind[1]} to ask STUN: {exc}") from exc
    try:
        local_port = int(transport.get_extra_info("sockname")[1])
        rto = initial_rto
        for _ in range(attempts):
            transport.sendto(data, target)
            try:
                ip, port = await asyncio.wait_for(asyncio.shield(protocol.answer), rto)
            except TimeoutError:
                rto *= 2
                continue
            return Mapping(ip, port, local_port)
    finally:
        transport.close()
        # asyncio closes the socket on the next loop turn; the bridge binds the port next
        await asyncio.sleep(0)
    waited = sum(initial_rto * 2**i for i in range(attempts))
    raise StunError(
        f"STUN server {server[0]}:{server[1]} did not answer {attempts} requests "
        f"within {waited:.1f} s"
    )


async def advertise_discovered(settings: Settings) -> Settings:
    """`settings` with `public_ip` set to the STUN-discovered address when `stun_server` is
    set and `public_ip` is not; on failure, the same settings and a warning (the default
    advertised address is then used)."""
    if not settings.stun_server or settings.public_ip:
        return settings
    server = split_host_port(settings.stun_server, "stun_server")
    try:
        mapping = await discover(server, (settings.media_bind, settings.media_port))
    except StunError as exc:
        log.warning("%s; advertising %s instead (set --public-ip to be sure)", exc,
                    settings.advertised_ip)
        return settings
    log.info("STUN server %s sees the media port as %s:%d", settings.stun_server, mapping.ip,
             mapping.port)
    if not mapping.port_preserved:
        log.warning(
            "the NAT maps media port %d to %d: forward UDP %d to this machine's port %d "
            "so clients reach it", mapping.local_port, mapping.port, mapping.local_port,
            mapping.local_port,
        )
    return replace(settings, public_ip=mapping.ip)
