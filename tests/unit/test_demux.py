from tertulia.bridge.transport.demux import Kind, classify


def test_first_byte_ranges_rfc7983() -> None:
    assert classify(b"\x00\x01" + bytes(18)) == Kind.STUN
    assert classify(bytes([3, 0])) == Kind.STUN
    assert classify(bytes([20, 0])) == Kind.DTLS
    assert classify(bytes([22, 0xFE])) == Kind.DTLS
    assert classify(bytes([63, 0])) == Kind.DTLS
    assert classify(bytes([0x80, 96])) == Kind.RTP
    assert classify(bytes([0x80, 0x80 | 111])) == Kind.RTP  # marker set, pt 111
    assert classify(bytes([0x81, 200])) == Kind.RTCP  # SR
    assert classify(bytes([0x8F, 206])) == Kind.RTCP  # PSFB
    assert classify(bytes([0x80, 223])) == Kind.RTCP
    assert classify(bytes([0x80, 224])) == Kind.RTP


def test_unknown_and_short() -> None:
    assert classify(b"") == Kind.UNKNOWN
    assert classify(bytes([10, 0])) == Kind.UNKNOWN
    assert classify(bytes([64, 0])) == Kind.UNKNOWN  # TURN channel range, not used
    assert classify(bytes([200, 0])) == Kind.UNKNOWN
    assert classify(bytes([0x80])) == Kind.UNKNOWN
