"""Start `tertulia bridge` and `tertulia shard` as real processes (optionally inside a network
namespace) and wait until they answer; stop them on exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp

SECRET = "control-secret-for-tests-0123456789abcdef"
SRC = str(Path(__file__).resolve().parent.parent / "src")


class Proc:
    def __init__(self, args: list[str], prefix: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "PYTHONPATH": SRC, "TERTULIA_CONTROL_SECRET": SECRET,
                    **(env or {})}
        # a file, not a pipe: a pipe nobody reads would block the process; closed by stop()
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "tertulia", *args],
            env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self) -> str:
        self.kill(signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return ""
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")[-4000:]
        return text

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


async def wait_http(url: str, timeout: float = 20.0) -> None:
    """Poll ``url`` until it answers 200 (bounded)."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            await _sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@contextmanager
def processes() -> Iterator[tuple[ExitStack, list[Proc]]]:
    """Every process started through the list is killed at exit; output printed on failure."""
    started: list[Proc] = []
    stack = ExitStack()
    try:
        yield stack, started
    except BaseException:
        for proc in started:
            print(f"--- {' '.join(proc.proc.args[-6:])} ---\n{proc.stop()}")  # type: ignore[index]
        raise
    finally:
        for proc in started:
            proc.stop()
        stack.close()
