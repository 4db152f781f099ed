"""STUN Binding responses parsed into the public mapping; a silent server is a clear error."""

from __future__ import annotations

import socket
import time

import pytest
from aioice import stun

from tertulia.stun_discovery import Mapping, StunError, binding_request, discover, parse_mapping


def response(transaction_id: bytes, **attributes: object) -> bytes:
    message = stun.Message(
        message_method=stun.Method.BINDING, message_class=stun.Class.RESPONSE,
        transaction_id=transaction_id, attributes=dict(attributes),
    )
    return bytes(message)


def test_request_is_a_binding_request() -> None:
    data, transaction_id = binding_request()
    message = stun.parse_message(data)
    assert message.message_method == stun.Method.BINDING
    assert message.message_class == stun.Class.REQUEST
    assert message.transaction_id == transaction_id and len(transaction_id) == 12


def test_xor_mapped_address_then_mapped_address() -> None:
    _, tid = binding_request()
    mapped = response(tid, **{"XOR-MAPPED-ADDRESS": ("203.0.113.7", 40000)})
    assert parse_mapping(mapped, tid) == ("203.0.113.7", 40000)
    classic = response(tid, **{"MAPPED-ADDRESS": ("198.51.100.2", 10000)})
    assert parse_mapping(classic, tid) == ("198.51.100.2", 10000)


def test_other_datagrams_are_ignored() -> None:
    _, tid = binding_request()
    _, other = binding_request()
    assert parse_mapping(response(other, **{"XOR-MAPPED-ADDRESS": ("1.2.3.4", 1)}), tid) is None
    assert parse_mapping(response(tid), tid) is None  # no address attribute
    assert parse_mapping(b"\x17\xfe\xfd garbage", tid) is None
    assert parse_mapping(binding_request()[0], tid) is None  # a request, not a response


def test_mapping_port_preserved() -> None:
    assert Mapping("203.0.113.7", 10000, 10000).port_preserved
    assert not Mapping("203.0.113.7", 40000, 10000).port_preserved


async def test_a_silent_server_is_a_clear_bounded_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # receives, never answers
        t0 = time.monotonic()
        with pytest.raises(StunError, match=r"did not answer 3 requests within 0\.7 s"):
            await discover(silent.getsockname(), ("127.0.0.1", 0), initial_rto=0.1)
        assert time.monotonic() - t0 < 5
        # All three requests really went out.
        silent.settimeout(0.1)
        assert len([silent.recv(2048) for _ in range(3)]) == 3
