"""Runs a benchmark: one runner process per bundle on the target, golden vectors checked first,
then every sweep point timed in blocks interleaved across the bundles (machine drift hits all
alike, and no runtime's spinning threads overlap another's timed block)."""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeft import __version__
from edgeft.bench import feeds as fd
from edgeft.bench.config import BenchConfig
from edgeft.bench.contenders import BundleContender, Contender, TorchBaseline, contenders_of
from edgeft.bench.flops import graph_flops
from edgeft.bench.process import RunnerProcess
from edgeft.bench.schema import BenchReport, GoldenResult, ResultRow
from edgeft.bench.stats import LatencyStats
from edgeft.bench.targets import Target, resolve_target
from edgeft.errors import TargetError, UsageError
from edgeft.manifest import Manifest
from edgeft.outputs import scratch
from edgeft.runtime.golden import judge_golden

IDLE_GAP_S = 0.05
Progress = Callable[[int, int, str], None]


class BenchInterrupted(TargetError):
    """A target failed part-way; ``report`` holds what was measured before."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def _points(config: BenchConfig, manifest: Manifest) -> list[tuple[int, int | None]]:
    text = manifest.task == "text-classification"
    if manifest.app:  # one photo (or text) per call, at the size the app passes
        if text:
            raise UsageError("bench times text app bundles through the bundle they were made from: bench that one")
        if tuple(config.batch_sizes) != (1,) or config.baseline:
            raise UsageError("an app bundle takes one image per call: bench it with --batch-sizes 1 and no --baseline")
        return [(1, None)]
    seqs: list[int | None] = list(config.seq_lengths) if text and config.inputs is None else [None]
    return [(b, s) for b in config.batch_sizes for s in seqs]


def _make_feeds(config: BenchConfig, contender: BundleContender, points: list[tuple[int, int | None]],
                path: Path) -> dict[str, list[dict[str, np.ndarray]]]:
    manifest, bundle = contender.manifest, contender.path
    sets: dict[str, list[dict[str, np.ndarray]]] = {}
    items: list[str] = []
    if config.inputs is not None:
        from edgeft.data.unlabelled import read_samples

        modality, items = read_samples(Path(config.inputs))
        if modality != manifest.modality:
            raise UsageError(f"--inputs {config.inputs} holds {modality}; {contender.name} takes the other kind")
    rng = np.random.default_rng(0)
    for batch, seq in points:
        key = fd.point_key(batch, seq)
        if manifest.app:
            sets[key] = fd.app_sets(items, rng)
        elif items:
            sets[key] = fd.real_sets(manifest, bundle, items, batch)
        elif seq is not None:
            sets[key] = [fd.synthetic_text(manifest, bundle, batch, seq, rng)]
        else:
            sets[key] = [fd.synthetic_image(manifest, batch, rng)]
    fd.write_feeds(path, sets)
    return sets


def _golden(contender: Contender, process: RunnerProcess, golden: dict[str, Any]) -> GoldenResult:
    got = np.asarray(process.request("golden")["logits"], dtype=np.float64)
    expected = np.load(contender.path / golden["file"])["logits"].astype(np.float64)  # hash checked at load
    check = judge_golden(got, expected, float(golden.get("atol", 1e-4)))
    return GoldenResult(contender.name, check.count, check.top1_agreement, check.max_abs_diff, check.atol,
                        check.within_tolerance, check.ok)


class Bench:
    """One call of ``edgeft bench``; ``run`` returns the report."""

    def __init__(self, config: BenchConfig, log: Callable[[str], None] = lambda _: None,
                 progress: Progress | None = None, on_point: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config, self.log, self.progress, self.on_point = config, log, progress, on_point
        found = contenders_of(config.bundles)
        self.first = found[0]
        assert isinstance(self.first, BundleContender)
        self.contenders: list[Contender] = list(found)
        self.target: Target = resolve_target(config.target, config.target_options)
        if config.baseline == "torch":
            if not self.target.local:
                raise UsageError(f"--baseline torch runs on this machine only, not on {config.target}")
            self.contenders.insert(0, TorchBaseline("torch-eager", self.first))
        self.processes: dict[str, RunnerProcess] = {}
        names = [c.name for c in self.contenders]
        reference = config.reference or names[0]
        matches = [c.name for c in self.contenders if reference in (c.name, str(c.path), c.kind if c.kind == "torch" else None)]
        if not matches:
            raise UsageError(f"--reference {reference!r} is none of the bundles: {', '.join(names)}")
        self.points = _points(config, self.first.manifest)
        self.report = BenchReport(
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), edgeft_version=__version__,
            target=config.target, provider=self.target.provider, emulated=self.target.emulated, reference=matches[0],
            settings={"runs": config.runs, "min_time_s": config.min_time, "warmup": config.warmup,
                      "rounds": config.rounds, "inputs": "real: " + config.inputs if config.inputs else "synthetic"},
            bundles=[c.describe() for c in self.contenders])

    def _timing(self) -> tuple[int | None, float, int, int]:
        """Runs and seconds per block, warm-up calls, and calls before each block: emulated
        targets (40-300x slower) time one call per block unless --runs says otherwise."""
        config = self.config
        if self.target.emulated:
            self.log("emulated target: timings are for orientation only, never comparable with native ones")
            per_block = math.ceil(config.runs / config.rounds) if config.runs else 1
            return per_block, 0.0, min(config.warmup, 1), 0
        per_block = math.ceil(config.runs / config.rounds) if config.runs else None
        return per_block, config.min_time / config.rounds, config.warmup, 2

    def run(self) -> BenchReport:
        with scratch("bench") as tmp:
            feeds_file = Path(tmp) / "feeds.npz"
            sets = _make_feeds(self.config, self.first, self.points, feeds_file)
            flops = self._flops(sets)
            try:
                self._measure(feeds_file, flops, sets)
            except TargetError as exc:
                self.report.error = str(exc)
                raise BenchInterrupted(str(exc), self.report.to_dict()) from None
            finally:
                for process in self.processes.values():
                    process.close()
                self.target.close()
        return self.report

    def _flops(self, sets: dict[str, list[dict[str, np.ndarray]]]) -> dict[tuple[str, str], int | None]:
        counts: dict[tuple[str, str], int | None] = {}
        for c in self.contenders:
            for key, feeds in sets.items():
                try:  # the torch baseline's model file is its bundle's: the same work
                    counts[(c.name, key)] = graph_flops(c.model_file, feeds[0])
                except Exception:  # a graph the counter cannot run: report no GFLOP/s rather than fail
                    counts[(c.name, key)] = None
        return counts

    def _start(self, feeds_file: Path) -> None:
        staged = [c for c in self.contenders if c.on_target]
        self.target.open([c.path for c in staged], feeds_file)
        index = {c.name: i for i, c in enumerate(staged)}  # the target staged them in this order
        for c in self.contenders:
            self.processes[c.name] = c.start(self.target, index.get(c.name, -1), feeds_file)
        self.report.fingerprint = self.processes[staged[0].name].ready["fingerprint"]

    def _measure(self, feeds_file: Path, flops: dict[tuple[str, str], int | None],
                 sets: dict[str, list[dict[str, np.ndarray]]]) -> None:
        self._start(feeds_file)
        run = self.processes
        for c in self.contenders:
            if c.golden is not None:  # bundles carry golden vectors
                run[c.name].request("load", threads=1, provider=self.target.provider)
                self.report.golden.append(_golden(c, run[c.name], c.golden))
        cores = self.report.fingerprint.get("logical_cores", 1)
        threads_list = list(self.config.threads) or [cores]
        per_block, block_time, warmup, prewarm = self._timing()
        total = len(threads_list) * len(self.points) * self.config.rounds * len(self.contenders)
        done = 0
        for threads in threads_list:
            loads = {c.name: run[c.name].request("load", threads=threads, provider=self.target.provider)
                     for c in self.contenders}
            for batch, seq in self.points:
                key = fd.point_key(batch, seq)
                first = {c.name: run[c.name].request("prepare", key=key, warmup=warmup)["first_run_s"]
                         for c in self.contenders}
                samples: dict[str, list[float]] = {c.name: [] for c in self.contenders}
                for r in range(self.config.rounds):
                    shift = r % len(self.contenders)
                    for c in self.contenders[shift:] + self.contenders[:shift]:
                        time.sleep(IDLE_GAP_S)  # the last block's spinning threads settle before this one
                        reply = run[c.name].request("time", runs=per_block, min_time=block_time, prewarm=prewarm)
                        samples[c.name] += reply["times"]
                        done += 1
                        if self.progress:
                            self.progress(done, total, f"t{threads} {key} {c.name}")
                rows = [self._row(c, threads, batch, seq, sets[key], samples[c.name], loads[c.name], first[c.name],
                                  flops.get((c.name, key))) for c in self.contenders]
                reference = next(r for r in rows if r.bundle == self.report.reference)
                for row in rows:
                    row.ratio = row.latency_ms["p50"] / reference.latency_ms["p50"]
                self.report.results += rows
                if self.on_point:
                    self.on_point(self.report.to_dict())

    def _row(self, c: Contender, threads: int, batch: int, seq: int | None, sets: list[dict[str, np.ndarray]],
             times: list[float], load: dict[str, Any], first: float, flop: int | None) -> ResultRow:
        stats = LatencyStats.from_seconds(times)
        rss = self.processes[c.name].request("stats")["peak_rss_bytes"]
        tokens = None
        if "attention_mask" in sets[0]:
            tokens = float(np.mean([s["attention_mask"].shape[1] for s in sets]))
        return ResultRow(
            bundle=c.name, kind=c.kind, threads=threads, batch=batch, seq=seq, tokens=tokens,
            provider=load["providers"][0], latency_ms=stats.to_dict(), throughput_per_s=stats.throughput(batch),
            load_s=load["load_s"], first_run_ms=1000 * first, peak_rss_mb=rss / 2**20 if rss else None,
            gflop=flop / 1e9 if flop else None, gflops_per_s=flop / 1e9 / (stats.p50 / 1000) if flop else None,
            samples_ms=[round(1000 * t, 4) for t in times])


def run_bench(config: BenchConfig, log: Callable[[str], None] = lambda _: None, progress: Progress | None = None,
              on_point: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Measure ``config`` and return the report's JSON (``edgeft.bench.schema``); raises ``BenchInterrupted`` (with the partial
    report) when the target fails part-way."""
    return Bench(config, log, progress, on_point).run().to_dict()
