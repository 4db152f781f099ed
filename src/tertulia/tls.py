"""HTTPS/WSS for `tertulia serve`: the server's TLS context, a cached self-signed certificate
for LAN use, and pure certificate checks (`tertulia doctor`).

Browsers grant camera and microphone only to secure contexts (https, or http on localhost), so
anything but a one-machine trial needs TLS. Certificates are parsed and made with the
`cryptography` package; the server context is the standard library's `ssl`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tertulia.config import Settings

SELF_SIGNED_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=30)  # a cached self-signed certificate is replaced this early
EXPIRY_WARNING = dt.timedelta(days=14)  # doctor warns when a certificate expires this soon
CERT_NAME = "tertulia-self-signed.crt"
KEY_NAME = "tertulia-self-signed.key"


class TlsError(ValueError):
    """A certificate or key that cannot be used, with a message that says why."""


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    subject_names: tuple[str, ...]  # DNS names of the subjectAltName extension
    subject_addresses: tuple[str, ...]  # IP addresses of the subjectAltName extension
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint: str  # SHA-256, colon-separated upper-case hex (what browsers display)
    self_signed: bool


def default_self_signed_dir() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "tertulia" / "tls"


# --- reading and checking (pure: bytes and `now` in, values out) ---


def load_certificate(pem: bytes) -> x509.Certificate:
    """The first (leaf) certificate of a PEM file that may hold a whole chain."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise TlsError(f"not a PEM certificate: {exc}") from exc
    return certs[0]


def load_private_key(pem: bytes) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(f"not an unencrypted PEM private key: {exc}") from exc


def describe(cert: x509.Certificate) -> CertificateInfo:
    names: list[str] = []
    addresses: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        addresses = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return CertificateInfo(
        subject_names=tuple(names),
        subject_addresses=tuple(addresses),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        self_signed=cert.issuer == cert.subject,
    )


def key_matches(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki))


def name_matches(info: CertificateInfo, name: str) -> bool:
    """Does the certificate cover `name` (a DNS name or an IP address)?

    RFC 6125 §6.4: only subjectAltName entries count (browsers ignore the subject CN); a
    wildcard is allowed only as the whole left-most label and matches exactly one label
    (§6.4.3). IP addresses must appear as iPAddress entries (RFC 5280 §4.2.1.6).
    """
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        return any(ipaddress.ip_address(a) == ip for a in info.subject_addresses)
    wanted = name.rstrip(".").lower().split(".")
    for pattern in info.subject_names:
        labels = pattern.rstrip(".").lower().split(".")
        if len(labels) != len(wanted):
            continue
        if labels[0] == "*" and len(labels) > 2:
            if labels[1:] == wanted[1:]:
                return True
        elif labels == wanted:
            return True
    return False


def problems(
    cert_pem: bytes, key_pem: bytes, domain: str, now: dt.datetime
) -> tuple[list[str], list[str], CertificateInfo | None]:
    """(failures, warnings, info) for a certificate/key pair served for `domain` at `now`."""
    try:
        cert = load_certificate(cert_pem)
        key = load_private_key(key_pem)
    except TlsError as exc:
        return [str(exc)], [], None
    info = describe(cert)
    failures: list[str] = []
    warnings: list[str] = []
    if now < info.not_before:
        failures.append(f"not valid yet (valid from {info.not_before:%Y-%m-%d %H:%M} UTC)")
    if now >= info.not_after:
        failures.append(f"expired on {info.not_after:%Y-%m-%d %H:%M} UTC")
    elif info.not_after - now < EXPIRY_WARNING:
        warnings.append(f"expires on {info.not_after:%Y-%m-%d} (in less than 14 days)")
    if not key_matches(cert, key):
        failures.append("the private key does not belong to the certificate")
    if domain and not name_matches(info, domain):
        covered = ", ".join(info.subject_names + info.subject_addresses) or "no names"
        failures.append(f"does not cover {domain} (it covers {covered})")
    if info.self_signed:
        warnings.append("self-signed: every browser shows a warning until the user accepts it")
    return failures, warnings, info


