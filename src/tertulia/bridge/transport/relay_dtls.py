"""DTLS-SRTP for a relay between two bridges (bridge/relay_link.py), either role.

The bridge's client endpoints only ever need the server side (transport/dtls.py); a relay's
active bridge is the DTLS client. Once connected, the association also carries the relay's
JSON messages as application data (an SCTP-less data channel: the messages are small, state
is re-sent every second, so no stream protocol is needed).
"""

from __future__ import annotations

import contextlib
import logging

from OpenSSL import SSL

from tertulia.bridge.transport.dtls import (
    DtlsCertificate,
    drain,
    handshake_problem,
    new_connection,
    srtp_keys,
)
from tertulia.bridge.transport.srtp import SrtpPair

log = logging.getLogger(__name__)


class RelayDtls:
    """DTLS-SRTP on a relay, either role, carrying application data once connected."""

    def __init__(self, certificate: DtlsCertificate, remote_fingerprint: str,
                 active: bool) -> None:
        self._conn = new_connection(certificate, active=active)
        self.active = active
        self._remote = remote_fingerprint.upper()
        self.srtp: SrtpPair | None = None
        self.failed: str | None = None

    def _drain(self) -> list[bytes]:
        return drain(self._conn)

    def handshake(self) -> list[bytes]:
        """Advance the handshake (the active side's first call sends the ClientHello)."""
        if self.srtp is not None or self.failed:
            return []
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return self._drain()
        except SSL.Error as exc:
            out = self._drain()
            self.failed = f"handshake error: {exc}"
            return out
        out = self._drain()
        self._finish()
        return out + self._drain()  # a close_notify when the peer's certificate was wrong

    def _finish(self) -> None:
        problem = handshake_problem(self._conn, self._remote)
        if problem is not None:
            self.failed = problem
            if "certificate" in problem:
                with contextlib.suppress(SSL.Error):
                    self._conn.shutdown()  # close_notify: the other side stops using the keys
            return
        keys = srtp_keys(self._conn, active=self.active)
        self.srtp = SrtpPair(keys.rx, keys.tx)

    def feed(self, datagram: bytes) -> tuple[list[bytes], list[bytes]]:
        """One DTLS datagram in: (datagrams to send, application messages received)."""
        if self.failed or not datagram:
            return [], []
        self._conn.bio_write(datagram)
        if self.srtp is None:
            return self.handshake(), []
        messages: list[bytes] = []
        for _ in range(16):  # bounded: a datagram holds a few records at most
            try:
                data = self._conn.recv(16384)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:  # close_notify (RFC 5246 §7.2.1): the peer is done
                self.srtp = None
                self.failed = "closed by the peer"
                break
            except SSL.Error as exc:
                log.debug("relay DTLS record error: %s", exc)
                break
            if not data:
                break
            messages.append(data)
        return self._drain(), messages

    def send(self, message: bytes) -> list[bytes]:
        if self.srtp is None or self.failed:
            return []
        try:
            self._conn.send(message)
        except SSL.Error as exc:
            log.debug("relay DTLS send failed: %s", exc)
        return self._drain()

    def timeout_due(self) -> bool:
        if self.srtp is not None or self.failed:
            return False
        timeout: float | None = self._conn.DTLSv1_get_timeout()
        return timeout is not None and timeout <= 0

    def handle_timeout(self) -> list[bytes]:
        with contextlib.suppress(SSL.Error):
            self._conn.DTLSv1_handle_timeout()
        return self._drain()

    def close(self) -> list[bytes]:
        if self.srtp is None:
            return []
        with contextlib.suppress(SSL.Error):
            self._conn.shutdown()
        self.srtp = None
        return self._drain()
