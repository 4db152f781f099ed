"""Network namespaces for multi-host tests: a Linux bridge in the test's own namespace and one
namespace per simulated host, each on a veth pair with its own address (198.51.100.0/24,
a documentation range). Everything is removed again, even when the test fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

SUBNET = "198.51.100"
HUB_ADDRESS = f"{SUBNET}.1"  # the test's own namespace, on the Linux bridge


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@dataclass
class NetLab:
    prefix: str
    hosts: dict[str, str] = field(default_factory=dict)  # namespace name → its address

    def netns_exec(self, namespace: str) -> list[str]:
        return ["ip", "netns", "exec", namespace]

    def cut(self, namespace: str) -> None:
        """Unplug the host: its veth goes down, packets vanish without a reset."""
        index = list(self.hosts).index(namespace)
        _ip("link", "set", f"{self.prefix}h{index}", "down")


@contextmanager
def netlab(count: int) -> Iterator[tuple[NetLab, list[str]]]:
    """``count`` namespaces; yields the lab and their names (addresses .11, .12, ...)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 for network namespaces")
    prefix = f"tcl{os.getpid() % 100000}"
    lab = NetLab(prefix)
    bridge = prefix + "br"
    names: list[str] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{HUB_ADDRESS}/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for i in range(count):
            ns = f"{prefix}n{i}"
            host_end, ns_end = f"{prefix}h{i}", f"{prefix}v{i}"
            address = f"{SUBNET}.{11 + i}"
            _ip("netns", "add", ns)
            names.append(ns)
            _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            _ip("link", "set", ns_end, "netns", ns)
            _ip("link", "set", host_end, "master", bridge)
            _ip("link", "set", host_end, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", ns_end)
            _ip("-n", ns, "link", "set", ns_end, "up")
            lab.hosts[ns] = address
        yield lab, names
    finally:
        for i, ns in enumerate(names):
            subprocess.run(["ip", "link", "del", f"{prefix}h{i}"], capture_output=True,
                           timeout=10)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=10)
