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
    DTLS_MTU,
    SRTP_KEY_LEN,
    SRTP_PROFILE,
    SRTP_SALT_LEN,
    DtlsCertificate,
    certificate_fingerprint,
    pack_datagrams,
    split_records,
)
from tertulia.bridge.transport.srtp import SrtpPair

log = logging.getLogger(__name__)


class RelayDtls:
    """DTLS-SRTP on a relay, either role, carrying application data once connected."""

    def __init__(self, certificate: DtlsCertificate, remote_fingerprint: str,
                 active: bool) -> None:
        self._conn = SSL.Connection(certificate.context(), None)
        if active:
            self._conn.set_connect_state()
        else:
            self._conn.set_accept_state()
        self._conn.set_ciphertext_mtu(DTLS_MTU)
        self.active = active
        self._remote = remote_fingerprint.upper()
        self.srtp: SrtpPair | None = None
        self.failed: str | None = None

    def _drain(self) -> list[bytes]:
        out = b""
        while True:
            try:
                chunk = self._conn.bio_read(65536)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            out += chunk
        return pack_datagrams(split_records(out)) if out else []

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
        cert = self._conn.get_peer_certificate(as_cryptography=True)
        if cert is None or certificate_fingerprint(cert) != self._remote:
            self.failed = "the peer's certificate does not match the signalled fingerprint"
            with contextlib.suppress(SSL.Error):
                self._conn.shutdown()  # close_notify: the other side stops using the keys
            return
        if self._conn.get_selected_srtp_profile() != SRTP_PROFILE:
            self.failed = "no SRTP profile negotiated"
            return
        # RFC 5764 §4.2: client key, server key, client salt, server salt.
        k, s = SRTP_KEY_LEN, SRTP_SALT_LEN
        m = self._conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (k + s))
        client, server = m[:k] + m[2 * k : 2 * k + s], m[k : 2 * k] + m[2 * k + s :]
        self.srtp = SrtpPair(server, client) if self.active else SrtpPair(client, server)

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
