"""Command line: `tertulia serve` and `tertulia doctor` (more arrive with the cluster work)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from tertulia import __version__
from tertulia.config import ConfigError, load


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tertulia", description="Self-hosted video meetings")
    parser.add_argument("--version", action="version", version=f"tertulia {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve", help="run web client, signalling, focus and one bridge in one process"
    )
    doctor = sub.add_parser(
        "doctor", help="check this machine and these settings before serving (preflight)"
    )
    for command in (serve, doctor):
        _address_flags(command)
    from tertulia.loadtest.run import add_arguments as loadtest_arguments

    loadtest_arguments(sub.add_parser(
        "loadtest", help="synthetic WebRTC participants against a deployment (load testing)"
    ))
    return parser


def _address_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--config", type=Path, help="TOML settings file")
    serve.add_argument("--host", help="HTTP listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8000)")
    serve.add_argument("--media-port", type=int, help="UDP media port (default 10000)")
    serve.add_argument(
        "--public-ip", help="address advertised in ICE candidates (default: the host address)"
    )
    serve.add_argument("--slots", type=int, help="receive slots per client (default 9)")
    serve.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "loadtest":
        from tertulia.loadtest.run import main as loadtest

        return loadtest(args)
    overrides = {
        "host": args.host,
        "port": args.port,
        "media_port": args.media_port,
        "public_ip": args.public_ip,
        "slots": args.slots,
        "log_level": args.log_level,
    }
    try:
        settings = load(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"tertulia: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "doctor":
        from tertulia.doctor import main as doctor

        return doctor(settings)
    from tertulia.logs import setup

    setup(settings.log_level)
    from tertulia.serve import run

    runner = asyncio.run
    try:
        import uvloop  # faster datagram handling; optional (the "fast" extra)

        runner = uvloop.run
    except ImportError:
        pass
    try:
        runner(run(settings))
    except OSError as exc:
        print(f"tertulia: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