# --- the server context ---


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """TLS 1.2+ server context for the HTTP listener; raises TlsError with the reason."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])  # aiohttp's server speaks HTTP/1.1 only
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise TlsError(f"cannot read {exc.filename}: no such file") from exc
    except PermissionError as exc:
        raise TlsError(f"cannot read {exc.filename}: permission denied") from exc
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(reason).upper():
            reason = "the private key does not belong to the certificate"
        raise TlsError(f"cannot use {cert_file} with {key_file}: {reason}") from exc
    return context


# --- self-signed certificates for LAN use ---


def machine_names(domain: str = "", extra_addresses: tuple[str, ...] = ()) -> list[str]:
    """Names and addresses a LAN participant may type: localhost, the host name, its FQDN,
    `domain`, loopback and this machine's addresses."""
    names = ["localhost", "127.0.0.1", "::1"]
    for name in (socket.gethostname(), socket.getfqdn(), domain, *extra_addresses):
        if name and name not in names:
            names.append(name)
    try:
        for entry in socket.getaddrinfo(socket.gethostname(), None):
            address = str(entry[4][0])
            if address not in names:
                names.append(address)
    except OSError:
        pass
    return names


def make_self_signed(
    names: list[str], now: dt.datetime, days: int = SELF_SIGNED_DAYS
) -> tuple[bytes, bytes]:
    """A P-256 certificate for `names` (DNS names and IP addresses) and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "tertulia"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tertulia self-signed"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate small clock differences
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _usable(cert_file: Path, key_file: Path, names: list[str], now: dt.datetime) -> bool:
    try:
        failures, _warnings, info = problems(
            cert_file.read_bytes(), key_file.read_bytes(), "", now + RENEW_BEFORE
        )
    except OSError:
        return False
    return not failures and info is not None and all(name_matches(info, n) for n in names)


def ensure_self_signed(
    directory: Path, names: list[str], now: dt.datetime
) -> tuple[Path, Path, bool]:
    """(certificate, key, created): reuse the cached pair while it is valid for 30 more days
    and covers every name; otherwise make a new one. The key file is readable by its owner
    only."""
    cert_file, key_file = directory / CERT_NAME, directory / KEY_NAME
    if _usable(cert_file, key_file, names, now):
        return cert_file, key_file, False
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert_pem, key_pem = make_self_signed(names, now)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key_pem)
        cert_file.write_bytes(cert_pem)
    except OSError as exc:
        raise TlsError(f"cannot write a self-signed certificate in {directory}: {exc}") from exc
    return cert_file, key_file, True


def self_signed_instructions(url: str, fingerprint: str) -> str:
    """What `serve --self-signed` prints: how participants get past the browser warning."""
    return "\n".join(
        [
            "  TLS: self-signed certificate (for a LAN; use a real certificate on the internet).",
            f"  Each participant's browser warns once when opening {url}:",
            "    Chrome/Edge: Advanced -> Proceed;  Firefox: Advanced -> Accept the Risk and "
            "Continue;",
            "    Safari: Show Details -> visit this website.",
            f"  To be sure it is this server, compare the SHA-256 fingerprint: {fingerprint}",
        ]
    )


# --- what `serve` uses ---


@dataclass(frozen=True, slots=True)
class ServerTls:
    context: ssl.SSLContext
    info: CertificateInfo
    cert_file: Path
    created: bool  # a new self-signed certificate was made at this start


def prepare(settings: Settings, now: dt.datetime | None = None) -> ServerTls | None:
    """The TLS context `settings` ask for (None for plain HTTP); raises TlsError."""
    if not settings.tls:
        return None
    now = now or dt.datetime.now(dt.UTC)
    created = False
    if settings.self_signed:
        directory = Path(settings.self_signed_dir) if settings.self_signed_dir else (
            default_self_signed_dir()
        )
        extra = tuple(a for a in (settings.public_ip, settings.host, settings.advertised_ip)
                      if a and a not in ("0.0.0.0", "::"))
        names = machine_names(settings.domain, extra)
        cert_file, key_file, created = ensure_self_signed(directory, names, now)
    else:
        cert_file, key_file = Path(settings.tls_cert), Path(settings.tls_key)
    context = server_context(cert_file, key_file)
    info = describe(load_certificate(cert_file.read_bytes()))
    return ServerTls(context, info, cert_file, created)


def add_route(app: web.Application, server_tls: ServerTls | None) -> None:
    """`GET /about/tls`: lets the home page explain a self-signed certificate."""
    body: dict[str, object] = {"tls": server_tls is not None}
    if server_tls is not None:
        body |= {
            "selfSigned": server_tls.info.self_signed,
            "fingerprint": server_tls.info.fingerprint,
            "notAfter": server_tls.info.not_after.isoformat(),
        }

    async def about_tls(_: web.Request) -> web.Response:
        return web.json_response(body)

    app.router.add_get("/about/tls", about_tls)
