"""Control API credentials: short-lived HS256 bearer tokens signed with ``control_secret``.

A shard signs ``{"iss": shard id, "aud": "tertulia-control", "iat", "exp": now + 60 s}``; the
bridge checks the signature (PyJWT compares the MAC in constant time, ``hmac.compare_digest``),
the audience and the expiry. PyJWT rather than a hand-written MAC: it is already a dependency
(room tokens) and gets the comparisons and clock-skew handling right.
"""

from __future__ import annotations

import time

import jwt

AUDIENCE = "tertulia-control"
TOKEN_LIFETIME = 60.0  # seconds; one token opens one control connection
LEEWAY = 5.0  # seconds of clock skew tolerated between shard and bridge
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash


class ControlAuthError(Exception):
    pass


def make_token(secret: str, issuer: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims = {"iss": issuer, "aud": AUDIENCE, "iat": issued, "exp": issued + int(TOKEN_LIFETIME)}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_header(secret: str, header: str | None, now: float | None = None) -> str:
    """The issuer of a valid ``Authorization: Bearer …`` header; raises ControlAuthError."""
    if not header or not header.startswith("Bearer "):
        raise ControlAuthError("missing bearer token")
    token = header[len("Bearer "):].strip()
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], audience=AUDIENCE, leeway=LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud"], "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise ControlAuthError(f"bad bearer token: {exc}") from exc
    issued = claims.get("iat")
    if not isinstance(issued, int | float):
        raise ControlAuthError("bad bearer token: iat")
    current = time.time() if now is None else now
    if issued > current + LEEWAY or claims["exp"] - issued > TOKEN_LIFETIME + LEEWAY:
        raise ControlAuthError("bad bearer token: lifetime too long or issued in the future")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise ControlAuthError("bad bearer token: iss")
    return issuer
