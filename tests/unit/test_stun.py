"""STUN codec (aioice) against the RFC 5769 §2.1 sample request, and an ICE-lite response.

aioice changed its API: up to 0.9 ``parse_message(data, integrity_key=...)`` verified
MESSAGE-INTEGRITY and raised ValueError; newer releases (0.10+, installed here: 0.13) take only
``data`` and verify with ``Message.check_message_integrity(key)``.  ``_parse_checked`` raises
ValueError on a bad key under either API.
"""

from __future__ import annotations

import inspect
import struct

import pytest
from aioice import stun

PASSWORD = b"VOkJxbRl1RmTxUk/WvJxBt"

# RFC 5769 §2.1 "Sample Request"
RFC5769_REQUEST = bytes.fromhex(
    "00010058 2112a442 b7e7a701 bc34d686 fa87dfae"  # header: Binding request, length 88
    "80220010 5354554e 20746573 7420636c 69656e74"  # SOFTWARE "STUN test client"
    "00240004 6e0001ff"  # PRIORITY
    "80290008 932ff9b1 51263b36"  # ICE-CONTROLLED
    "00060009 6576746a 3a683676 59202020"  # USERNAME "evtj:h6vY" + padding
    "00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2"  # MESSAGE-INTEGRITY
    "80280004 e57a3bcf"  # FINGERPRINT
)


def _parse_checked(data: bytes, key: bytes) -> stun.Message:
    if "integrity_key" in inspect.signature(stun.parse_message).parameters:
        return stun.parse_message(data, integrity_key=key)  # type: ignore[call-arg]
    message = stun.parse_message(data)
    if not message.check_message_integrity(key):
        raise ValueError("STUN message integrity does not match")
    return message


def test_rfc5769_sample_request() -> None:
    assert len(RFC5769_REQUEST) == 20 + 0x58
    msg = _parse_checked(RFC5769_REQUEST, PASSWORD)
    assert msg.message_method == stun.Method.BINDING
    assert msg.message_class == stun.Class.REQUEST
    assert msg.transaction_id == bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert msg.attributes["USERNAME"] == "evtj:h6vY"
    assert msg.attributes["PRIORITY"] == 0x6E0001FF
    assert msg.attributes["ICE-CONTROLLED"] == 0x932FF9B151263B36
    assert msg.attributes["SOFTWARE"] == "STUN test client"
    assert msg.attributes["FINGERPRINT"] == 0xE57A3BCF
    assert msg.attributes["MESSAGE-INTEGRITY"] == bytes.fromhex(
        "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    )


def test_rfc5769_wrong_key_rejected() -> None:
    with pytest.raises(ValueError):
        _parse_checked(RFC5769_REQUEST, b"wrong password")


def test_rfc5769_corrupted_fingerprint_rejected() -> None:
    bad = bytearray(RFC5769_REQUEST)
    bad[-1] ^= 1
    with pytest.raises(ValueError):
        stun.parse_message(bytes(bad))


def test_ice_lite_binding_response() -> None:
    request = _parse_checked(RFC5769_REQUEST, PASSWORD)
    # what an ICE-lite agent answers (RFC 8445 §7.3, RFC 8489 §14.2): same transaction ID,
    # XOR-MAPPED-ADDRESS of the request's source, then MESSAGE-INTEGRITY and FINGERPRINT,
    # keyed with the local (answering agent's) password.
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.RESPONSE,
        transaction_id=request.transaction_id,
    )
    response.attributes["XOR-MAPPED-ADDRESS"] = ("192.0.2.1", 32853)
    response.add_message_integrity(PASSWORD)
    response.add_fingerprint()
    data = bytes(response)
    assert struct.unpack_from("!HH", data) == (0x0101, len(data) - 20)
    assert list(response.attributes) == ["XOR-MAPPED-ADDRESS", "MESSAGE-INTEGRITY", "FINGERPRINT"]
    # RFC 5769 §2.2 uses this address: XOR'ed port is 0xa147, address e1 12 a6 43
    assert data[20:32] == bytes.fromhex("00200008 0001a147 e112a643")
    back = _parse_checked(data, PASSWORD)
    assert back.message_class == stun.Class.RESPONSE
    assert back.transaction_id == request.transaction_id
    assert back.attributes["XOR-MAPPED-ADDRESS"] == ("192.0.2.1", 32853)
    with pytest.raises(ValueError):
        _parse_checked(data, b"other")


def test_ipv6_xor_mapped_address_round_trip() -> None:
    response = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, b"\x01" * 12)
    response.attributes["XOR-MAPPED-ADDRESS"] = ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
    response.add_message_integrity(PASSWORD)
    back = _parse_checked(bytes(response), PASSWORD)
    assert back.attributes["XOR-MAPPED-ADDRESS"] == ("2001:db8:1234:5678:11:2233:4455:6677", 32853)
