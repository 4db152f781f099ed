from tertulia.signal.limits import AbuseMeter, KeyedLimiter, TokenBucket


def test_token_bucket_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.allow(0.4)  # 0.8 tokens
    assert bucket.allow(0.5)  # 1.0 token
    assert bucket.allow(10.0) and bucket.allow(10.0) and bucket.allow(10.0)
    assert not bucket.allow(10.0)  # capped at burst


def test_keyed_limiter_is_per_key_and_bounded() -> None:
    limiter = KeyedLimiter(rate=1.0, burst=1.0, max_keys=3)
    assert limiter.allow("a", 0.0) and not limiter.allow("a", 0.0)
    assert limiter.allow("b", 0.0)
    for key in ("c", "d", "e"):
        limiter.allow(key, 0.0)
    assert len(limiter) == 3
    assert limiter.allow("a", 0.0)  # "a" was forgotten (least recently used)


def test_abuse_meter_window() -> None:
    meter = AbuseMeter(window=10.0, threshold=3)
    assert not any(meter.refused(1.0) for _ in range(3))
    assert meter.refused(1.5)
    assert not meter.refused(20.0)  # new window
