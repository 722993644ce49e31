"""Latency statistics agree with numpy on known samples."""

from __future__ import annotations

import numpy as np
import pytest

from edgeft.bench.stats import LatencyStats, percentile


@pytest.mark.parametrize("values", [[5.0], [3.0, 1.0], [1.0, 2.0, 3.0, 4.0], list(np.random.default_rng(0).gamma(2.0, 3.0, 101)),
                                    list(np.random.default_rng(1).normal(10, 2, 1000))])
@pytest.mark.parametrize("q", [0, 1, 37.5, 50, 90, 99, 100])
def test_percentile_matches_numpy(values, q):
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12, abs=1e-12)


def test_latency_stats_match_numpy_in_milliseconds():
    seconds = np.random.default_rng(2).lognormal(-5, 0.3, 257)
    stats = LatencyStats.from_seconds(list(seconds))
    ms = seconds * 1000
    assert stats.runs == 257
    assert stats.min == pytest.approx(ms.min()) and stats.max == pytest.approx(ms.max())
    assert stats.mean == pytest.approx(ms.mean()) and stats.std == pytest.approx(ms.std())
    for q in (50, 90, 99):
        assert getattr(stats, f"p{q}") == pytest.approx(np.percentile(ms, q))
    assert stats.throughput(8) == pytest.approx(8 / seconds.mean())


def test_a_known_sample_by_hand():
    stats = LatencyStats.from_seconds([0.001, 0.002, 0.003, 0.004])
    assert (stats.min, stats.p50, stats.max, stats.mean) == pytest.approx((1.0, 2.5, 4.0, 2.5))
    assert stats.p90 == pytest.approx(3.7) and stats.std == pytest.approx(np.sqrt(1.25))


def test_no_values_is_an_error():
    with pytest.raises(ValueError):
        LatencyStats.from_seconds([])
    with pytest.raises(ValueError):
        percentile([1.0], 101)
