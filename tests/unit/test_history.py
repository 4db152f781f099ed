from tertulia.bridge.rtp.history import PacketHistory


def test_history_bounded_by_age_and_count() -> None:
    history = PacketHistory(max_age=1.0, max_packets=3)
    for seq in range(5):
        history.add(seq, bytes([seq]), now=0.1 * seq)
    assert len(history) == 3
    assert history.get(0, now=0.5) is None
    assert history.get(4, now=0.5) == b"\x04"
    assert history.get(4, now=1.45) is None  # older than max_age at lookup
    history.add(65535, b"x", now=2.0)
    assert history.get(2, now=2.0) is None  # expired on insert
    assert len(history) == 1
