"""deploy/: the Grafana dashboard only uses exported metrics; units, sysctl and proxy examples
carry the settings docs/operations.md promises."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tertulia.accept import Acceptor
from tertulia.cluster.metrics import ShardCollector
from tertulia.cluster.pool import RegistryPool
from tertulia.config import Settings
from tertulia.doctor import RECOMMENDED_UDP_BUFFER
from tertulia.focus.focus import Focus
from tertulia.focus.selection import BridgeSelector
from tertulia.metrics import BridgeCollector
from tertulia.registry.memory import MemoryRegistry
from tertulia.serve import SIGNAL_METRICS_KEY, build

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = ["tertulia.service", "tertulia-shard@.service", "tertulia-bridge@.service"]


def exported_names() -> set[str]:
    """Sample names /metrics can produce, from the collectors' own TYPE lines."""
    app, bridge = build(Settings())
    signal = app[SIGNAL_METRICS_KEY]
    signal.acceptor = Acceptor()  # as serve sets it once listening
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BridgeCollector(bridge))
    registry.register(signal)
    # a shard's own metrics (tertulia shard): focus and bridge pool
    pool = RegistryPool(MemoryRegistry(), BridgeSelector(), secret="s" * 32, shard_id="s1")
    registry.register(ShardCollector(Focus(pool), pool))
    names: set[str] = set()
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            # Counters are exposed as NAME_total (older prometheus-client: TYPE line without it).
            if kind == "counter" and not name.endswith("_total"):
                name += "_total"
            names.add(name)
    return names


def expressions(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            elif key == "query" and isinstance(value, str | dict):
                found.extend([value] if isinstance(value, str) else expressions(value))
            else:
                found.extend(expressions(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(expressions(item))
    return found


def test_grafana_dashboard_references_only_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "tertulia.json").read_text())
    exprs = expressions(dashboard)
    assert len(exprs) >= 20
    exported = exported_names()
    used = {m for e in exprs for m in re.findall(r"\btertulia_[a-z0-9_]+", e)}
    missing = used - exported
    assert not missing, f"dashboard uses metrics /metrics does not export: {sorted(missing)}"
    # Counters are only ever used through rate()/increase(), gauges never.
    for expr in exprs:
        for name in re.findall(r"\btertulia_[a-z0-9_]+", expr):
            if name.endswith("_total"):
                assert re.search(rf"(rate|increase)\({name}\b", expr), expr
    # Every panel has a unique id and at least one query (rows excepted).
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p["targets"] for p in panels if p["type"] != "row")
    # The dashboard covers most of what is exported (not just a token panel).
    assert len(used) >= 0.8 * len(exported), sorted(exported - used)


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


@pytest.mark.parametrize("name", UNITS)
def test_systemd_units(name: str) -> None:
    service = unit(name)["Service"]
    assert service["LimitNOFILE"] == "65000"
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["ProtectHome"] == "yes" and service["PrivateTmp"] == "yes"
    assert service["User"] == "tertulia"
    command = {"tertulia.service": "serve", "tertulia-shard@.service": "shard",
               "tertulia-bridge@.service": "bridge"}[name]
    assert f"/bin/tertulia {command} " in service["ExecStart"]
    if command == "bridge":
        assert "--region %i" in service["ExecStart"]
        # SIGTERM drains; systemd must not kill a draining bridge before drain_timeout
        assert int(service["TimeoutStopSec"]) >= Settings().drain_timeout


@pytest.mark.parametrize("name", UNITS)
def test_systemd_units_verify(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = (DEPLOY / "systemd" / name).read_text()
    # The unit as installed, with an executable that exists here.
    target = tmp_path / name.replace("@.", "@test.")
    target.write_text(text.replace("/opt/tertulia/.venv/bin/tertulia", "/bin/true"))
    result = subprocess.run([analyze, "verify", str(target)], capture_output=True, text=True,
                            timeout=30)
    problems = [line for line in result.stderr.splitlines() if target.name in line]
    assert not problems, result.stderr


def test_sysctl_meets_the_doctor_threshold() -> None:
    values = {}
    for line in (DEPLOY / "sysctl.d" / "tertulia.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = (part.strip() for part in line.split("=", 1))
            values[key] = int(value)
    for key in ("net.core.rmem_max", "net.core.wmem_max", "net.core.rmem_default"):
        assert values[key] >= RECOMMENDED_UDP_BUFFER, key


def test_nginx_upgrades_both_websockets() -> None:
    text = (DEPLOY / "nginx" / "tertulia.conf").read_text()
    for location in ("location = /ws {", "location /bridge/ws/ {", "location /worker/ {"):
        block = text.split(location, 1)[1].split("}", 1)[0]
        assert "proxy_set_header Upgrade $http_upgrade;" in block
        assert "proxy_set_header Connection $connection_upgrade;" in block
        assert "proxy_http_version 1.1;" in block
    assert "listen 443 ssl;" in text and "ssl_certificate " in text


def test_nginx_sends_the_client_address_from_every_proxied_location() -> None:
    """proxy_set_header is inherited only by locations that set none themselves: each one that
    does must repeat X-Forwarded-For, or the signal server's limits see 127.0.0.1 for all."""
    text = (DEPLOY / "nginx" / "tertulia.conf").read_text()
    forwarded = "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"
    server = text.split("listen 443 ssl;", 1)[1]
    location = re.compile(r"(?m)^ *location ([^{\n]*)\{([^}]*)\}")
    first = location.search(server)
    assert first is not None and forwarded in server[:first.start()]  # the server's own
    blocks = location.findall(server)
    proxied = [(where, body) for where, body in blocks if "proxy_pass" in body]
    assert {where.strip() for where, _ in proxied} >= {"= /ws", "/bridge/ws/", "/worker/", "/"}
    for where, body in proxied:
        if "proxy_set_header" in body:
            assert forwarded in body, where


def test_coturn_config_uses_rest_api_secret_and_denies_private_peers() -> None:
    lines = {
        line.strip() for line in (DEPLOY / "coturn" / "turnserver.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"use-auth-secret", "tls-listening-port=443", "no-multicast-peers"} <= lines
    assert any(line.startswith("static-auth-secret=") for line in lines)
    denied = {line.split("=", 1)[1] for line in lines if line.startswith("denied-peer-ip=")}
    for private in ("10.0.0.0-10.255.255.255", "172.16.0.0-172.31.255.255",
                    "192.168.0.0-192.168.255.255", "127.0.0.0-127.255.255.255",
                    "169.254.0.0-169.254.255.255",
                    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"):
        assert private in denied, private
    assert not any(line.startswith("allow-loopback-peers") for line in lines)
