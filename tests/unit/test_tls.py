"""TLS: self-signed certificates, certificate checks (doctor), server context, settings."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest

from tertulia import tls
from tertulia.config import ConfigError, Settings, load
from tertulia.doctor import check_certificate, check_tls

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def pair(names: list[str], now: dt.datetime = NOW, days: int = 365) -> tuple[bytes, bytes]:
    return tls.make_self_signed(names, now, days)


def test_self_signed_covers_names_and_addresses() -> None:
    cert_pem, key_pem = pair(["meet.lan", "192.168.1.5", "::1"])
    info = tls.describe(tls.load_certificate(cert_pem))
    assert info.subject_names == ("meet.lan",)
    assert set(info.subject_addresses) == {"192.168.1.5", "::1"}
    assert info.self_signed
    assert len(info.fingerprint.split(":")) == 32
    assert tls.name_matches(info, "MEET.lan.")
    assert tls.name_matches(info, "192.168.1.5")
    assert not tls.name_matches(info, "192.168.1.6")
    assert not tls.name_matches(info, "other.lan")
    assert tls.key_matches(tls.load_certificate(cert_pem), tls.load_private_key(key_pem))


def test_wildcards_match_one_leftmost_label_only() -> None:
    info = tls.describe(tls.load_certificate(pair(["*.example.org", "*.org"])[0]))
    assert tls.name_matches(info, "meet.example.org")
    assert not tls.name_matches(info, "example.org")
    assert not tls.name_matches(info, "a.meet.example.org")
    assert not tls.name_matches(info, "example.com")  # "*.org" is too wide to count


def test_problems_of_a_good_pair_are_only_the_self_signed_warning() -> None:
    cert_pem, key_pem = pair(["meet.example.org"])
    failures, warnings, info = tls.problems(cert_pem, key_pem, "meet.example.org", NOW)
    assert failures == [] and info is not None
    assert warnings == ["self-signed: every browser shows a warning until the user accepts it"]


@pytest.mark.parametrize(
    ("when", "domain", "wrong_key", "needle"),
    [
        (NOW + dt.timedelta(days=400), "", False, "expired"),
        (NOW - dt.timedelta(days=1), "", False, "not valid yet"),
        (NOW, "", True, "private key does not belong"),
        (NOW, "meet.example.com", False, "does not cover meet.example.com"),
    ],
)
def test_doctor_certificate_failures(
    when: dt.datetime, domain: str, wrong_key: bool, needle: str
) -> None:
    cert_pem, key_pem = pair(["meet.example.org"])
    if wrong_key:
        key_pem = pair(["meet.example.org"])[1]
    check = check_certificate(cert_pem, key_pem, domain, when)
    assert check.status == "fail" and needle in check.detail, check
    assert "--cert" in check.fix


def test_doctor_certificate_pass_and_expiry_warning() -> None:
    cert_pem, key_pem = pair(["meet.example.org"], days=60)
    # Self-signed always warns; a soon-expiring one says so too.
    ok = check_certificate(cert_pem, key_pem, "meet.example.org", NOW)
    assert ok.status == "warn" and "valid until" in ok.detail and "expires" not in ok.detail
    soon = check_certificate(cert_pem, key_pem, "meet.example.org", NOW + dt.timedelta(days=50))
    assert soon.status == "warn" and "expires on" in soon.detail


def test_doctor_certificate_garbage() -> None:
    check = check_certificate(b"not a certificate", b"", "", NOW)
    assert check.status == "fail" and "PEM" in check.detail


def test_doctor_tls_settings(tmp_path: Path) -> None:
    assert check_tls(Settings(), NOW).status == "warn"
    planned = check_tls(Settings(self_signed=True, self_signed_dir=str(tmp_path)), NOW)
    assert planned.status == "pass" and "will create" in planned.detail
    tls.ensure_self_signed(tmp_path, ["localhost"], NOW)
    cached = check_tls(Settings(self_signed=True, self_signed_dir=str(tmp_path)), NOW)
    assert cached.status == "warn" and "self-signed" in cached.detail
    missing = Settings(tls_cert=str(tmp_path / "nope.crt"), tls_key=str(tmp_path / "nope.key"))
    assert check_tls(missing, NOW).status == "fail"


def test_self_signed_is_cached_and_renewed(tmp_path: Path) -> None:
    cert, key, created = tls.ensure_self_signed(tmp_path, ["localhost", "127.0.0.1"], NOW)
    assert created and key.stat().st_mode & 0o077 == 0  # the key is private to its owner
    again = tls.ensure_self_signed(tmp_path, ["localhost", "127.0.0.1"], NOW + dt.timedelta(1))
    assert again == (cert, key, False)
    first = cert.read_bytes()
    # A new address of the machine is not covered: a new certificate is made.
    _, _, created = tls.ensure_self_signed(tmp_path, ["localhost", "10.0.0.9"], NOW)
    assert created and cert.read_bytes() != first
    # Close to expiry (30 days before), it is replaced.
    _, _, created = tls.ensure_self_signed(tmp_path, ["localhost"], NOW + dt.timedelta(340))
    assert created


def test_server_context(tmp_path: Path) -> None:
    cert_pem, key_pem = pair(["localhost"])
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    (tmp_path / "other.pem").write_bytes(pair(["localhost"])[1])
    context = tls.server_context(tmp_path / "c.pem", tmp_path / "k.pem")
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises(tls.TlsError, match="does not belong"):
        tls.server_context(tmp_path / "c.pem", tmp_path / "other.pem")
    with pytest.raises(tls.TlsError, match="no such file"):
        tls.server_context(tmp_path / "missing.pem", tmp_path / "k.pem")


def test_tls_settings(tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    s = load(None, env={}, overrides={"tls_cert": str(cert), "tls_key": str(cert),
                                      "domain": "meet.example.org"})
    assert s.tls and s.domain == "meet.example.org"
    assert load(None, env={"TERTULIA_SELF_SIGNED": "yes"}).tls
    assert not load(None, env={}).tls
    with pytest.raises(ConfigError, match="go together"):
        load(None, env={}, overrides={"tls_cert": str(cert)})
    with pytest.raises(ConfigError, match="not both"):
        load(None, env={}, overrides={"tls_cert": str(cert), "tls_key": str(cert),
                                      "self_signed": True})
    with pytest.raises(ConfigError, match="not found"):
        load(None, env={}, overrides={"tls_cert": "/nope", "tls_key": "/nope"})
    with pytest.raises(ConfigError, match="domain"):
        load(None, env={}, overrides={"domain": "bad domain!"})


def test_public_url() -> None:
    from tertulia.serve import public_url

    assert public_url(Settings()) == "http://localhost:8000/"
    assert public_url(Settings(self_signed=True, port=443)) == "https://localhost/"
    assert public_url(Settings(self_signed=True, host="0.0.0.0", public_ip="192.0.2.4")) == (
        "https://192.0.2.4:8000/"
    )
    assert public_url(Settings(self_signed=True, domain="meet.example.org", port=8443)) == (
        "https://meet.example.org:8443/"
    )
