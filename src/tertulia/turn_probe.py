"""`tertulia doctor`: is each configured TURN server there, and does it accept our credentials?

Allocates a relay with a credential made exactly as participants get theirs (turn.py), through
aioice's TURN client, then releases it. A wrong `turn_secret` shows up as 401 here instead of
as participants behind firewalls silently getting no media.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass

from aioice import stun, turn

from tertulia.turn import credential, username

TIMEOUT = 5.0  # seconds per server; aioice alone would retry a silent UDP server for ~30 s
_URL = re.compile(
    r"(?P<scheme>turns?):(?P<host>\[[^\]]+\]|[^:?\[\]]+)(:(?P<port>\d+))?"
    r"(\?transport=(?P<transport>udp|tcp))?"
)


class TurnProbeError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TurnUrl:
    host: str
    port: int
    transport: str  # "udp" | "tcp"
    tls: bool

    @classmethod
    def parse(cls, url: str) -> TurnUrl:
        """RFC 7065 §3: default port 3478 (turn) or 5349 (turns), transport udp (turn) or tcp
        (turns)."""
        match = _URL.fullmatch(url)
        if match is None:
            raise TurnProbeError(f"{url!r} is not a turn: or turns: URL")
        tls = match["scheme"] == "turns"
        port = int(match["port"]) if match["port"] else (5349 if tls else 3478)
        transport = match["transport"] or ("tcp" if tls else "udp")
        if tls and transport != "tcp":
            raise TurnProbeError(f"{url!r}: turns: runs over TCP only")
        return cls(match["host"].strip("[]"), port, transport, tls)


async def probe(
    url: str,
    secret: str,
    ttl: int,
    now: float,
    timeout: float = TIMEOUT,
    tls_context: ssl.SSLContext | None = None,
) -> str:
    """Allocate and release a relay on `url`; returns the relayed address as "ip:port".
    turns: URLs verify the server's certificate (the system's CAs unless `tls_context`)."""
    target = TurnUrl.parse(url)
    name = username("tertulia-doctor", ttl, now)
    context = (tls_context or ssl.create_default_context()) if target.tls else None
    try:
        transport, _protocol = await asyncio.wait_for(
            turn.create_turn_endpoint(
                asyncio.DatagramProtocol, (target.host, target.port), username=name,
                password=credential(secret, name), ssl=context, transport=target.transport,
            ),
            timeout,
        )
    except TimeoutError as exc:
        raise TurnProbeError(f"no answer within {timeout:.0f} s") from exc
    except stun.TransactionFailed as exc:
        code = exc.response.attributes.get("ERROR-CODE", (0, ""))[0]
        if code == 401:
            raise TurnProbeError(
                "the server refused our credential (401): turn_secret differs from its "
                "static-auth-secret, or it does not run with use-auth-secret"
            ) from exc
        raise TurnProbeError(str(exc)) from exc
    except stun.TransactionTimeout as exc:
        raise TurnProbeError("no answer") from exc
    except (OSError, ssl.SSLError) as exc:
        raise TurnProbeError(f"cannot connect: {exc}") from exc
    try:
        relayed = transport.get_extra_info("sockname")
    finally:
        transport.close()  # RFC 8656 §7: a Refresh with LIFETIME 0 releases the allocation
    return f"{relayed[0]}:{relayed[1]}" if relayed else "a relay"
