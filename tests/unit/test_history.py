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


def test_history_lookup_out_of_order_and_repeated() -> None:
    history = PacketHistory(max_age=1.0, max_packets=8)
    for seq in (65533, 65534, 65535, 0, 2, 1):  # across the wrap, 1 after 2
        history.add(seq, bytes([seq & 0xFF]), now=0.0)
    assert [history.get(s, now=0.1) for s in (65533, 0, 1, 2)] == [b"\xfd", b"\x00", b"\x01",
                                                                    b"\x02"]
    assert history.get(3, now=0.1) is None
    history.add(0, b"again", now=0.2)  # the same sequence number again replaces the entry
    assert len(history) == 6
    assert history.get(0, now=0.3) == b"again"
    assert history.newest(3, now=0.3) == [b"again", b"\x01", b"\x02"]
    for seq in range(3, 20):  # count bound keeps the newest
        history.add(seq, bytes([seq]), now=0.4)
    assert len(history) == 8 and history.get(11, now=0.4) is None
    assert history.get(12, now=0.4) == bytes([12])


def test_history_joins_header_and_payload_kept_apart() -> None:
    history = PacketHistory(max_age=1.0)
    payload = b"shared payload"
    history.add(7, b"head-7|", now=0.0, payload=payload)
    history.add(8, b"whole packet 8", now=0.0)
    assert history.get(7, now=0.5) == b"head-7|shared payload"
    assert history.newest(2, now=0.5) == [b"whole packet 8", b"head-7|shared payload"]
