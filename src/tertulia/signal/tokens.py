"""Optional JWT room tokens, in the spirit of Jitsi's token authentication.

A token is a compact JWT (RFC 7519) signed HS256 (shared secret) or RS256 (RSA public key).
Claims read: ``iss`` (checked when an issuer is configured), ``aud`` (checked when an audience
is configured), ``room`` (a room name, or ``"*"`` for any room), ``exp`` (required), ``nbf``
(optional) and ``context.user.{id, name, avatar, email, moderator}``; a top-level
``moderator`` claim is the fallback. ``sub`` is ignored.

Pure: the time is passed in; the only I/O is :meth:`TokenSettings.from_config` reading a key
file. :meth:`TokenVerifier.verify` raises nothing but :class:`TokenError` for any input.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import HMACAlgorithm

TOKEN_ERROR_CODES: dict[str, str] = {
    "token-required": "this server only admits participants with a token",
    "token-malformed": "the token is not a well-formed room token",
    "token-algorithm": "the token is signed with an algorithm this server does not accept",
    "token-signature": "the token's signature is not valid",
    "token-expired": "the token has expired",
    "token-not-yet-valid": "the token is not valid yet",
    "token-wrong-room": "the token is not valid for this room",
    "token-issuer": "the token was not issued by an issuer this server accepts",
    "token-audience": "the token is not meant for this server",
}

# Larger tokens are refused unread (a Jitsi token is well under 2 KiB).
MAX_TOKEN_BYTES = 8 * 1024
# RFC 7518 §3.2: an HS256 key MUST be at least as long as the hash output (256 bits);
# §3.3: an RS256 key MUST be 2048 bits or larger.
MIN_SECRET_BYTES = 32
MIN_RSA_BITS = 2048


class TokenError(Exception):
    """A token was refused. ``code`` is a key of TOKEN_ERROR_CODES; ``message`` is for people."""

    def __init__(self, code: str, message: str | None = None) -> None:
        if code not in TOKEN_ERROR_CODES:
            raise ValueError(f"unknown token error code {code!r}")
        self.code = code
        self.message = message or TOKEN_ERROR_CODES[code]
        super().__init__(self.message)


@dataclass(frozen=True, slots=True)
class TokenSettings:
    enabled: bool = False
    # When enabled: may people without a token join (as guests)?
    allow_anonymous: bool = True
    hs256_secret: str | None = None
    rs256_public_key: str | None = None  # PEM text
    issuer: str | None = None
    audience: str | None = None
    leeway: float = 30.0  # allowed clock skew, seconds

    @classmethod
    def from_config(
        cls,
        *,
        hs256_secret: str | None = None,
        rs256_public_key_file: str | os.PathLike[str] | None = None,
        allow_anonymous: bool = True,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 30.0,
    ) -> TokenSettings:
        """Settings from configuration values (empty strings mean unset), reading the public
        key file; tokens are enabled when a secret or a key file is given."""
        public_key = Path(rs256_public_key_file).read_text() if rs256_public_key_file else None
        return cls(
            enabled=bool(hs256_secret or public_key),
            allow_anonymous=allow_anonymous,
            hs256_secret=hs256_secret or None,
            rs256_public_key=public_key,
            issuer=issuer or None,
            audience=audience or None,
            leeway=leeway,
        )


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str | None
    name: str | None
    avatar: str | None
    email: str | None
    moderator: bool
    room: str  # the token's room claim; "*" means any room


class TokenVerifier:
    def __init__(self, settings: TokenSettings) -> None:
        """Check the settings; raises ValueError when they cannot work."""
        if not math.isfinite(settings.leeway) or settings.leeway < 0:
            raise ValueError("token leeway must be a non-negative number of seconds")
        self.settings = settings
        self._keys: dict[str, str | RSAPublicKey] = {}
        secret = settings.hs256_secret
        if secret is not None:
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise ValueError(f"the HS256 secret must be at least {MIN_SECRET_BYTES} bytes")
            try:
                HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)
            except jwt.InvalidKeyError:
                raise ValueError("the HS256 secret must not be a PEM key") from None
            self._keys["HS256"] = secret
        if settings.rs256_public_key is not None:
            try:
                key = load_pem_public_key(settings.rs256_public_key.encode())
            except (ValueError, TypeError) as exc:
                raise ValueError(f"the RS256 public key is not a PEM public key: {exc}") from None
            if not isinstance(key, RSAPublicKey):
                raise ValueError("the RS256 public key is not an RSA key")
            if key.key_size < MIN_RSA_BITS:
                raise ValueError(f"the RS256 public key must be at least {MIN_RSA_BITS} bits")
            self._keys["RS256"] = key
        if settings.enabled and not self._keys:
            raise ValueError("tokens are enabled but neither an HS256 secret nor an RS256 "
                             "public key is configured")

    def admit(self, token: str | None, room: str, now: float) -> Identity | None:
        """The identity a join to ``room`` carries, or None for an anonymous guest.

        With tokens disabled any token is ignored. With tokens enabled a given token must be
        valid; a missing one is refused (``token-required``) unless anonymous guests are
        allowed."""
        if not self.settings.enabled:
            return None
        if not token:
            if self.settings.allow_anonymous:
                return None
            raise TokenError("token-required")
        return self.verify(token, room, now)

    def verify(self, token: str, room: str, now: float) -> Identity:
        """Check ``token`` for joining ``room`` (lower-cased) at time ``now`` (Unix seconds)."""
        try:
            return self._verify(token, room, now)
        except TokenError:
            raise
        except jwt.PyJWTError as exc:
            raise _map_error(exc) from None
        except Exception:  # attacker-controlled input: nothing else may escape
            raise TokenError("token-malformed") from None

    def _verify(self, token: str, room: str, now: float) -> Identity:
        if not isinstance(token, str):
            raise TokenError("token-malformed")
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError("token-malformed", "the token is too large")
        if not token.isascii():
            raise TokenError("token-malformed")
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._keys:
            raise TokenError("token-algorithm")
        issuer, audience = self.settings.issuer, self.settings.audience
        claims: Any = jwt.decode(
            token,
            self._keys[alg],
            algorithms=[alg],
            issuer=issuer,
            audience=audience,
            # exp and nbf are checked below against the injected clock.
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_iss": issuer is not None,
                "verify_aud": audience is not None,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
        if not isinstance(claims, dict):
            raise TokenError("token-malformed")
        leeway = self.settings.leeway
        # RFC 7519 §4.1.4: the token MUST NOT be accepted on or after its expiration time.
        exp = _number(claims, "exp")
        if exp is None:
            raise TokenError("token-malformed", "the token has no expiration time (exp)")
        if exp <= now - leeway:
            raise TokenError("token-expired")
        # RFC 7519 §4.1.5: the token MUST NOT be accepted before its not-before time.
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf > now + leeway:
            raise TokenError("token-not-yet-valid")
        room_claim = claims.get("room")
        if not isinstance(room_claim, str) or not room_claim:
            raise TokenError("token-malformed", "the token has no room claim")
        if room_claim != "*" and room_claim.lower() != room.lower():
            raise TokenError("token-wrong-room")
        context = _mapping(claims, "context")
        user = _mapping(context, "user")
        moderator = _flag(user, "moderator")
        if moderator is None:
            moderator = _flag(claims, "moderator")
        return Identity(
            user_id=_text(user, "id"),
            name=_text(user, "name"),
            avatar=_text(user, "avatar"),
            email=_text(user, "email"),
            moderator=bool(moderator),
            room=room_claim,
        )


def _map_error(exc: jwt.PyJWTError) -> TokenError:
    """The TokenError for an exception PyJWT raised while decoding."""
    if isinstance(exc, jwt.InvalidSignatureError):
        return TokenError("token-signature")
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return TokenError("token-algorithm")
    if isinstance(exc, jwt.InvalidIssuerError):
        return TokenError("token-issuer")
    if isinstance(exc, jwt.InvalidAudienceError):
        return TokenError("token-audience")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        if exc.claim == "iss":
            return TokenError("token-issuer")
        if exc.claim == "aud":
            return TokenError("token-audience")
    if isinstance(exc, jwt.ExpiredSignatureError):
        return TokenError("token-expired")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return TokenError("token-not-yet-valid")
    return TokenError("token-malformed")


def _mapping(claims: dict[str, Any], name: str) -> dict[str, Any]:
    value = claims.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TokenError("token-malformed", f"the token's {name!r} claim must be an object")
    return value


def _number(claims: dict[str, Any], name: str) -> float | int | None:
    """A NumericDate claim (RFC 7519 §2); json accepts NaN and Infinity, which are refused."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError("token-malformed", f"the token's {name!r} claim must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise TokenError("token-malformed", f"the token's {name!r} claim must be finite")
    return value


def _text(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None or isinstance(value, str):
        return value
    raise TokenError("token-malformed", f"the token's {name!r} claim must be a string")


def _flag(claims: dict[str, Any], name: str) -> bool | None:
    """A boolean claim; Jitsi tokens also carry "true"/"false" strings."""
    value = claims.get(name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TokenError("token-malformed", f"the token's {name!r} claim must be true or false")
