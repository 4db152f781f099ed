"""JWT room tokens: HS256 and RS256, every refusal code, admit() policy, settings checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tertulia.signal.tokens import (
    MAX_TOKEN_BYTES,
    TOKEN_ERROR_CODES,
    Identity,
    TokenError,
    TokenSettings,
    TokenVerifier,
)

NOW = 1_700_000_000.0
SECRET = secrets.token_urlsafe(32)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = RSA_KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()
PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
).decode()


def claims(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": "my-app",
        "aud": "jitsi",
        "sub": "meet.example.com",
        "room": "standup",
        "exp": int(NOW) + 3600,
        "context": {
            "user": {
                "id": "u-42",
                "name": "Ada Lovelace",
                "avatar": "https://example.com/ada.png",
                "email": "ada@example.com",
                "moderator": True,
            }
        },
    }
    base.update(extra)
    return base


def hs256(**extra: Any) -> str:
    return jwt.encode(claims(**extra), SECRET, algorithm="HS256")


def rs256(**extra: Any) -> str:
    return jwt.encode(claims(**extra), PRIVATE_PEM, algorithm="RS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_hs256(header: dict[str, Any], payload: bytes, secret: bytes) -> str:
    """A token built by hand, so its payload can be anything (even invalid JSON claims)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload)}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def verifier(**kw: Any) -> TokenVerifier:
    settings: dict[str, Any] = {"enabled": True, "hs256_secret": SECRET,
                                "rs256_public_key": PUBLIC_PEM}
    settings.update(kw)
    return TokenVerifier(TokenSettings(**settings))


def refused(v: TokenVerifier, token: str, room: str = "standup", now: float = NOW) -> str:
    with pytest.raises(TokenError) as info:
        v.verify(token, room, now)
    assert info.value.message == str(info.value)
    return info.value.code


def test_valid_hs256_and_rs256_tokens_give_the_identity() -> None:
    v = verifier()
    expected = Identity("u-42", "Ada Lovelace", "https://example.com/ada.png",
                        "ada@example.com", True, "standup")
    assert v.verify(hs256(), "standup", NOW) == expected
    assert v.verify(rs256(), "standup", NOW) == expected
    assert verifier(hs256_secret=None).verify(rs256(), "standup", NOW) == expected
    assert verifier(rs256_public_key=None).verify(hs256(), "standup", NOW) == expected


@pytest.mark.parametrize(
    ("user_moderator", "top_level", "expected"),
    [(True, None, True), (False, None, False), ("true", None, True), ("False", None, False),
     (None, True, True), (None, "true", True), (None, None, False), (False, True, False)],
)
def test_moderator_claim(user_moderator: Any, top_level: Any, expected: bool) -> None:
    extra: dict[str, Any] = {"context": {"user": {"name": "Bo"}}}
    if user_moderator is not None:
        extra["context"]["user"]["moderator"] = user_moderator
    if top_level is not None:
        extra["moderator"] = top_level
    identity = verifier().verify(hs256(**extra), "standup", NOW)
    assert identity.moderator is expected
    assert (identity.user_id, identity.name, identity.avatar) == (None, "Bo", None)


def test_minimal_token_without_context() -> None:
    token = jwt.encode({"room": "standup", "exp": NOW + 60}, SECRET, algorithm="HS256")
    assert verifier().verify(token, "standup", NOW) == Identity(
        None, None, None, None, False, "standup")


def test_room_wildcard_and_case_insensitive_match() -> None:
    v = verifier()
    assert v.verify(hs256(room="*"), "anything", NOW).room == "*"
    assert v.verify(hs256(room="StandUp"), "standup", NOW).room == "StandUp"
    assert refused(v, hs256(room="standup"), room="retro") == "token-wrong-room"


def test_alg_none_is_refused() -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    assert refused(verifier(), f"{header}.{payload}.") == "token-algorithm"


def test_unconfigured_and_unknown_algorithms_are_refused() -> None:
    assert refused(verifier(hs256_secret=None), hs256()) == "token-algorithm"
    assert refused(verifier(rs256_public_key=None), rs256()) == "token-algorithm"
    token = raw_hs256({"alg": "HS512", "typ": "JWT"}, json.dumps(claims()).encode(),
                      SECRET.encode())
    assert refused(verifier(), token) == "token-algorithm"
    token = raw_hs256({"typ": "JWT"}, json.dumps(claims()).encode(), SECRET.encode())
    assert refused(verifier(), token) == "token-algorithm"


