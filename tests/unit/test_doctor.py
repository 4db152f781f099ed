import socket
from pathlib import Path

from tertulia.config import Settings
from tertulia.doctor import (
    check_advertised,
    check_clock,
    check_nofile,
    check_port,
    check_tokens,
    check_udp_buffers,
    main,
)


def test_nofile() -> None:
    assert check_nofile(1024, 1_048_576).status == "pass"
    low = check_nofile(1024, 4096)
    assert low.status == "warn" and "LimitNOFILE" in low.fix


def test_port_free_and_taken() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        taken = check_port(socket.SOCK_DGRAM, "127.0.0.1", port, "media UDP port")
        assert taken.status == "fail" and str(port) in taken.detail
    assert check_port(socket.SOCK_DGRAM, "127.0.0.1", port, "media UDP port").status == "pass"


def test_advertised_address_works_with_two_breaks_with_three() -> None:
    local = {"127.0.0.1", "10.1.2.3"}
    assert check_advertised("127.0.0.1", "127.0.0.1", False, local).status == "pass"
    assert check_advertised("0.0.0.0", "127.0.0.1", False, local).status == "fail"
    private = check_advertised("0.0.0.0", "10.1.2.3", True, local)
    assert private.status == "warn" and "--public-ip" in private.fix
    assert check_advertised("0.0.0.0", "1.2.3.4", True, local).status == "pass"
    assert check_advertised("1.2.3.4", "1.2.3.4", False, local).status == "warn"


def test_udp_buffers(tmp_path: Path) -> None:
    (tmp_path / "rmem_max").write_text("212992\n")
    (tmp_path / "wmem_max").write_text("212992\n")
    low = check_udp_buffers(tmp_path)
    assert low.status == "warn" and "sysctl" in low.fix
    (tmp_path / "rmem_max").write_text("26214400\n")
    (tmp_path / "wmem_max").write_text("26214400\n")
    assert check_udp_buffers(tmp_path).status == "pass"
    assert check_udp_buffers(tmp_path / "missing").status == "warn"


def test_clock_and_tokens() -> None:
    assert check_clock(1_795_000_000).status == "pass"
    assert check_clock(0).status == "fail"
    assert "not configured" in check_tokens(Settings()).detail
    enabled = check_tokens(Settings(token_secret="x" * 40, allow_anonymous=False))
    assert "refused" in enabled.detail


def test_main_fails_when_the_media_port_is_taken(capsys: object) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            http = free.getsockname()[1]
        assert main(Settings(port=http, media_port=port)) == 1
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "FAIL  media UDP port" in out and "failed" in out
