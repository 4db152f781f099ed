"""`tertulia doctor`: a preflight that tells the operator what will break before users do.

Each check is a small function returning a :class:`Check` (pass, warn or fail, with the fix);
the ones that look at the machine take their inputs as arguments so they can be tested.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tertulia import tls, turn_probe
from tertulia.config import Settings, split_host_port
from tertulia.stun_discovery import Mapping, StunError, discover

RECOMMENDED_NOFILE = 65536
RECOMMENDED_UDP_BUFFER = 8 * 1024 * 1024  # bytes; a busy bridge drops packets with less


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str  # "pass" | "warn" | "fail"
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status.upper():4}  {self.name}: {self.detail}"
        return text + (f"\n      fix: {self.fix}" if self.fix and self.status != "pass" else "")


def check_nofile(soft: int, hard: int) -> Check:
    usable = hard if hard != resource.RLIM_INFINITY else max(soft, RECOMMENDED_NOFILE)
    if usable >= RECOMMENDED_NOFILE:
        return Check("open files", "pass", f"soft {soft}, hard {hard}: serve raises soft to hard")
    return Check(
        "open files", "warn", f"hard limit {hard} is below {RECOMMENDED_NOFILE}",
        "raise it: LimitNOFILE=65536 in the systemd unit, or `ulimit -Hn 65536`",
    )


def check_port(kind: int, host: str, port: int, what: str) -> Check:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return Check(what, "fail", f"cannot bind {host}:{port}: {exc.strerror}",
                         "stop whatever holds the port (`ss -lunpt`) or choose another port")
    return Check(what, "pass", f"{host}:{port} is free")


def local_addresses() -> set[str]:
    """Addresses of this machine's interfaces (best effort, no extra dependency)."""
    found = {"127.0.0.1", "::1"}
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    except OSError:
        pass
    for probe in ("192.0.2.1", "2001:db8::1"):  # documentation ranges: no packet is sent
        family = socket.AF_INET6 if ":" in probe else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                found.add(str(s.getsockname()[0]))
        except OSError:
            pass
    return found


def check_advertised(host: str, advertised: str, explicit: bool, local: set[str]) -> Check:
    """The "works with two, breaks with three" check: the only ICE candidate the bridge
    offers must be reachable by every participant."""
    ip = ipaddress.ip_address(advertised)
    serving_network = host in ("0.0.0.0", "::", "") or not ipaddress.ip_address(
        host if host not in ("localhost",) else "127.0.0.1").is_loopback
    if ip.is_loopback and serving_network:
        return Check(
            "advertised media address", "fail",
            f"{advertised} is a loopback address but the server listens on {host or '*'}: "
            "nobody on another machine can send media",
            "set --public-ip to the address clients reach this machine on",
        )
    if not ip.is_global and serving_network:
        return Check(
            "advertised media address", "warn",
            f"{advertised} is a private address: fine on a LAN, but participants outside it "
            "will join, see each other in the list, and get no media",
            "behind NAT set --public-ip to the public address and forward the UDP port",
        )
    if not explicit and advertised not in local:
        return Check("advertised media address", "warn",
                     f"{advertised} is not an address of this machine",
                     "set --public-ip explicitly if this is a NAT address")
    return Check("advertised media address", "pass", f"clients send media to {advertised}")


def check_udp_buffers(proc: Path = Path("/proc/sys/net/core")) -> Check:
    try:
        rmem = int((proc / "rmem_max").read_text())
        wmem = int((proc / "wmem_max").read_text())
    except (OSError, ValueError):
        return Check("UDP buffers", "warn", "cannot read net.core.rmem_max/wmem_max")
    if min(rmem, wmem) >= RECOMMENDED_UDP_BUFFER:
        return Check("UDP buffers", "pass", f"rmem_max {rmem}, wmem_max {wmem}")
    return Check(
        "UDP buffers", "warn",
        f"rmem_max {rmem}, wmem_max {wmem}: bursts of video may be dropped under load",
        f"sysctl -w net.core.rmem_max={RECOMMENDED_UDP_BUFFER} "
        f"net.core.wmem_max={RECOMMENDED_UDP_BUFFER} (and in /etc/sysctl.d/)",
    )


def check_clock(now: float) -> Check:
    year = time.gmtime(now).tm_year
    if 2024 <= year <= 2100:
        return Check("clock", "pass", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)))
    return Check("clock", "fail", f"the system clock says {year}",
                 "set the clock (timedatectl set-ntp true): tokens and certificates need it")


def check_tokens(settings: Settings) -> Check:
    if not (settings.token_secret or settings.token_public_key_file):
        return Check("room tokens", "pass", "not configured: anyone with a link may join")
    guests = "allowed" if settings.allow_anonymous else "refused"
    return Check("room tokens", "pass", f"enabled; guests without a token {guests}")


def check_certificate(cert_pem: bytes, key_pem: bytes, domain: str, now: dt.datetime) -> Check:
    """Validity period, key pair and name of the certificate `serve` will present."""
    failures, warnings, info = tls.problems(cert_pem, key_pem, domain, now)
    if failures:
        return Check("TLS certificate", "fail", "; ".join(failures),
                     "install a valid certificate and key for the domain (e.g. from Let's "
                     "Encrypt: certbot certonly --standalone -d DOMAIN) and pass --cert/--key")
    assert info is not None
    covered = ", ".join(info.subject_names + info.subject_addresses)
    detail = f"valid until {info.not_after:%Y-%m-%d}, covers {covered}"
    if warnings:
        return Check("TLS certificate", "warn", f"{detail}; " + "; ".join(warnings),
                     "renew it before it expires; for internet use, a CA-signed certificate")
    return Check("TLS certificate", "pass", detail)


