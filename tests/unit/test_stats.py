from tertulia.bridge.stats import StatsSampler, Totals, rates_between


def test_rates_between_samples() -> None:
    rates = rates_between(Totals(100, 50, 10_000, 5_000), Totals(600, 1050, 60_000, 105_000), 5)
    assert rates.packet_rate_download == 100 and rates.packet_rate_upload == 200
    assert rates.bit_rate_download == 80_000 and rates.bit_rate_upload == 160_000
    assert rates_between(Totals(), Totals(1, 1, 1, 1), 0).packet_rate_download == 0


def test_sampler_reports_rates_per_interval() -> None:
    sampler = StatsSampler(interval=5.0)
    assert sampler.rates(Totals(), 0.0).packet_rate_download == 0
    assert sampler.rates(Totals(packets_in=50), 2.0).packet_rate_download == 0  # too soon
    assert sampler.rates(Totals(packets_in=500), 5.0).packet_rate_download == 100
    assert sampler.rates(Totals(packets_in=600), 6.0).packet_rate_download == 100  # kept
