"""Settings: defaults, then a TOML file, then environment variables, then command-line flags.

Validated once at start; the result is frozen.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from tertulia.signal.limits import Limits
from tertulia.signal.tokens import TokenSettings, TokenVerifier

ENV_PREFIX = "TERTULIA_"
LOG_LEVELS = ("debug", "info", "warning", "error")


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
    # room tokens (JWT); enabled when a secret or a public key is configured
    token_secret: str = ""
    token_public_key_file: str = ""
    token_issuer: str = ""
    token_audience: str = ""
    allow_anonymous: bool = True

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
    try:
        if kind in ("int", int):
            return int(value)
        if kind in ("float", float):
            return float(value)
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
    if settings.resume_grace < 0:
        raise ConfigError("resume_grace must not be negative")
    if settings.token_public_key_file and not Path(settings.token_public_key_file).is_file():
        raise ConfigError(f"token_public_key_file {settings.token_public_key_file!r} not found")
    try:
        TokenVerifier(settings.token_settings())
    except ValueError as exc:
        raise ConfigError(f"tokens: {exc}") from exc
    try:
        ipaddress.ip_address(settings.advertised_ip)
    except ValueError as exc:
        raise ConfigError(
            f"public_ip must be an IP address, got {settings.advertised_ip!r}"
        ) from exc
    return replace(settings, log_level=settings.log_level.lower())


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
