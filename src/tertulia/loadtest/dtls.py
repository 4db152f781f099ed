"""DTLS-SRTP client side (RFC 5764) with pyOpenSSL memory BIOs.

The counterpart of the bridge's passive ``DtlsServer``: it shares that module's certificate
and context setup, record splitting and datagram packing, and adds only what the active side
does differently (sends the ClientHello, checks the *server's* fingerprint, takes the server's
key for what it receives).
"""

from __future__ import annotations

from OpenSSL import SSL

from tertulia.bridge.transport.dtls import (
    DTLS_MTU,
    SRTP_KEY_LEN,
    SRTP_PROFILE,
    SRTP_SALT_LEN,
    DtlsCertificate,
    SrtpKeys,
    certificate_fingerprint,
    pack_datagrams,
    split_records,
)


class DtlsError(Exception):
    pass


class DtlsClient:
    def __init__(self, certificate: DtlsCertificate, remote_fingerprint: str) -> None:
        self._conn = SSL.Connection(certificate.context(), None)
        self._conn.set_connect_state()
        self._conn.set_ciphertext_mtu(DTLS_MTU)
        self._remote = remote_fingerprint.upper()
        self.keys: SrtpKeys | None = None

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

    def _step(self) -> list[bytes]:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return self._drain()
        except SSL.Error as exc:
            raise DtlsError(f"handshake failed: {exc}") from exc
        out = self._drain()
        self._finish()
        return out

    def start(self) -> list[bytes]:
        """The ClientHello flight."""
        return self._step()

    def feed(self, datagram: bytes) -> list[bytes]:
        if self.keys is not None:
            return []  # retransmitted server flights after the handshake need no answer
        self._conn.bio_write(datagram)
        return self._step()

    def timeout(self) -> float | None:
        if self.keys is not None:
            return None
        result: float | None = self._conn.DTLSv1_get_timeout()
        return result

    def handle_timeout(self) -> list[bytes]:
        """Retransmit the last flight when OpenSSL's timer expired (RFC 6347 §4.2.4)."""
        if self.keys is not None:
            return []
        self._conn.DTLSv1_handle_timeout()
        return self._drain()

    def _finish(self) -> None:
        cert = self._conn.get_peer_certificate(as_cryptography=True)
        if cert is None or certificate_fingerprint(cert) != self._remote:
            raise DtlsError("the bridge's certificate does not match the answer's fingerprint")
        if self._conn.get_selected_srtp_profile() != SRTP_PROFILE:
            raise DtlsError("no SRTP profile negotiated")
        # RFC 5764 §4.2: client key, server key, client salt, server salt.
        k, s = SRTP_KEY_LEN, SRTP_SALT_LEN
        m = self._conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (k + s))
        client, server = m[:k] + m[2 * k : 2 * k + s], m[k : 2 * k] + m[2 * k + s :]
        self.keys = SrtpKeys(rx=server, tx=client)
