"""Settings: defaults, then a TOML file, then environment variables, then command-line flags.

Validated once at start; the result is frozen.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from tertulia.signal.forwarded import TrustedProxies
from tertulia.signal.limits import Limits
from tertulia.signal.tokens import TokenSettings, TokenVerifier

ENV_PREFIX = "TERTULIA_"
LOG_LEVELS = ("debug", "info", "warning", "error")
MAX_WORKERS = 256


_LIMITS = Limits()


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    media_host: str = ""  # where the UDP socket binds; default: same as host
    media_port: int = 10000
    public_ip: str = ""  # address advertised in ICE candidates; default: the host address
    log_level: str = "info"
    slots: int = 9  # receive slots each client negotiates (max simultaneously shown)
    consent_timeout: float = 30.0
    # signalling limits (docs/protocol.md, "Limits"); defaults live in one place: Limits
    max_message_bytes: int = _LIMITS.max_message_bytes
    messages_per_second: float = _LIMITS.messages_per_second
    message_burst: float = _LIMITS.message_burst
    joins_per_second_per_address: float = _LIMITS.joins_per_second_per_address
    join_burst_per_address: float = _LIMITS.join_burst_per_address
    password_guesses_per_minute: float = _LIMITS.password_guesses_per_minute
    password_guesses_per_minute_per_address: float = (
        _LIMITS.password_guesses_per_minute_per_address
    )
    max_participants_per_room: int = _LIMITS.max_participants_per_room
    max_rooms: int = _LIMITS.max_rooms
    chat_history: int = _LIMITS.chat_history
    lobby_queue: int = _LIMITS.lobby_queue
    resume_grace: float = _LIMITS.resume_grace
    connections_per_address: int = _LIMITS.connections_per_address
    request_timeout: float = _LIMITS.request_timeout
    idle_socket_timeout: float = _LIMITS.idle_socket_timeout
    # reverse proxies (addresses or CIDR blocks) whose X-Forwarded-For names the client
    trusted_proxies: tuple[str, ...] = ()
    # room tokens (JWT); enabled when a secret or a public key is configured
    token_secret: str = ""
    token_public_key_file: str = ""
    token_issuer: str = ""
    token_audience: str = ""
    allow_anonymous: bool = True
    # TLS (docs/operations.md, "HTTPS"): a certificate and key, or a cached self-signed pair
    domain: str = ""  # the name clients use; checked against the certificate
    tls_cert: str = ""
    tls_key: str = ""
    self_signed: bool = False
    self_signed_dir: str = ""  # default: $XDG_STATE_HOME/tertulia/tls
    # advertised address discovery and TURN relays for clients behind strict firewalls
    stun_server: str = ""  # host:port asked for the media socket's public mapping
    turn_secret: str = ""  # coturn's static-auth-secret (TURN REST API credentials)
    turn_urls: tuple[str, ...] = ()
    turn_ttl: int = 86400  # seconds a TURN credential stays valid

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert or self.self_signed)
    # scale-out: `tertulia shard` and `tertulia bridge` (docs/operations.md, "Scaling out")
    redis: str = ""  # registry URL (redis://host:6379/0); empty: in memory, one process
    region: str = "default"  # this bridge's region
    control_secret: str = ""  # shared by shards and bridges; signs control API tokens
    bridge_id: str = ""  # default: a random id at start
    shard_id: str = ""  # default: a random id at start
    control_port: int = 8080  # a bridge's HTTP port: control API, bridge channel, stats
    public_url: str = ""  # how others reach this process's HTTP port; default from the address
    drain_timeout: float = 3600.0  # SIGTERM on a bridge: exit when empty or after this
    region_header: str = "X-Proxy-Region"  # request header with the participant's region
    bridge_selection: str = "single"  # strategy of tertulia.focus.selection.BridgeSelector
    relay_ip: str = ""  # where other bridges send relay traffic; default: the advertised address
    # `tertulia serve --workers K` (docs/operations.md, "Bridge workers"): K bridge processes
    workers: int = 1  # 1: everything in one process; "auto": one per core (os.cpu_count())
    worker_conference_cap: int = 20  # participants of one conference per worker before spreading

    @property
    def advertised_ip(self) -> str:
        if self.public_ip:
            return self.public_ip
        host = self.media_host or self.host
        if host in ("0.0.0.0", "", "::"):
            return primary_address()
        return host

    @property
    def media_bind(self) -> str:
        return self.media_host or self.host

    def limits(self) -> Limits:
        values = {f.name: getattr(self, f.name) for f in fields(Limits) if hasattr(self, f.name)}
        return Limits(**values)

    def proxies(self) -> TrustedProxies:
        return TrustedProxies.parse(self.trusted_proxies)

    def token_settings(self) -> TokenSettings:
        public_key = None
        if self.token_public_key_file:
            public_key = Path(self.token_public_key_file).read_text()
        return TokenSettings(
            enabled=bool(self.token_secret or public_key),
            allow_anonymous=self.allow_anonymous,
            hs256_secret=self.token_secret or None,
            rs256_public_key=public_key,
            issuer=self.token_issuer or None,
            audience=self.token_audience or None,
        )


def primary_address() -> str:
    """The address of the interface the default route uses (the "host address" when listening
    on all interfaces); 127.0.0.1 when there is none. Connecting a UDP socket sends nothing."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only used to pick a route
            address: str = probe.getsockname()[0]
            return address
    except OSError:
        return "127.0.0.1"


