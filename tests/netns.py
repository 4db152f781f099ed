"""Network namespaces and a real coturn for tests; everything is removed afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


def need_root_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run scripts/install-system-deps.sh")
    if not os.path.exists(TURNSERVER):
        pytest.fail("coturn is not installed: run scripts/install-system-deps.sh")


def sh(*args: str, stdin: str | None = None) -> None:
    subprocess.run(args, check=True, input=stdin, text=True, timeout=10,
                   capture_output=True)


@contextmanager
def namespace(prefix: str) -> Iterator[str]:
    """A fresh network namespace (loopback up) with a unique name; deleted on exit."""
    name = f"{prefix}-{os.getpid()}-{time.monotonic_ns() % 100000}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        with suppress(subprocess.SubprocessError, OSError):
            sh("ip", "netns", "del", name)


def in_ns(ns: str | None, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv] if ns else list(argv)


@contextmanager
def coturn(
    workdir: Path,
    listen: str,
    port: int,
    extra: Sequence[str],
    ns: str | None = None,
    config: bool = False,
) -> Iterator[Path]:
    """coturn in the foreground on listen:port (UDP and TCP; no TLS, no configuration file
    unless `config`, when `extra` names one with -c); yields its log file."""
    log = workdir / "turnserver.log"
    base = [] if config else ["-n", "--no-cli", "--no-tls", "--no-dtls"]
    argv = [
        TURNSERVER, *base, "--listening-ip", listen,
        "--listening-port", str(port), "--log-file", str(log), "--simple-log",
        "--pidfile", str(workdir / "turnserver.pid"), "--db", str(workdir / "turndb"),
        *extra,
    ]
    proc = subprocess.Popen(in_ns(ns, argv), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # bounded wait for its listeners
            if proc.poll() is not None:
                raise RuntimeError(f"turnserver exited: {log.read_text() if log.exists() else ''}")
            if log.exists() and "Total General servers" in log.read_text():
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("turnserver did not start within 10 s")
        yield log
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
