"""SRTP/SRTCP sessions (RFC 3711) for one endpoint, keyed from DTLS (RFC 5764 §4.2)."""

from __future__ import annotations

from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

__all__ = ["SrtpError", "SrtpPair"]

# Replay window (RFC 3711 §3.3.2): wider than the default 128 so reordering on a jittery
# link and NACK retransmissions are not mistaken for replays.
_WINDOW = 1024


class SrtpPair:
    """Inbound and outbound SRTP contexts of one endpoint."""

    def __init__(self, rx_key: bytes, tx_key: bytes) -> None:
        rx = Policy(
            key=rx_key,
            ssrc_type=Policy.SSRC_ANY_INBOUND,
            srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        )
        rx.window_size = _WINDOW
        tx = Policy(
            key=tx_key,
            ssrc_type=Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        )
        tx.window_size = _WINDOW
        # Retransmissions resend the same sequence number (RFC 4585 NACK without RTX).
        tx.allow_repeat_tx = True
        self._rx = Session(policy=rx)
        self._tx = Session(policy=tx)

    def unprotect_rtp(self, data: bytes) -> bytes:
        return self._rx.unprotect(data)

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return self._rx.unprotect_rtcp(data)

    def protect_rtp(self, data: bytes) -> bytes:
        return self._tx.protect(data)

    def protect_rtcp(self, data: bytes) -> bytes:
        return self._tx.protect_rtcp(data)
