"""The endpoint's SRTP pair against pylibsrtp's public API (RFC 3711)."""

from __future__ import annotations

import os

import pytest
from pylibsrtp import Policy, Session

from tertulia.bridge.transport.srtp import SrtpError, SrtpPair, _RtpCall


def rtp(seq: int, size: int = 200) -> bytes:
    payload = bytes(x & 0xFF for x in range(size))
    return bytes([0x80, 96]) + seq.to_bytes(2, "big") + bytes(8) + payload


def test_rtp_calls_match_the_public_api_and_refuse_bad_packets() -> None:
    rx_key, tx_key = os.urandom(30), os.urandom(30)
    pair = SrtpPair(rx_key, tx_key)
    assert isinstance(pair.protect_rtp, _RtpCall) and isinstance(pair.unprotect_rtp, _RtpCall)
    # what the bridge sends is what pylibsrtp's own protect makes with the same key
    reference = Session(Policy(key=tx_key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    peer_rx = Session(Policy(key=tx_key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    for seq in range(5):
        sent = pair.protect_rtp(rtp(seq))
        assert sent == reference.protect(rtp(seq))
        assert peer_rx.unprotect(sent) == rtp(seq)
    # a header and payload given apart are protected as the one packet they make
    head, payload = rtp(5)[:12], rtp(5)[12:]
    assert pair.protect_rtp_parts(head, payload) == reference.protect(rtp(5))
    # what the peer sends comes back as plaintext; tampered and replayed packets are refused
    peer_tx = Session(Policy(key=rx_key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    first = peer_tx.protect(rtp(1))
    assert pair.unprotect_rtp(first) == rtp(1)
    with pytest.raises(SrtpError):
        pair.unprotect_rtp(first)  # replay (RFC 3711 §3.3.2)
    tampered = bytearray(peer_tx.protect(rtp(2)))
    tampered[20] ^= 1
    with pytest.raises(SrtpError):
        pair.unprotect_rtp(bytes(tampered))  # authentication (RFC 3711 §3.4)
    assert pair.unprotect_rtp(peer_tx.protect(rtp(3))) == rtp(3)
    with pytest.raises(ValueError, match="too long"):
        pair.protect_rtp(rtp(4, size=1500))
