"""Command line: `tertulia serve`, `tertulia doctor`, `tertulia bridge` and `tertulia shard`."""

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
    from tertulia.cluster.flags import add_parsers

    add_parsers(sub)
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
        "--workers", help="bridge worker processes, each on its own UDP port from --media-port "
        "(default 1: one process; 'auto': one per core)",
    )
    serve.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default info"
    )
    serve.add_argument("--domain", help="the name clients use (checked against the certificate)")
    serve.add_argument("--cert", help="TLS certificate (PEM, full chain): serve HTTPS and WSS")
    serve.add_argument("--key", help="TLS private key (PEM) of --cert")
    serve.add_argument(
        "--self-signed", action="store_const", const=True,
        help="serve HTTPS with a cached self-signed certificate for this machine (LAN use)",
    )
    serve.add_argument(
        "--stun-server", help="host:port of a STUN server that tells the public media address"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "loadtest":
        from tertulia.loadtest.run import main as loadtest

        return loadtest(args)
    from tertulia.cluster.flags import CLUSTER_SETTINGS

    names = ("host", "port", "media_port", "public_ip", "slots", "log_level", "workers",
             *CLUSTER_SETTINGS)
    overrides = {name: getattr(args, name, None) for name in names}
    # TLS and address discovery flags (serve and doctor), named differently from the settings
    for flag, name in (("domain", "domain"), ("cert", "tls_cert"), ("key", "tls_key"),
                       ("self_signed", "self_signed"), ("stun_server", "stun_server")):
        overrides[name] = getattr(args, flag, None)
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
    from tertulia.cluster.flags import entry_point
    from tertulia.tls import TlsError

    run = entry_point(args.command)

    runner = asyncio.run
    try:
        import uvloop  # faster datagram handling; optional (the "fast" extra)

        runner = uvloop.run
    except ImportError:
        pass
    try:
        runner(run(settings))
    except ConfigError as exc:  # e.g. a bridge or shard without control_secret
        print(f"tertulia: configuration error: {exc}", file=sys.stderr)
        return 2
    except (OSError, TlsError) as exc:
        print(f"tertulia: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