def test_hs256_signed_with_the_rsa_public_key_is_refused() -> None:
    # The RS256/HS256 confusion attack: PyJWT itself refuses a PEM key as an HMAC secret,
    # so the token is built by hand.
    token = raw_hs256({"alg": "HS256", "typ": "JWT"}, json.dumps(claims()).encode(),
                      PUBLIC_PEM.encode())
    assert refused(verifier(hs256_secret=None), token) == "token-algorithm"
    assert refused(verifier(), token) == "token-signature"


def test_wrong_signature() -> None:
    other = jwt.encode(claims(), secrets.token_urlsafe(32), algorithm="HS256")
    assert refused(verifier(), other) == "token-signature"
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert refused(verifier(), jwt.encode(claims(), other_rsa, algorithm="RS256")) == (
        "token-signature")
    head, payload, sig = hs256().split(".")
    tampered = b64(json.dumps(claims(room="*")).encode())
    assert refused(verifier(), f"{head}.{tampered}.{sig}") == "token-signature"
    assert refused(verifier(), f"{head}.{payload}.") == "token-signature"


def test_expiry_with_leeway() -> None:
    v = verifier(leeway=30.0)
    assert v.verify(hs256(exp=NOW - 29), "standup", NOW).room == "standup"
    assert refused(v, hs256(exp=NOW - 30)) == "token-expired"
    assert refused(v, hs256(exp=NOW - 3600)) == "token-expired"
    assert refused(verifier(leeway=0.0), hs256(exp=NOW)) == "token-expired"


def test_not_before() -> None:
    v = verifier(leeway=30.0)
    assert v.verify(hs256(nbf=NOW + 30), "standup", NOW).room == "standup"
    assert refused(v, hs256(nbf=NOW + 31)) == "token-not-yet-valid"
    assert v.verify(hs256(nbf=NOW + 31), "standup", NOW + 1).room == "standup"


def test_issuer_and_audience_when_configured() -> None:
    v = verifier(issuer="my-app", audience="jitsi")
    assert v.verify(hs256(), "standup", NOW).user_id == "u-42"
    assert v.verify(hs256(aud=["other", "jitsi"]), "standup", NOW).user_id == "u-42"
    assert refused(v, hs256(iss="evil")) == "token-issuer"
    numeric_iss = json.dumps(claims(iss=7)).encode()
    assert refused(v, raw_hs256({"alg": "HS256"}, numeric_iss, SECRET.encode())) == (
        "token-issuer")
    assert refused(v, hs256(aud="other")) == "token-audience"
    no_iss = claims()
    del no_iss["iss"]
    assert refused(v, jwt.encode(no_iss, SECRET, algorithm="HS256")) == "token-issuer"
    no_aud = claims()
    del no_aud["aud"]
    assert refused(v, jwt.encode(no_aud, SECRET, algorithm="HS256")) == "token-audience"
    # Not configured: not checked.
    assert verifier().verify(hs256(iss="evil", aud="other"), "standup", NOW).user_id == "u-42"


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", "a.b", "....", "\x00\x01", "é.é.é", "eyJ.eyJ.eyJ",
     b64(b"[1,2]") + ".e30.", b64(b'{"alg":"HS256"}') + ".!!!!.sig"],
)
def test_garbage_is_malformed(token: str) -> None:
    assert refused(verifier(), token) == "token-malformed"


def test_oversized_token_is_malformed() -> None:
    big = hs256(pad="x" * MAX_TOKEN_BYTES)
    with pytest.raises(TokenError, match="too large") as info:
        verifier().verify(big, "standup", NOW)
    assert info.value.code == "token-malformed"
    assert refused(verifier(), "a" * 10_000_000) == "token-malformed"


@pytest.mark.parametrize(
    "payload",
    [b"[1, 2]", b'"claims"', b"42", b"null", b"not json",
     json.dumps(claims(exp="tomorrow")).encode(),
     json.dumps(claims(exp=True)).encode(),
     json.dumps(claims(nbf=[1])).encode(),
     json.dumps({k: v for k, v in claims().items() if k != "exp"}).encode(),
     json.dumps({k: v for k, v in claims().items() if k != "room"}).encode(),
     json.dumps(claims(room=5)).encode(),
     json.dumps(claims(context="admin")).encode(),
     json.dumps(claims(context={"user": ["x"]})).encode(),
     json.dumps(claims(context={"user": {"name": 5}})).encode(),
     json.dumps(claims(context={"user": {"moderator": "yes"}})).encode(),
     json.dumps(claims(moderator=1, context={"user": {"name": "Bo"}})).encode(),
     b'{"room": "standup", "exp": Infinity}',
     b'{"room": "standup", "exp": NaN}',
     b'{"room": "standup", "exp": 1e400}',
     b'{"room": "standup", "exp": ' + b"9" * 5000 + b"}",
     b'{"room": "standup", "exp": 99999999999, "nbf": NaN}'],
)
def test_wrong_claim_types_are_malformed(payload: bytes) -> None:
    token = raw_hs256({"alg": "HS256", "typ": "JWT"}, payload, SECRET.encode())
    assert refused(verifier(), token) == "token-malformed"


