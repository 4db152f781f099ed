"""SRTP/SRTCP sessions (RFC 3711) for one endpoint, keyed from DTLS (RFC 5764 §4.2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

__all__ = ["SrtpError", "SrtpPair"]

# Replay window (RFC 3711 §3.3.2): wider than the default 128 so reordering on a jittery
# link and NACK retransmissions are not mistaken for replays.
_WINDOW = 1024
# Room pylibsrtp keeps after a packet it protects (libsrtp's SRTP_MAX_TRAILER_LEN).
_MAX_TRAILER = 16 + 128

try:  # the library's own cffi binding: see _RtpCall
    from pylibsrtp import ERRORS as _LIBSRTP_ERRORS
    from pylibsrtp import _binding

    _ffi: Any = _binding.ffi
    _lib: Any = _binding.lib
    _ERRORS: list[str] = list(_LIBSRTP_ERRORS)
except (ImportError, AttributeError):  # pragma: no cover - another pylibsrtp layout
    _ffi = _lib = None
    _ERRORS = []


class _RtpCall:
    """``Session.protect`` / ``Session.unprotect`` for RTP, on the session's own libsrtp
    context and buffer, with the per-call Python work of pylibsrtp taken out (a type check,
    an ``int *`` allocated for every packet): the bridge calls this once per packet it
    receives and once per packet it sends, and that work was a fifth of the call (bench/
    README.md, "Make it fast"). It reads attributes pylibsrtp does not publish, so
    :meth:`make` falls back to the public method whenever they are not there."""

    __slots__ = ("_buffer", "_cdata", "_context", "_func", "_len", "_max", "_session")

    def __init__(self, session: Session, func: Any, trailer: int) -> None:
        self._session = session  # keeps the context alive
        self._context = session._srtp[0]
        self._cdata = session._cdata
        self._buffer = session._buffer
        self._max = len(session._buffer) - trailer
        self._func = func
        self._len = _ffi.new("int *")

    @classmethod
    def make(cls, session: Session, protect: bool) -> Callable[[bytes], bytes] | _RtpCall:
        """The fast call when this pylibsrtp has the expected layout, else the public one."""
        public = session.protect if protect else session.unprotect
        if _lib is None:
            return public
        try:
            if protect:
                return cls(session, _lib.srtp_protect, _MAX_TRAILER)
            return cls(session, _lib.srtp_unprotect, 0)
        except (AttributeError, TypeError, IndexError):  # pragma: no cover
            return public

    def __call__(self, data: bytes, more: bytes = b"") -> bytes:
        """Protect or unprotect ``data + more`` (written to the buffer one after the other)."""
        n = len(data)
        total = n + len(more)
        if total > self._max:
            raise ValueError("packet is too long")
        buffer = self._buffer
        buffer[0:n] = data
        if more:
            buffer[n:total] = more
        length = self._len
        length[0] = total
        rc = self._func(self._context, self._cdata, length)
        if rc:
            raise SrtpError(_ERRORS[rc] if 0 <= rc < len(_ERRORS) else f"libsrtp error {rc}")
        result: bytes = self._buffer[0 : length[0]]
        return result


class SrtpPair:
    """Inbound and outbound SRTP contexts of one endpoint."""

    # RTP, per packet: set in __init__ (see _RtpCall)
    unprotect_rtp: Callable[[bytes], bytes]
    protect_rtp: Callable[[bytes], bytes]
    protect_rtp_parts: Callable[[bytes, bytes], bytes]  # the packet header + payload

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
        self.unprotect_rtp = _RtpCall.make(self._rx, protect=False)
        protect = _RtpCall.make(self._tx, protect=True)
        self.protect_rtp = protect
        if isinstance(protect, _RtpCall):
            self.protect_rtp_parts = protect
        else:  # pragma: no cover - another pylibsrtp layout
            self.protect_rtp_parts = lambda head, payload: protect(head + payload)

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return self._rx.unprotect_rtcp(data)

    def protect_rtcp(self, data: bytes) -> bytes:
        return self._tx.protect_rtcp(data)