def check_tls(settings: Settings, now: dt.datetime) -> Check:
    if not settings.tls:
        return Check(
            "TLS", "warn",
            "serving plain HTTP: browsers allow camera and microphone only on localhost",
            "pass --cert/--key (or --self-signed on a LAN), or put a TLS proxy in front",
        )
    if settings.self_signed:
        directory = (Path(settings.self_signed_dir) if settings.self_signed_dir
                     else tls.default_self_signed_dir())
        cert, key = directory / tls.CERT_NAME, directory / tls.KEY_NAME
        if not cert.exists():
            return Check("TLS certificate", "pass",
                         f"self-signed; serve will create one in {directory}")
        domain = ""  # serve makes a new self-signed certificate when a name is missing
    else:
        domain = settings.domain
        cert, key = Path(settings.tls_cert), Path(settings.tls_key)
    try:
        cert_pem, key_pem = cert.read_bytes(), key.read_bytes()
    except OSError as exc:
        return Check("TLS certificate", "fail", f"cannot read {exc.filename}: {exc.strerror}",
                     "check the paths and that the service user may read them")
    return check_certificate(cert_pem, key_pem, domain, now)


def check_stun(settings: Settings) -> tuple[Check, str | None]:
    """(check, discovered address): what the STUN server sees of the media port."""
    server = split_host_port(settings.stun_server, "stun_server")
    bind = (settings.media_bind, settings.media_port)

    async def ask() -> Mapping:
        try:
            return await discover(server, bind)
        except StunError as exc:
            if "cannot bind" not in str(exc):
                raise
            return await discover(server, (bind[0], 0))  # serve is running: any port tells the IP

    try:
        mapping = asyncio.run(ask())
    except StunError as exc:
        return Check("STUN discovery", "fail", str(exc),
                     "check the STUN server address and that outgoing UDP to it is allowed, "
                     "or set --public-ip"), None
    detail = f"{settings.stun_server} sees the media port as {mapping.ip}:{mapping.port}"
    if settings.public_ip and settings.public_ip != mapping.ip:
        return Check("STUN discovery", "warn", f"{detail}, but --public-ip is {settings.public_ip}",
                     "drop --public-ip to advertise the discovered address, or correct it"), None
    if mapping.local_port == settings.media_port and not mapping.port_preserved:
        return Check("STUN discovery", "warn", f"{detail}: the NAT changes the port",
                     f"forward UDP {settings.media_port} to this machine's port "
                     f"{settings.media_port}"), mapping.ip
    return Check("STUN discovery", "pass", detail), mapping.ip


def check_turn(settings: Settings, now: float) -> list[Check]:
    """Each turn:/turns: URL: reachable, and it accepts a credential made with turn_secret."""
    checks = []
    for url in settings.turn_urls:
        if not url.startswith("turn"):
            continue
        try:
            relayed = asyncio.run(
                turn_probe.probe(url, settings.turn_secret, settings.turn_ttl, now)
            )
        except turn_probe.TurnProbeError as exc:
            checks.append(Check(f"TURN {url}", "fail", str(exc),
                                "check that the TURN server runs and is reachable from here, "
                                "and that turn_secret equals its static-auth-secret"))
            continue
        checks.append(Check(f"TURN {url}", "pass", f"allocated and released relay {relayed}"))
    return checks


def check_redis(url: str) -> Check:
    """The cluster registry's Redis answers PING (redis-py, the client the registry uses)."""
    try:
        import redis
    except ImportError:
        return Check("Redis", "fail", "redis is set but the redis package is not installed",
                     "pip install redis (in Tertulia's virtual environment)")
    shown = url.split("@")[-1]  # never print a password from the URL
    try:
        client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        try:
            client.ping()
            version = client.info("server").get("redis_version", "?")
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        return Check("Redis", "fail", f"{shown}: {exc}",
                     "check the redis URL, that Redis runs and that this machine may reach it")
    return Check("Redis", "pass", f"{shown} answers (Redis {version})")


def run_checks(settings: Settings, *, clock: Callable[[], float] = time.time) -> list[Check]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    explicit = bool(settings.public_ip)
    advertised = settings.advertised_ip
    stun: list[Check] = []
    if settings.stun_server:
        check, discovered = check_stun(settings)
        stun.append(check)
        if discovered and not settings.public_ip:
            advertised, explicit = discovered, True
    return [
        check_nofile(soft, hard),
        check_port(socket.SOCK_STREAM, settings.host, settings.port, "HTTP port"),
        check_port(socket.SOCK_DGRAM, settings.media_bind, settings.media_port, "media UDP port"),
        *(check_port(socket.SOCK_DGRAM, settings.media_bind, settings.media_port + i,
                     f"media UDP port of worker {i}") for i in range(1, settings.workers)),
        *stun,
        check_advertised(settings.host, advertised, explicit, local_addresses()),
        check_udp_buffers(),
        check_clock(clock()),
        check_tokens(settings),
        check_tls(settings, dt.datetime.fromtimestamp(clock(), dt.UTC)),
        *check_turn(settings, clock()),
        # `redis` arrives with the cluster settings; until then the check is skipped.
        *([check_redis(url)] if (url := getattr(settings, "redis", None)) else []),
    ]


def main(settings: Settings) -> int:
    checks = run_checks(settings)
    for check in checks:
        print(check.line())
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    print(f"\n{len(checks) - failed - warned} passed, {warned} warnings, {failed} failed")
    return 1 if failed else 0