def _coerce(name: str, value: Any) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    if name == "workers" and isinstance(value, str) and value.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        if kind in ("int", int):
            return int(value)
        if kind in ("float", float):
            return float(value)
        if kind == "tuple[str, ...]":
            items = value.split(",") if isinstance(value, str) else list(value)
            if not all(isinstance(item, str) for item in items):
                raise ValueError(value)
            return tuple(item.strip() for item in items if item.strip())
        if kind in ("bool", bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected {kind}, got {value!r}") from exc


def _known(name: str) -> bool:
    return name in {f.name for f in fields(Settings)}


def from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    # Accept both a flat file and one with a [tertulia] table.
    table = data.get("tertulia", data)
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if not _known(name):
            raise ConfigError(f"{path}: unknown setting {key!r}")
        out[name] = _coerce(name, value)
    return out


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if _known(name):
            out[name] = _coerce(name, value)
    return out


def validate(settings: Settings) -> Settings:
    if not 0 < settings.port < 65536:
        raise ConfigError(f"port out of range: {settings.port}")
    if not 0 < settings.media_port < 65536:
        raise ConfigError(f"media_port out of range: {settings.media_port}")
    if settings.log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
    if not 1 <= settings.slots <= 32:
        raise ConfigError("slots must be between 1 and 32")
    if settings.consent_timeout <= 0:
        raise ConfigError("consent_timeout must be positive")
    for name in (
        "max_message_bytes", "messages_per_second", "message_burst",
        "joins_per_second_per_address", "join_burst_per_address",
        "password_guesses_per_minute", "password_guesses_per_minute_per_address",
        "max_participants_per_room", "max_rooms", "chat_history", "lobby_queue",
        "connections_per_address", "request_timeout", "idle_socket_timeout",
    ):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name} must be positive")
    _validate_cluster(settings)
    try:
        settings.proxies()
    except ValueError as exc:
        raise ConfigError(f"trusted_proxies: {exc}") from exc
    if settings.resume_grace < 0:
        raise ConfigError("resume_grace must not be negative")
    if settings.token_public_key_file and not Path(settings.token_public_key_file).is_file():
        raise ConfigError(f"token_public_key_file {settings.token_public_key_file!r} not found")
    try:
        TokenVerifier(settings.token_settings())
    except ValueError as exc:
        raise ConfigError(f"tokens: {exc}") from exc
    _validate_tls(settings)
    _validate_relays(settings)
    try:
        ipaddress.ip_address(settings.advertised_ip)
    except ValueError as exc:
        raise ConfigError(
            f"public_ip must be an IP address, got {settings.advertised_ip!r}"
        ) from exc
    return replace(settings, log_level=settings.log_level.lower())


