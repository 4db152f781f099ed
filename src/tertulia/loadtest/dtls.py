"""DTLS-SRTP client side (RFC 5764) with pyOpenSSL memory BIOs.

The counterpart of the bridge's passive ``DtlsServer``: it shares that module's certificate
and context setup, record splitting and datagram packing, and adds only what the active side
does differently (sends the ClientHello, checks the *server's* fingerprint, takes the server's
key for what it receives).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from OpenSSL import SSL

from tertulia.bridge.transport.dtls import (
    DtlsCertificate,
    SrtpKeys,
    drain,
    handshake_problem,
    new_connection,
    srtp_keys,
)


class DtlsError(Exception):
    pass


class DtlsClient:
    def __init__(self, certificate: DtlsCertificate, remote_fingerprint: str) -> None:
        self._conn = new_connection(certificate, active=True)
        self._remote = remote_fingerprint.upper()
        self.keys: SrtpKeys | None = None

    def _drain(self) -> list[bytes]:
        return drain(self._conn)

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
        problem = handshake_problem(self._conn, self._remote)
        if problem is not None:
            raise DtlsError(problem)
        self.keys = srtp_keys(self._conn, active=True)


def feed_handshake(
    client: DtlsClient, data: bytes, send: Callable[[list[bytes]], None],
    done: asyncio.Future[None] | None, failure: Callable[[Exception], Exception] = lambda e: e,
) -> SrtpKeys | None:
    """One DTLS datagram from the bridge into ``client``: its answer goes out with ``send``;
    a failed handshake fails ``done`` (with ``failure(error)``); once the keys exist ``done``
    is resolved and they are returned (the caller then starts SRTP if it has not yet)."""
    try:
        out = client.feed(data)
    except (DtlsError, SSL.Error) as exc:  # a failed handshake, or a record OpenSSL refused
        if done is not None and not done.done():
            done.set_exception(failure(exc))
        return None
    send(out)
    if client.keys is not None and done is not None and not done.done():
        done.set_result(None)
    return client.keys
