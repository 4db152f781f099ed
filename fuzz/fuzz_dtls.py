"""Coverage-guided fuzzing of DTLS record framing and the bridge's DTLS server.

    python fuzz/fuzz_dtls.py NEW_INPUTS_DIR fuzz/corpus/dtls -runs=100000

``split_records`` (RFC 6347 §4.1) must cut any buffer into pieces that join back to it, and
``pack_datagrams`` must keep every record whole; a fresh ``DtlsServer`` fed the input (as one
datagram, then as its records one by one) must never raise, and never reach CONNECTED or key
SRTP (the fuzzer has no client certificate matching the fingerprint).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["tertulia"]):
    from tertulia.bridge.transport.dtls import (
        DtlsCertificate,
        DtlsServer,
        DtlsState,
        pack_datagrams,
        split_records,
    )

CERT = DtlsCertificate.generate()
FINGERPRINT = DtlsCertificate.generate().fingerprint


def test_one_input(data: bytes) -> None:
    records = split_records(data)
    if b"".join(records) != data:
        raise AssertionError("split_records lost or added bytes")
    datagrams = pack_datagrams(records, mtu=200)
    if b"".join(datagrams) != data:
        raise AssertionError("pack_datagrams lost or added bytes")
    for datagram in datagrams:
        if len(datagram) > 200 and len(split_records(datagram)) > 1:
            raise AssertionError("a datagram over the MTU holds more than one record")
    server = DtlsServer(CERT, FINGERPRINT)
    for datagram in [data, *records]:
        for reply in server.feed(datagram):
            if not isinstance(reply, bytes):
                raise AssertionError("DtlsServer.feed returned a non-bytes datagram")
    if server.state == DtlsState.CONNECTED or server.keys is not None:
        raise AssertionError("DTLS connected without the client's certificate")
    server.handle_timeout()
    server.close()


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
