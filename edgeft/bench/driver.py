"""Runs a benchmark: one runner process per bundle on the target, golden vectors checked first,
then every sweep point timed in blocks interleaved across the bundles (machine drift hits all
alike, and no runtime's spinning threads overlap another's timed block)."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeft import __version__
from edgeft.bench import feeds as fd
from edgeft.bench.config import BenchConfig
from edgeft.bench.flops import graph_flops
from edgeft.bench.process import RunnerProcess
from edgeft.bench.stats import LatencyStats
from edgeft.bench.targets import Target, resolve_target
from edgeft.errors import TargetError, UsageError
from edgeft.manifest import Manifest, read_manifest, sha256_file
from edgeft.outputs import scratch
from edgeft.runtime.golden import judge_golden

SCHEMA = "edgeft.bench/1"
IDLE_GAP_S = 0.05
Progress = Callable[[int, int, str], None]


@dataclass
class Contender:
    """A bundle (or the PyTorch baseline of the first bundle's source) and its runner."""

    name: str
    path: Path
    manifest: Manifest | None  # None: a bare model file, compared with the bundles
    kind: str = "onnx"  # "onnx" (a bundle), "model" (a bare .onnx file) or "torch"
    process: RunnerProcess | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def model_file(self) -> Path:
        return self.path / self.manifest.model_file if self.manifest is not None else self.path

    def describe(self) -> dict[str, Any]:
        if self.kind == "torch":
            return {"name": self.name, "kind": "torch", "source": self.manifest.source.get("run_dir")  # type: ignore[union-attr]
                    or self.manifest.source.get("backbone", {}).get("name")}  # type: ignore[union-attr]
        model = self.model_file
        if self.manifest is None:
            return {"name": self.name, "kind": "model", "path": str(model), "size_bytes": model.stat().st_size,
                    "sha256": sha256_file(model)}
        return {"name": self.name, "kind": "onnx", "path": str(self.path), "task": self.manifest.task,
                "quantization": self.manifest.quantization.get("name", self.manifest.quantization.get("mode")),
                "mode": self.manifest.quantization.get("mode"), "model_file": self.manifest.model_file,
                "size_bytes": model.stat().st_size, "sha256": sha256_file(model)}


class BenchInterrupted(TargetError):
    """A target failed part-way; ``report`` holds what was measured before."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def _contenders(config: BenchConfig) -> list[Contender]:
    found: list[Contender] = []
    for i, text in enumerate(config.bundles):
        path = Path(text)
        bare = path.is_file() and path.suffix == ".onnx" and i > 0
        if not path.is_dir() and not bare:
            raise UsageError(f"{text} is not a bundle folder" + (" (a bare .onnx file may follow a bundle, whose "
                                                                  "manifest shapes the inputs)" if path.is_file() else ""))
        manifest = None if bare else read_manifest(path)
        name = path.resolve().name
        if any(c.name == name for c in found):
            name = f"{name}#{len(found) + 1}"
        found.append(Contender(name, path, manifest, kind="model" if bare else "onnx"))
    first = found[0].manifest
    assert first is not None  # the first is always a bundle
    for c in found[1:]:
        if c.manifest is None:
            continue
        if c.manifest.task != first.task or [t.name for t in c.manifest.inputs] != [t.name for t in first.inputs]:
            raise UsageError(f"{c.name} does not take the same inputs as {found[0].name}; "
                             "bench different models in separate calls")
    return found


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


def _make_feeds(config: BenchConfig, contender: Contender, points: list[tuple[int, int | None]],
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


def _golden(contender: Contender) -> dict[str, Any]:
    reply = contender.process.request("golden")  # type: ignore[union-attr]
    got = np.asarray(reply["logits"], dtype=np.float64)
    golden = contender.manifest.golden  # type: ignore[union-attr]
    expected = np.load(contender.path / golden.get("file", "golden.npz"))["logits"].astype(np.float64)
    check = judge_golden(got, expected, float(golden.get("atol", 1e-4)))
    return {"bundle": contender.name, "samples": check.count, "top1_agreement": check.top1_agreement,
            "max_abs_diff": check.max_abs_diff, "atol": check.atol, "within_tolerance": check.within_tolerance,
            "ok": check.ok}


class Bench:
    """One call of ``edgeft bench``; ``run`` returns the report (the results.json content)."""

    def __init__(self, config: BenchConfig, log: Callable[[str], None] = lambda _: None,
                 progress: Progress | None = None, on_point: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config, self.log, self.progress, self.on_point = config, log, progress, on_point
        self.contenders = _contenders(config)
        self.target: Target = resolve_target(config.target, config.target_options)
        if config.baseline == "torch":
            if not self.target.local:
                raise UsageError(f"--baseline torch runs on this machine only, not on {config.target}")
            first = self.contenders[0]
            self.contenders.insert(0, Contender("torch-eager", first.path, first.manifest, kind="torch"))
        names = [c.name for c in self.contenders]
        reference = config.reference
        if reference is not None:
            matches = [c.name for c in self.contenders if reference in (c.name, str(c.path), c.kind if c.kind == "torch" else None)]
            if not matches:
                raise UsageError(f"--reference {reference!r} is none of the bundles: {', '.join(names)}")
            self.reference = matches[0]
        else:
            self.reference = names[0]
        self.points = _points(config, self.contenders[0].manifest)
        self.report: dict[str, Any] = {
            "schema": SCHEMA, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "edgeft_version": __version__, "target": config.target, "provider": self.target.provider,
            "emulated": self.target.emulated, "reference": self.reference,
            "settings": {"runs": config.runs, "min_time_s": config.min_time, "warmup": config.warmup,
                         "rounds": config.rounds, "inputs": "real: " + config.inputs if config.inputs else "synthetic"},
            "fingerprint": {}, "bundles": [c.describe() for c in self.contenders],
            "golden": [], "results": [], "error": None,
        }

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

    def run(self) -> dict[str, Any]:
        with scratch("bench") as tmp:
            feeds_file = Path(tmp) / "feeds.npz"
            sets = _make_feeds(self.config, self.contenders[0], self.points, feeds_file)
            flops = self._flops(sets)
            try:
                self._measure(feeds_file, flops, sets)
            except TargetError as exc:
                self.report["error"] = str(exc)
                raise BenchInterrupted(str(exc), self.report) from None
            finally:
                for c in self.contenders:
                    if c.process is not None:
                        c.process.close()
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
        onnx_bundles = [c.path for c in self.contenders if c.kind != "torch"]
        self.target.open(onnx_bundles, feeds_file)
        index = 0
        for c in self.contenders:
            if c.kind == "torch":
                import sys

                c.process = RunnerProcess(c.name, [sys.executable, "-m", "edgeft.bench.torch_runner", str(c.path),
                                                   str(feeds_file)], where=self.target.where)
            else:
                launch = self.target.launch(index)
                index += 1
                c.process = RunnerProcess(c.name, launch.command, launch.env, where=self.target.where)
        first = next(c for c in self.contenders if c.kind != "torch")
        self.report["fingerprint"] = first.process.ready["fingerprint"]  # type: ignore[union-attr]

    def _measure(self, feeds_file: Path, flops: dict[tuple[str, str], int | None],
                 sets: dict[str, list[dict[str, np.ndarray]]]) -> None:
        self._start(feeds_file)
        for c in self.contenders:
            if c.kind == "onnx":  # bundles carry golden vectors
                c.process.request("load", threads=1, provider=self.target.provider)  # type: ignore[union-attr]
                self.report["golden"].append(_golden(c))
        cores = self.report["fingerprint"].get("logical_cores", 1)
        threads_list = list(self.config.threads) or [cores]
        per_block, block_time, warmup, prewarm = self._timing()
        total = len(threads_list) * len(self.points) * self.config.rounds * len(self.contenders)
        done = 0
        for threads in threads_list:
            loads = {c.name: c.process.request("load", threads=threads, provider=self.target.provider)  # type: ignore[union-attr]
                     for c in self.contenders}
            for batch, seq in self.points:
                key = fd.point_key(batch, seq)
                first = {c.name: c.process.request("prepare", key=key, warmup=warmup)["first_run_s"]  # type: ignore[union-attr]
                         for c in self.contenders}
                samples: dict[str, list[float]] = {c.name: [] for c in self.contenders}
                for r in range(self.config.rounds):
                    shift = r % len(self.contenders)
                    for c in self.contenders[shift:] + self.contenders[:shift]:
                        time.sleep(IDLE_GAP_S)  # the last block's spinning threads settle before this one
                        reply = c.process.request("time", runs=per_block, min_time=block_time, prewarm=prewarm)  # type: ignore[union-attr]
                        samples[c.name] += reply["times"]
                        done += 1
                        if self.progress:
                            self.progress(done, total, f"t{threads} {key} {c.name}")
                rows = [self._row(c, threads, batch, seq, sets[key], samples[c.name], loads[c.name], first[c.name],
                                  flops.get((c.name, key))) for c in self.contenders]
                reference = next(r for r in rows if r["bundle"] == self.reference)
                for row in rows:
                    row["ratio"] = row["latency_ms"]["p50"] / reference["latency_ms"]["p50"]
                self.report["results"] += rows
                if self.on_point:
                    self.on_point(self.report)

    def _row(self, c: Contender, threads: int, batch: int, seq: int | None, sets: list[dict[str, np.ndarray]],
             times: list[float], load: dict[str, Any], first: float, flop: int | None) -> dict[str, Any]:
        stats = LatencyStats.from_seconds(times)
        rss = c.process.request("stats")["peak_rss_bytes"]  # type: ignore[union-attr]
        tokens = None
        if "attention_mask" in sets[0]:
            tokens = float(np.mean([s["attention_mask"].shape[1] for s in sets]))
        return {
            "bundle": c.name, "kind": c.kind, "threads": threads, "batch": batch, "seq": seq, "tokens": tokens,
            "provider": load["providers"][0], "latency_ms": stats.to_dict(), "throughput_per_s": stats.throughput(batch),
            "load_s": load["load_s"], "first_run_ms": 1000 * first,
            "peak_rss_mb": rss / 2**20 if rss else None,
            "gflop": flop / 1e9 if flop else None,
            "gflops_per_s": flop / 1e9 / (stats.p50 / 1000) if flop else None,
            "samples_ms": [round(1000 * t, 4) for t in times],
        }


def run_bench(config: BenchConfig, log: Callable[[str], None] = lambda _: None, progress: Progress | None = None,
              on_point: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Measure ``config`` and return the report; raises ``BenchInterrupted`` (with the partial
    report) when the target fails part-way."""
    return Bench(config, log, progress, on_point).run()
