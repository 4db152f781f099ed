from pathlib import Path

import pytest

from tertulia.config import ConfigError, load


def test_defaults() -> None:
    s = load(None, env={})
    assert (s.host, s.port, s.media_port, s.log_level) == ("127.0.0.1", 8000, 10000, "info")
    assert s.advertised_ip == "127.0.0.1"


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('port = 9000\nmedia-port = 11000\npublic_ip = "192.0.2.7"\n')
    s = load(path, env={"TERTULIA_PORT": "9100"}, overrides={"media_port": 12000})
    assert s.port == 9100  # env beats file
    assert s.media_port == 12000  # flag beats file
    assert s.advertised_ip == "192.0.2.7"


def test_config_file_from_env_and_table(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[tertulia]\nlog_level = "DEBUG"\n')
    assert load(None, env={"TERTULIA_CONFIG": str(path)}).log_level == "debug"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("port = 70000", "port"),
        ('bogus = 1', "unknown setting"),
        ('port = "abc"', "port"),
        ('public_ip = "not-an-ip"', "public_ip"),
        ("port = ", "t.toml"),
        ('token_secret = "short"', "tokens"),
        ("max_rooms = 0", "max_rooms"),
        ('allow_anonymous = "perhaps"', "allow_anonymous"),
        ("request_timeout = 0", "request_timeout must be positive"),
        ("idle_socket_timeout = -1", "idle_socket_timeout must be positive"),
    ],
)
def test_invalid_settings_are_reported(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle):
        load(path, env={})


def test_cluster_settings_are_validated() -> None:
    from tertulia.config import Settings, validate

    ok = validate(Settings(control_secret="s" * 32, redis="redis://127.0.0.1:6379/0",
                           region="eu", drain_timeout=5))
    assert ok.region == "eu"
    for bad in (dict(control_secret="short"), dict(redis="localhost:6379"),
                dict(control_port=0), dict(drain_timeout=0), dict(public_url="ftp://x"),
                dict(region="")):
        with pytest.raises(ConfigError):
            validate(Settings(**bad))  # type: ignore[arg-type]


def test_slow_client_timeouts_reach_the_limits() -> None:
    s = load(None, env={"TERTULIA_REQUEST_TIMEOUT": "5", "TERTULIA_IDLE_SOCKET_TIMEOUT": "20"})
    limits = s.limits()
    assert (limits.request_timeout, limits.idle_socket_timeout) == (5.0, 20.0)
    assert (load(None, env={}).request_timeout, load(None, env={}).idle_socket_timeout) == (
        15.0, 60.0)
