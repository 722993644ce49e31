"""Latency statistics in the standard library only (so they can be checked against numpy)."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks:
    numpy's default ``np.percentile(values, q)``."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency in milliseconds; ``std`` is the population standard deviation (numpy's ``std``)."""

    runs: int
    min: float
    mean: float
    std: float
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def from_seconds(cls, seconds: Sequence[float]) -> "LatencyStats":
        if not seconds:
            raise ValueError("no timings")
        ms = [1000.0 * s for s in seconds]
        return cls(runs=len(ms), min=min(ms), mean=statistics.fmean(ms), std=statistics.pstdev(ms),
                   p50=percentile(ms, 50), p90=percentile(ms, 90), p99=percentile(ms, 99), max=max(ms))

    def throughput(self, batch: int) -> float:
        """Items per second at the mean latency."""
        return 1000.0 * batch / self.mean

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