def test_huge_integer_exp_does_not_overflow() -> None:
    payload = b'{"room": "standup", "exp": 1' + b"0" * 400 + b"}"
    token = raw_hs256({"alg": "HS256"}, payload, SECRET.encode())
    assert verifier().verify(token, "standup", NOW).room == "standup"


def test_admit_when_disabled_ignores_tokens() -> None:
    v = TokenVerifier(TokenSettings())
    assert v.admit(None, "standup", NOW) is None
    assert v.admit("garbage", "standup", NOW) is None
    assert v.admit(hs256(), "standup", NOW) is None


def test_admit_enabled_with_anonymous_guests() -> None:
    v = verifier(allow_anonymous=True)
    assert v.admit(None, "standup", NOW) is None
    assert v.admit("", "standup", NOW) is None
    identity = v.admit(hs256(), "standup", NOW)
    assert identity is not None and identity.moderator
    with pytest.raises(TokenError) as info:
        v.admit(hs256(exp=NOW - 3600), "standup", NOW)
    assert info.value.code == "token-expired"


def test_admit_enabled_without_anonymous_guests() -> None:
    v = verifier(allow_anonymous=False)
    for missing in (None, ""):
        with pytest.raises(TokenError) as info:
            v.admit(missing, "standup", NOW)
        assert info.value.code == "token-required"
        assert info.value.message == TOKEN_ERROR_CODES["token-required"]
    assert v.admit(rs256(), "standup", NOW) is not None


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="neither"):
        TokenVerifier(TokenSettings(enabled=True))
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenVerifier(TokenSettings(enabled=True, hs256_secret="short"))
    with pytest.raises(ValueError, match="PEM key"):
        TokenVerifier(TokenSettings(enabled=True, hs256_secret=PUBLIC_PEM))
    with pytest.raises(ValueError, match="not a PEM public key"):
        TokenVerifier(TokenSettings(enabled=True, rs256_public_key="not a key"))
    with pytest.raises(ValueError, match="not a PEM public key"):
        TokenVerifier(TokenSettings(enabled=True, rs256_public_key=PRIVATE_PEM))
    ec_pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(ValueError, match="not an RSA key"):
        TokenVerifier(TokenSettings(enabled=True, rs256_public_key=ec_pem))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    small_pem = small.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(ValueError, match="2048 bits"):
        TokenVerifier(TokenSettings(enabled=True, rs256_public_key=small_pem))
    for leeway in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="leeway"):
            TokenVerifier(TokenSettings(leeway=leeway))
    TokenVerifier(TokenSettings())  # disabled without keys is fine


def test_settings_from_config_reads_the_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "public.pem"
    key_file.write_text(PUBLIC_PEM)
    settings = TokenSettings.from_config(rs256_public_key_file=key_file, hs256_secret="",
                                         issuer="", audience="jitsi", allow_anonymous=False)
    assert settings == TokenSettings(enabled=True, allow_anonymous=False,
                                     rs256_public_key=PUBLIC_PEM, audience="jitsi")
    assert TokenSettings.from_config(rs256_public_key_file="", hs256_secret="") == (
        TokenSettings())
    assert TokenSettings.from_config(hs256_secret=SECRET).enabled


def test_error_codes_and_messages() -> None:
    assert set(TOKEN_ERROR_CODES) == {
        "token-required", "token-malformed", "token-algorithm", "token-signature",
        "token-expired", "token-not-yet-valid", "token-wrong-room", "token-issuer",
        "token-audience"}
    assert TOKEN_ERROR_CODES["token-required"] == (
        "this server only admits participants with a token")
    error = TokenError("token-expired")
    assert (error.code, error.message, str(error)) == (
        "token-expired", "the token has expired", "the token has expired")
    with pytest.raises(ValueError):
        TokenError("no-such-code")
