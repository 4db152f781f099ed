"""DTLS-SRTP server side (RFC 5764) over pyOpenSSL with memory BIOs.

The bridge is always DTLS passive (``a=setup:passive``): it waits for the client's
ClientHello, checks the client's certificate against the fingerprint signalled in SDP
(RFC 8122 §5) and exports SRTP keys (RFC 5764 §4.2).
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import logging
import struct
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

log = logging.getLogger(__name__)

# RFC 5764 §4.1.2; key and salt lengths from RFC 3711 §8.2 (AES-CM 128-bit key, 112-bit salt).
SRTP_PROFILE = b"SRTP_AES128_CM_SHA1_80"
SRTP_KEY_LEN = 16
SRTP_SALT_LEN = 14
# Outgoing handshake datagrams are packed up to this size; below the common 1280-byte IPv6 MTU.
DTLS_MTU = 1200
_RECORD_HEADER = 13  # content type, version, epoch, sequence number, length (RFC 6347 §4.1)


class DtlsCertificate:
    """The bridge's self-signed ECDSA P-256 certificate, shared by all its endpoints."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        self.fingerprint = certificate_fingerprint(cert)
        self._context: SSL.Context | None = None

    @classmethod
    def generate(cls, *, days: int = 30) -> DtlsCertificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tertulia-bridge")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def context(self) -> SSL.Context:
        """One SSL context per certificate, reused for every endpoint."""
        if self._context is None:
            ctx = SSL.Context(SSL.DTLS_METHOD)
            ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_QUERY_MTU)
            # Any certificate is accepted during the handshake; identity is the SDP fingerprint,
            # checked right after (RFC 5763 §5).
            ctx.set_verify(
                SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True
            )
            ctx.use_certificate(self.cert)
            ctx.use_privatekey(self.key)
            ctx.set_cipher_list(
                b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
                b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
            )
            ctx.set_tlsext_use_srtp(SRTP_PROFILE)
            self._context = ctx
        return self._context


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """``AB:CD:…`` sha-256 fingerprint of the DER encoding (RFC 8122 §5)."""
    digest = cert.fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def split_records(data: bytes) -> list[bytes]:
    """Split a buffer of DTLS records into records (RFC 6347 §4.1 record layer).

    The memory BIO concatenates what OpenSSL writes, so record boundaries are recovered here
    and records are then packed into datagrams below the MTU. A truncated tail is kept whole.
    """
    records: list[bytes] = []
    pos = 0
    while pos + _RECORD_HEADER <= len(data):
        (length,) = struct.unpack_from("!H", data, pos + 11)
        end = pos + _RECORD_HEADER + length
        records.append(data[pos:end])
        pos = end
    if pos < len(data):
        records.append(data[pos:])
    return records


def pack_datagrams(records: list[bytes], mtu: int = DTLS_MTU) -> list[bytes]:
    """Several DTLS records may share a datagram (RFC 6347 §4.1.1); keep each under ``mtu``."""
    datagrams: list[bytes] = []
    current = b""
    for record in records:
        if current and len(current) + len(record) > mtu:
            datagrams.append(current)
            current = b""
        current += record
    if current:
        datagrams.append(current)
    return datagrams


class DtlsState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SrtpKeys:
    """Key+salt for what we receive (client's write key) and what we send (ours)."""

    rx: bytes
    tx: bytes


def new_connection(certificate: DtlsCertificate, *, active: bool) -> SSL.Connection:
    """A DTLS connection over memory BIOs, in the client (active) or server role."""
    conn = SSL.Connection(certificate.context(), None)
    if active:
        conn.set_connect_state()
    else:
        conn.set_accept_state()
    conn.set_ciphertext_mtu(DTLS_MTU)
    return conn


def drain(conn: SSL.Connection) -> list[bytes]:
    """Everything OpenSSL wrote to the memory BIO, as datagrams of whole records."""
    out = b""
    while True:
        try:
            chunk = conn.bio_read(65536)
        except SSL.WantReadError:
            break
        if not chunk:
            break
        out += chunk
    return pack_datagrams(split_records(out)) if out else []


