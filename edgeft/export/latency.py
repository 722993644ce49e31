"""Latency of several ONNX files on this machine with the bench's machinery: one runner process
per model, timed in blocks interleaved across the models, batch 1 on real held-out samples."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from edgeft.bench.driver import IDLE_GAP_S
from edgeft.bench.feeds import write_feeds
from edgeft.bench.process import RunnerProcess
from edgeft.bench.stats import LatencyStats
from edgeft.bench.targets import RUNNER
from edgeft.outputs import scratch


def time_models(models: dict[str, Path], sets: list[dict[str, np.ndarray]], threads: int, rounds: int = 5,
                min_time: float = 1.0, warmup: int = 5) -> dict[str, LatencyStats]:
    """p50 and friends per model name; ``sets`` are cycled through (batch-1 feeds of real samples)."""
    with scratch("doctor") as tmp:
        feeds = Path(tmp) / "feeds.npz"
        write_feeds(feeds, {"b1": sets})
        processes = {name: RunnerProcess(name, [sys.executable, str(RUNNER), str(path), str(feeds)])
                     for name, path in models.items()}
        try:
            for p in processes.values():
                p.request("load", threads=threads)
                p.request("prepare", key="b1", warmup=warmup)
            samples: dict[str, list[float]] = {name: [] for name in models}
            order = list(processes)
            for r in range(rounds):
                for name in order[r % len(order):] + order[:r % len(order)]:
                    time.sleep(IDLE_GAP_S)
                    samples[name] += processes[name].request("time", min_time=min_time / rounds)["times"]
        finally:
            for p in processes.values():
                p.close()
    return {name: LatencyStats.from_seconds(times) for name, times in samples.items()}