def _validate_tls(settings: Settings) -> None:
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("tls_cert and tls_key go together (--cert and --key)")
    if settings.self_signed and settings.tls_cert:
        raise ConfigError("choose either self_signed or tls_cert/tls_key, not both")
    for name in ("tls_cert", "tls_key"):
        path = getattr(settings, name)
        if path and not Path(path).is_file():
            raise ConfigError(f"{name} {path!r} not found")
    if settings.domain and not _HOSTNAME.fullmatch(settings.domain):
        try:
            ipaddress.ip_address(settings.domain)
        except ValueError as exc:
            raise ConfigError(f"domain must be a DNS name, got {settings.domain!r}") from exc


_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*"
                       r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.?")
_ICE_URL = re.compile(r"(stun|stuns|turn|turns):[^\s?]+(\?transport=(udp|tcp))?")


def split_host_port(value: str, name: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port); ConfigError otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name} must be host:port, got {value!r}")
    return host, int(port)


def _validate_relays(settings: Settings) -> None:
    if settings.stun_server:
        split_host_port(settings.stun_server, "stun_server")
    for url in settings.turn_urls:
        if not _ICE_URL.fullmatch(url):
            raise ConfigError(
                f"turn_urls: {url!r} is not a STUN/TURN URL (RFC 7065), e.g. "
                "turn:turn.example.org:3478?transport=tcp"
            )
    has_turn = any(url.startswith("turn") for url in settings.turn_urls)
    if has_turn and not settings.turn_secret:
        raise ConfigError("turn_urls lists TURN servers but turn_secret is not set")
    if settings.turn_secret and not has_turn:
        raise ConfigError("turn_secret is set but turn_urls lists no turn: or turns: URL")
    if settings.turn_ttl <= 0:
        raise ConfigError("turn_ttl must be positive")


def _validate_cluster(settings: Settings) -> None:
    if not 0 < settings.control_port < 65536:
        raise ConfigError(f"control_port out of range: {settings.control_port}")
    if settings.drain_timeout <= 0:
        raise ConfigError("drain_timeout must be positive")
    if settings.control_secret and len(settings.control_secret.encode()) < 32:
        # RFC 7518 §3.2: an HS256 key at least as long as the hash output
        raise ConfigError("control_secret must be at least 32 bytes (use a random string)")
    if settings.redis and not settings.redis.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("redis must be a URL: redis://host:port/db")
    if settings.public_url and not settings.public_url.startswith(("http://", "https://")):
        raise ConfigError("public_url must start with http:// or https://")
    if not settings.region or not settings.region_header:
        raise ConfigError("region and region_header must not be empty")
    if settings.relay_ip:
        try:
            ipaddress.ip_address(settings.relay_ip)
        except ValueError as exc:
            raise ConfigError(
                f"relay_ip must be an IP address, got {settings.relay_ip!r}") from exc
    if not 1 <= settings.workers <= MAX_WORKERS:
        raise ConfigError(f"workers must be between 1 and {MAX_WORKERS} (or auto)")
    if settings.media_port + settings.workers - 1 > 65535:
        raise ConfigError(f"workers use udp media_port..media_port+{settings.workers - 1}: "
                          "past 65535")
    if settings.worker_conference_cap < 0:
        raise ConfigError("worker_conference_cap must be >= 0 (0 = no cap)")


def load(
    config_file: Path | None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Defaults < TOML file < environment < flags (only flags given explicitly)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if config_file is None and env.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(env[ENV_PREFIX + "CONFIG"])
    if config_file is not None:
        values.update(from_toml(config_file))
    values.update(from_env(env))
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _coerce(key, value)
    return validate(Settings(**values))
