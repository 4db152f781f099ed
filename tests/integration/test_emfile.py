"""File-descriptor exhaustion: `tertulia serve` under a low open-file limit answers new
connections with 503, keeps serving the participants it has, and recovers when descriptors
free up. Also the acceptor's EMFILE handling in isolation."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from tertulia import accept
from tertulia.accept import Acceptor
from tests.server import free_port
from tests.wsclient import Client

pytestmark = pytest.mark.timeout(60)

NOFILE = 128
MAX_CLIENTS = 300

# Runs `tertulia serve` like `python -m tertulia serve`, under a low open-file limit (soft and
# hard: the server raises soft to hard), optionally without uvloop (the default asyncio loop).
LAUNCH = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, ({n}, {n}))
if sys.argv[1] == "asyncio":
    sys.modules["uvloop"] = None  # `import uvloop` raises ImportError: plain asyncio.run
from tertulia.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def _loops() -> list[str]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return ["asyncio"]
    return ["asyncio", "uvloop"]


async def _health(http: aiohttp.ClientSession, base: str) -> tuple[int, str, dict[str, str]]:
    async with http.get(f"{base}/about/health", timeout=aiohttp.ClientTimeout(total=5)) as r:
        return r.status, await r.text(), dict(r.headers)


async def _wait_healthy(http: aiohttp.ClientSession, base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await _health(http, base))[0] == 200:
                return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{base} not healthy within {timeout} s")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("loop_kind", _loops())
async def test_server_survives_descriptor_exhaustion(loop_kind: str, tmp_path: Path) -> None:
    port, media = free_port(), free_port(socket.SOCK_DGRAM)
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        # every client comes from 127.0.0.1 and joins one room
        "TERTULIA_JOINS_PER_SECOND_PER_ADDRESS": "10000",
        "TERTULIA_JOIN_BURST_PER_ADDRESS": "10000",
        "TERTULIA_MAX_PARTICIPANTS_PER_ROOM": "1000",
    }
    env.pop("TERTULIA_CONFIG", None)
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH.format(n=NOFILE), loop_kind,
             "serve", "--port", str(port), "--media-port", str(media)],
            stdout=log_file, stderr=subprocess.STDOUT, env=env,
        )
    clients: list[Client] = []
    # A fresh connection per request (no keep-alive): a pooled connection would hold a
    # descriptor of the server.
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    ws_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        await _wait_healthy(http, base, 15)

        # Connect and join until the server runs out of descriptors and answers 503.
        refused: aiohttp.WSServerHandshakeError | None = None
        for i in range(MAX_CLIENTS):
            client = Client(ws_http, f"ws://127.0.0.1:{port}/ws", name=f"p{i}")
            try:
                # Before this acceptor, asyncio left new connections waiting in the backlog.
                await asyncio.wait_for(client.connect(), 10)
            except aiohttp.WSServerHandshakeError as exc:
                refused = exc
                break
            clients.append(client)
            assert (await client.join("fd-room"))["type"] == "welcome"
        assert refused is not None, f"no 503 after {MAX_CLIENTS} connections"
        assert refused.status == 503
        assert 10 < len(clients) < NOFILE

        # (a) a new plain HTTP request gets the 503 with a reason
        status, body, headers = await _health(http, base)
        assert status == 503
        assert "out of file descriptors" in body
        assert headers["Retry-After"] == "5"

        # (b) connected participants are still served: requests, and presence
        first, second, leaving = clients[0], clients[1], clients[-1]
        assert (await first.request({"type": "ping"}))["type"] == "pong"
        await leaving.close()
        clients.remove(leaving)
        for client in (first, second):
            await client.wait_type("participant-left", id=leaving.id)

        # (c) the server is alive
        assert proc.poll() is None

        # (d) descriptors free up: new connections succeed again
        for client in clients[-20:]:
            await client.close()
        del clients[-20:]
        await _wait_healthy(http, base, 5)
        newcomer = await Client(ws_http, f"ws://127.0.0.1:{port}/ws", name="late").connect()
        clients.append(newcomer)
        assert (await newcomer.join("fd-room"))["type"] == "welcome"
        await first.wait_type("participant-joined")
        # ... and operators see what happened in /metrics.
        async with http.get(f"{base}/metrics") as resp:
            metrics = await resp.text()
        line = next(x for x in metrics.splitlines()
                    if x.startswith("tertulia_http_rejected_no_descriptors_total "))
        assert float(line.split()[1]) >= 1
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        await http.close()
        await ws_http.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 15)
        finally:
            if proc.poll() is None:
                proc.kill()
    log_text = log_path.read_text()
    assert proc.returncode == 0, log_text
    assert f"http://localhost:{port}/" in log_text
    assert "out of file descriptors" in log_text
    assert "Traceback" not in log_text


# the acceptor on its own, with accept() failing


class _FailingListener:
    """Stands in for a listening socket whose accept() always fails."""

    def __init__(self, real: socket.socket, error: int) -> None:
        self.real = real
        self.error = error
        self.calls = 0

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> tuple[socket.socket, Any]:
        self.calls += 1
        raise OSError(self.error, os.strerror(self.error))


@pytest.fixture
async def runner() -> Any:
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    yield runner
    await runner.cleanup()


async def test_acceptor_serves_requests(runner: web.AppRunner) -> None:
    acceptor = Acceptor()
    await acceptor.start(runner, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                async with http.get(f"http://127.0.0.1:{acceptor.port}/") as resp:
                    assert await resp.text() == "ok"
        assert acceptor.accepted >= 1
        assert acceptor.rejected_emfile == 0
    finally:
        acceptor.close()


async def test_acceptor_listens_on_ipv6(runner: web.AppRunner) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    acceptor = Acceptor()
    await acceptor.start(runner, "::1", 0)
    try:
        assert acceptor.sockets[0].family == socket.AF_INET6
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://[::1]:{acceptor.port}/") as resp,
        ):
            assert await resp.text() == "ok"
    finally:
        acceptor.close()


async def test_emfile_without_reserve_pauses_instead_of_spinning(
    runner: web.AppRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    acceptor = Acceptor(retry_delay=0.2)
    await acceptor.start(runner, "127.0.0.1", 0)
    listener = acceptor.sockets[0]
    fake = _FailingListener(listener, errno.EMFILE)
    # Not even the reserve descriptor can be reopened: the acceptor must pause and retry.
    monkeypatch.setattr(accept, "_open_reserve", lambda: None)
    if acceptor._reserve is not None:
        os.close(acceptor._reserve)
        acceptor._reserve = None
    loop = asyncio.get_running_loop()
    scheduled: list[float] = []
    real_call_later = loop.call_later

    def spy(delay: float, *args: Any) -> asyncio.TimerHandle:
        scheduled.append(delay)
        return real_call_later(delay, *args)

    monkeypatch.setattr(loop, "call_later", spy)
    try:
        acceptor._on_readable(cast(socket.socket, fake))  # must not raise
        assert fake.calls == 1
        assert acceptor.pauses == 1
        assert scheduled == [0.2]
        assert not acceptor._reading
        acceptor._on_readable(cast(socket.socket, fake))  # paused: still one timer
        assert acceptor.pauses == 1
        # After the delay it reads the listening socket again.
        await asyncio.sleep(0.3)
        assert acceptor._reading
    finally:
        acceptor.close()


async def test_emfile_with_reserve_answers_503(runner: web.AppRunner) -> None:
    acceptor = Acceptor()
    await acceptor.start(runner, "127.0.0.1", 0)
    listener = acceptor.sockets[0]
    calls = 0

    class FirstAcceptFails:
        """accept() fails with EMFILE once, then works: the reserve descriptor was freed."""

        def fileno(self) -> int:
            return listener.fileno()

        def accept(self) -> tuple[socket.socket, Any]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise OSError(errno.EMFILE, "Too many open files")
            return listener.accept()

    acceptor._stop_reading()  # drive it by hand
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", acceptor.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        acceptor._reading = True
        acceptor._on_readable(cast(socket.socket, FirstAcceptFails()))
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"Retry-After: 5\r\n" in answer
        assert answer.endswith(b"server is out of file descriptors, retry shortly\n")
        assert acceptor.rejected_emfile == 1
        assert acceptor._reserve is not None  # reopened
    finally:
        acceptor.close()
