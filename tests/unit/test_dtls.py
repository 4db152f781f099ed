"""A real DTLS client (pyOpenSSL) against our DtlsServer, datagrams passed in memory."""

from __future__ import annotations

from OpenSSL import SSL

from tertulia.bridge.transport.dtls import (
    DtlsCertificate,
    DtlsServer,
    DtlsState,
    pack_datagrams,
    split_records,
)


def client_for(cert: DtlsCertificate) -> SSL.Connection:
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.use_certificate(cert.cert)
    ctx.use_privatekey(cert.key)
    ctx.set_verify(SSL.VERIFY_PEER, lambda *args: True)
    ctx.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
    conn = SSL.Connection(ctx, None)
    conn.set_connect_state()
    return conn


def drain(conn: SSL.Connection) -> bytes:
    out = b""
    while True:
        try:
            out += conn.bio_read(65536)
        except SSL.WantReadError:
            return out


def handshake(server: DtlsServer, client: SSL.Connection) -> bool:
    for _ in range(10):
        try:
            client.do_handshake()
            done = True
        except SSL.WantReadError:
            done = False
        flight = drain(client)
        for datagram in pack_datagrams(split_records(flight)) if flight else []:
            for reply in server.feed(datagram):
                assert len(reply) <= 1200 or len(split_records(reply)) == 1
                client.bio_write(reply)
        if done and server.state != DtlsState.CONNECTING:
            return True
    return False


def test_handshake_exports_matching_srtp_keys() -> None:
    server_cert, client_cert = DtlsCertificate.generate(), DtlsCertificate.generate()
    server = DtlsServer(server_cert, client_cert.fingerprint)
    client = client_for(client_cert)
    assert handshake(server, client)
    assert server.state == DtlsState.CONNECTED and server.keys is not None
    material = client.export_keying_material(b"EXTRACTOR-dtls_srtp", 60)
    client_key, server_key = material[:16], material[16:32]
    client_salt, server_salt = material[32:46], material[46:]
    assert server.keys.rx == client_key + client_salt
    assert server.keys.tx == server_key + server_salt


def test_wrong_fingerprint_fails_the_endpoint() -> None:
    server_cert, client_cert = DtlsCertificate.generate(), DtlsCertificate.generate()
    other = DtlsCertificate.generate()
    server = DtlsServer(server_cert, other.fingerprint)
    handshake(server, client_for(client_cert))
    assert server.state == DtlsState.FAILED
    assert server.keys is None
    assert "fingerprint" in (server.error or "")


def test_garbage_fails_cleanly() -> None:
    """A malformed handshake record fails the association without raising or keying SRTP."""
    server = DtlsServer(DtlsCertificate.generate(), "AA:BB")
    server.feed(bytes([22, 0xFE, 0xFD]) + bytes(40))
    server.feed(b"\x17\xfe\xfd")
    assert server.state != DtlsState.CONNECTED and server.keys is None
    # a genuine client afterwards cannot complete on the same (broken) association either
    assert not handshake(server, client_for(DtlsCertificate.generate())) or server.keys is None


def test_fingerprint_format() -> None:
    fp = DtlsCertificate.generate().fingerprint
    parts = fp.split(":")
    assert len(parts) == 32 and all(len(p) == 2 and p == p.upper() for p in parts)


def test_records_are_split_and_packed_under_mtu() -> None:
    record = lambda n: bytes([22, 0xFE, 0xFD]) + bytes(8) + n.to_bytes(2, "big") + bytes(n)  # noqa: E731
    data = record(500) + record(600) + record(300)
    records = split_records(data)
    assert [len(r) for r in records] == [513, 613, 313]
    datagrams = pack_datagrams(records, mtu=1200)
    assert [len(d) for d in datagrams] == [1126, 313]
    assert b"".join(datagrams) == data


def test_empty_datagram_is_ignored() -> None:
    """Regression (fuzz/fuzz_dtls.py): feeding b"" raised OpenSSL.SSL.Error from bio_write."""
    server = DtlsServer(DtlsCertificate.generate(), "AA:BB")
    assert server.feed(b"") == []
    assert server.state == DtlsState.NEW
