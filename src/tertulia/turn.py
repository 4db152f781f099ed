"""TURN credentials for clients, per the TURN REST API (draft-uberti-behave-turn-rest-00).

The bridge stays ICE-lite and offers only its own public address; a participant whose network
blocks UDP to it (or allows only outgoing TCP/TLS on 443) reaches it through a TURN server such
as coturn. Tertulia and the TURN server share one secret (coturn: `use-auth-secret` and
`static-auth-secret`); Tertulia hands each participant a credential that expires by itself, so
no user database is needed and a leaked credential is useless after `turn_ttl` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

from tertulia.config import Settings


def credential(secret: str, username: str) -> str:
    """draft-uberti-behave-turn-rest-00 §2.2: password = base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def username(participant: str, ttl: int, now: float) -> str:
    """§2.2: "expiry:user", expiry a UNIX timestamp (seconds) after which the server refuses
    it. The user part only labels the allocation in the TURN server's logs."""
    return f"{int(now) + ttl}:{participant}"


def ice_servers(
    participant: str,
    *,
    urls: tuple[str, ...],
    secret: str,
    ttl: int,
    now: float,
) -> list[dict[str, Any]]:
    """RTCIceServer dictionaries (W3C WebRTC §4.2.1) for one participant: STUN URLs as they
    are, TURN URLs with a fresh time-limited username and credential."""
    servers: list[dict[str, Any]] = []
    stun = [u for u in urls if u.startswith(("stun:", "stuns:"))]
    turn = [u for u in urls if u.startswith(("turn:", "turns:"))]
    if stun:
        servers.append({"urls": stun})
    if turn and secret:
        name = username(participant, ttl, now)
        servers.append({"urls": turn, "username": name, "credential": credential(secret, name)})
    return servers


def provider(
    settings: Settings, clock: Callable[[], float] = time.time
) -> Callable[[str], list[dict[str, Any]]]:
    """participant id -> iceServers for its `welcome` (an empty list without TURN)."""
    urls, secret, ttl = settings.turn_urls, settings.turn_secret, settings.turn_ttl

    def servers(participant: str) -> list[dict[str, Any]]:
        if not urls:
            return []
        return ice_servers(participant, urls=urls, secret=secret, ttl=ttl, now=clock())

    return servers
