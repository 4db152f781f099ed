"""ICE-lite responder (RFC 8445 §2.5) with consent freshness (RFC 7675).

The bridge never sends checks of its own: it answers the client's connectivity checks on its
one host candidate, learns the client's address from them and treats each valid check as
consent. STUN encoding is aioice's codec.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass

from aioice import stun

_ALPHABET = string.ascii_letters + string.digits + "+/"


def random_ice_string(length: int) -> str:
    """ICE ufrag/pwd characters (RFC 8839 §5.4: ice-char = ALPHA / DIGIT / "+" / "/")."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(slots=True)
class IceCredentials:
    """Local (bridge) and remote (client) credentials of one endpoint."""

    local_ufrag: str
    local_pwd: str
    remote_ufrag: str
    remote_pwd: str

    @classmethod
    def generate(cls, remote_ufrag: str, remote_pwd: str) -> IceCredentials:
        # RFC 8445 §5.3: ufrag at least 24 bits, pwd at least 128 bits of randomness.
        return cls(random_ice_string(8), random_ice_string(24), remote_ufrag, remote_pwd)


@dataclass(slots=True)
class CheckResult:
    """Outcome of one incoming STUN datagram."""

    response: bytes | None
    local_ufrag: str | None = None
    nominated: bool = False
    error: str | None = None


def username_local_ufrag(message: stun.Message) -> str | None:
    """The bridge's ufrag from USERNAME ``<our ufrag>:<their ufrag>`` (RFC 8445 §7.2.2)."""
    username = message.attributes.get("USERNAME")
    if not isinstance(username, str) or ":" not in username:
        return None
    return username.split(":", 1)[0]


def parse(data: bytes) -> stun.Message:
    """Parse a STUN message; raises ValueError on anything malformed (FINGERPRINT included)."""
    try:
        return stun.parse_message(data)
    except (ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"malformed STUN: {exc}") from exc
    except Exception as exc:  # struct.error, UnicodeDecodeError from attribute decoders
        raise ValueError(f"malformed STUN: {exc}") from exc


def answer_check(
    message: stun.Message, creds: IceCredentials, addr: tuple[str, int]
) -> CheckResult:
    """Validate a Binding request against ``creds`` and build the success response.

    RFC 8445 §7.3: the request must carry USERNAME ``local:remote`` and MESSAGE-INTEGRITY keyed
    with the local password. RFC 8445 §7.3.1.5: USE-CANDIDATE from the controlling agent
    nominates the pair. The response carries XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY and
    FINGERPRINT (RFC 8489 §14.2, §14.5, §14.7).
    """
    if message.message_method != stun.Method.BINDING:
        return CheckResult(None, error="not a binding")
    if message.message_class != stun.Class.REQUEST:
        return CheckResult(None, error="not a request")
    username = message.attributes.get("USERNAME")
    if username != f"{creds.local_ufrag}:{creds.remote_ufrag}":
        return CheckResult(None, error="username mismatch")
    if not message.check_message_integrity(creds.local_pwd.encode()):
        return CheckResult(None, error="bad message integrity")
    if "ICE-CONTROLLED" in message.attributes and "ICE-CONTROLLING" not in message.attributes:
        # A lite agent is always controlled (RFC 8445 §6.1.1); a peer that also claims to be
        # controlled gets 487 Role Conflict (RFC 8445 §7.3.1.1).
        err = stun.Message(
            message_method=stun.Method.BINDING,
            message_class=stun.Class.ERROR,
            transaction_id=message.transaction_id,
        )
        err.attributes["ERROR-CODE"] = (487, "Role Conflict")
        err.add_message_integrity(creds.local_pwd.encode())
        return CheckResult(bytes(err), creds.local_ufrag, error="role conflict")
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.RESPONSE,
        transaction_id=message.transaction_id,
    )
    response.attributes["XOR-MAPPED-ADDRESS"] = addr
    response.add_message_integrity(creds.local_pwd.encode())
    return CheckResult(
        bytes(response), creds.local_ufrag, nominated="USE-CANDIDATE" in message.attributes
    )
