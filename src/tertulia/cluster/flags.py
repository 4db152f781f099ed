"""Command-line flags of `tertulia bridge` and `tertulia shard` (kept apart from cli.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tertulia.config import Settings

# flag destination → settings name (both are the same; listed so cli.py knows what to pass)
CLUSTER_SETTINGS = ("redis", "region", "control_port", "bridge_id", "shard_id", "public_url",
                    "drain_timeout", "bridge_selection")  # control_secret: file or env only


def add_parsers(sub: Any) -> None:
    bridge = sub.add_parser("bridge", help="run one media bridge (control API, media, stats)")
    shard = sub.add_parser("shard", help="run web client, signalling and focus; bridges from "
                           "the registry")
    for parser in (bridge, shard):
        _common(parser)
    bridge.add_argument("--region", help="this bridge's region (default 'default')")
    bridge.add_argument("--control-port", type=int,
                        help="HTTP port for control API, bridge channel, stats (default 8080)")
    bridge.add_argument("--media-port", type=int, help="UDP media port (default 10000)")
    bridge.add_argument("--public-ip", help="address advertised in ICE candidates")
    bridge.add_argument("--bridge-id", help="stable id (default: random at start)")
    bridge.add_argument("--drain-timeout", type=float,
                        help="SIGTERM: exit after this many seconds at most (default 3600)")
    shard.add_argument("--port", type=int, help="HTTP port (default 8000)")
    shard.add_argument("--shard-id", help="stable id (default: random at start)")
    shard.add_argument("--bridge-selection", help="bridge selection strategy (default single)")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--host", help="HTTP listen address (default 127.0.0.1)")
    parser.add_argument("--redis", help="registry URL, redis://host:6379/0 (default: in memory)")
    parser.add_argument("--public-url", help="base URL others reach this process's HTTP port at")
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )


def entry_point(command: str) -> Callable[[Settings], Coroutine[Any, Any, None]]:
    """The coroutine function that runs ``command`` (imported only when used)."""
    if command == "bridge":
        from tertulia.cluster.bridge_process import run as bridge

        return bridge
    if command == "shard":
        from tertulia.cluster.shard_process import run as shard

        return shard
    from tertulia.serve import run as serve

    return serve