def handshake_problem(conn: SSL.Connection, remote_fingerprint: str) -> str | None:
    """Why a completed handshake cannot be used (fingerprint, SRTP profile), or None."""
    cert = conn.get_peer_certificate(as_cryptography=True)
    if cert is None:
        return "the peer sent no certificate"
    if certificate_fingerprint(cert) != remote_fingerprint.upper():
        return "the peer's certificate does not match the signalled fingerprint"
    profile = conn.get_selected_srtp_profile()
    if profile != SRTP_PROFILE:
        return f"no usable SRTP profile negotiated ({profile!r})"
    return None


def srtp_keys(conn: SSL.Connection, *, active: bool) -> SrtpKeys:
    """This side's SRTP keys from the handshake (RFC 5764 §4.2: the exported material is
    client key, server key, client salt, server salt)."""
    k, s = SRTP_KEY_LEN, SRTP_SALT_LEN
    m = conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (k + s))
    client, server = m[:k] + m[2 * k : 2 * k + s], m[k : 2 * k] + m[2 * k + s :]
    return SrtpKeys(rx=server, tx=client) if active else SrtpKeys(rx=client, tx=server)


class DtlsServer:
    """One endpoint's DTLS association; feed it datagrams, send what it returns."""

    def __init__(self, certificate: DtlsCertificate, remote_fingerprint: str) -> None:
        self._conn = new_connection(certificate, active=False)
        self._remote_fingerprint = remote_fingerprint.upper()
        self.state = DtlsState.NEW
        self.keys: SrtpKeys | None = None
        self.error: str | None = None

    def _drain(self) -> list[bytes]:
        return drain(self._conn)

    def _fail(self, reason: str) -> None:
        self.state = DtlsState.FAILED
        self.error = reason
        log.info("DTLS failed: %s", reason)

    def feed(self, datagram: bytes) -> list[bytes]:
        """Process one incoming DTLS datagram; returns datagrams to send back."""
        if self.state in (DtlsState.FAILED, DtlsState.CLOSED) or not datagram:
            return []  # OpenSSL's BIO_write refuses an empty buffer (found by fuzz/fuzz_dtls.py)
        self._conn.bio_write(datagram)
        if self.state in (DtlsState.NEW, DtlsState.CONNECTING):
            self.state = DtlsState.CONNECTING
            try:
                self._conn.do_handshake()
            except SSL.WantReadError:
                return self._drain()
            except SSL.Error as exc:
                out = self._drain()
                self._fail(f"handshake error: {exc}")
                return out
            out = self._drain()
            self._on_handshake_done()
            return out
        # Connected: nothing but alerts (close_notify) or retransmitted flights are expected.
        try:
            self._conn.recv(2048)
        except SSL.ZeroReturnError:
            self.state = DtlsState.CLOSED
        except SSL.WantReadError:
            pass
        except SSL.Error as exc:
            log.debug("DTLS record error after handshake: %s", exc)
        return self._drain()

    def _on_handshake_done(self) -> None:
        problem = handshake_problem(self._conn, self._remote_fingerprint)
        if problem is not None:
            self._fail(problem)
            return
        self.keys = srtp_keys(self._conn, active=False)
        self.state = DtlsState.CONNECTED

    def timeout(self) -> float | None:
        """Seconds until a handshake retransmission is due (RFC 6347 §4.2.4), if any."""
        if self.state != DtlsState.CONNECTING:
            return None
        result: float | None = self._conn.DTLSv1_get_timeout()
        return result

    def handle_timeout(self) -> list[bytes]:
        if self.state != DtlsState.CONNECTING:
            return []
        try:
            self._conn.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(f"timeout handling: {exc}")
        return self._drain()

    def close(self) -> list[bytes]:
        """Send close_notify once; idempotent."""
        if self.state == DtlsState.CONNECTED:
            self.state = DtlsState.CLOSED
            with contextlib.suppress(SSL.Error):
                self._conn.shutdown()
            return self._drain()
        self.state = DtlsState.CLOSED
        return []
