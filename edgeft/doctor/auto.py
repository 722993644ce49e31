"""``--quantize auto``: build the candidates the preflight allows, measure each on the held-out
samples (accuracy, agreement, max logit difference) and on this machine (latency, size), repair a
static candidate that misses the budget, and keep the fastest that meets it."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeft.doctor.cache import Cache, arrays_digest, digest, file_digest
from edgeft.doctor.latency import time_models
from edgeft.doctor.preflight import MEASURE_ONLY, TRY, Preflight, with_repair
from edgeft.errors import EdgeftError
from edgeft.export.config import QuantizeRecipe
from edgeft.export.inputs import Feeds
from edgeft.export.quantize import compute_nodes, quantize_graph
from edgeft.export.refit import HeadRefit
from edgeft.export.verify import Comparison, accuracy, compare, onnx_logits

Log = Callable[[str], None]
REPAIR_PROBES = (1, 2, 4, 8, 16, 32)
SAME_SPEED = 0.03  # latencies within 3% are a tie, broken by size


@dataclass
class Candidate:
    """One variant and what was measured of it."""

    recipe: QuantizeRecipe
    status: str  # TRY (may be kept) or MEASURE_ONLY (shown, never kept)
    why: str
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    comparison: Comparison | None = None
    accuracy: float | None = None
    drop_points: float | None = None
    size_bytes: int | None = None
    latency_ms: float | None = None
    latency_p90_ms: float | None = None
    accepted: bool = False
    chosen: bool = False
    cached: bool = False
    error: str | None = None
    verdict: str = ""
    logits: np.ndarray | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.recipe.name

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.name, "status": self.status, "preflight": self.why, "accepted": self.accepted,
                "chosen": self.chosen, "accuracy": self.accuracy, "drop_points": self.drop_points,
                "size_bytes": self.size_bytes, "latency_ms": self.latency_ms, "latency_p90_ms": self.latency_p90_ms,
                "cached": self.cached, "error": self.error, "verdict": self.verdict,
                "nodes_excluded": self.info.get("nodes_excluded", []),
                **(self.comparison.to_dict() if self.comparison else {})}


@dataclass
class Evaluation:
    """The held-out samples and the references every candidate is compared with."""

    batches: list[Feeds]
    reference: np.ndarray  # PyTorch logits
    float_accuracy: float | None
    labels: list[int] | None
    max_drop: float
    numerics: str = "host"  # the target's (edgeft.export.targets): its candidates run so here

    def judge(self, logits: np.ndarray) -> tuple[Comparison, float | None, float | None, bool]:
        comparison = compare(self.reference, logits)
        acc = accuracy(logits, self.labels) if self.labels else None
        drop = None if acc is None or self.float_accuracy is None else round((self.float_accuracy - acc) * 100, 4)
        disagreement = (1.0 - comparison.top1_agreement) * 100
        return comparison, acc, drop, (drop <= self.max_drop if drop is not None else disagreement <= self.max_drop)

    def budget(self) -> str:
        return (f"a drop of at most {self.max_drop:g} points of validation accuracy" if self.labels
                else f"at most {self.max_drop:g}% top-1 disagreement with PyTorch (no labels)")


@dataclass
class AutoResult:
    candidates: list[Candidate]
    chosen: Candidate
    preflight: Preflight
    evaluation: Evaluation
    repair: dict[str, Any] | None
    seconds: float
    cautions: list[str] = field(default_factory=list)  # what the figures rest on too little of


class _Builder:
    def __init__(self, float_path: Path, work: Path, calibration: list[Feeds] | None, evaluation: Evaluation,
                 cache: Cache, log: Log, refit: HeadRefit | None = None) -> None:
        self.float_path, self.work, self.calibration, self.evaluation = float_path, work, calibration, evaluation
        self.cache, self.log, self.refit = cache, log, refit
        import onnxruntime

        self.base_key = digest(file_digest(float_path), arrays_digest(calibration), arrays_digest(evaluation.batches),
                               onnxruntime.__version__, evaluation.numerics,
                               *(refit.digest_parts() + (arrays_digest(refit.batches),) if refit else ()))
        self.count = 0

    def build(self, candidate: Candidate) -> Candidate:
        recipe = candidate.recipe
        key = digest(self.base_key, json.dumps(recipe.to_dict(), sort_keys=True))
        hit = self.cache.get(key)
        self.count += 1
        path = self.work / f"auto-{self.count}.onnx"
        if hit is not None and hit[1] is not None and (hit[0] is not None or recipe.mode == "none"):
            model, logits, meta = hit
            shutil.copyfile(model or self.float_path, path)
            candidate.info, candidate.cached = meta["info"], True
        else:
            if recipe.mode == "static" and not self.calibration:
                candidate.error = "needs calibration samples (the run's training split or --calibration-data)"
                return candidate
            try:
                candidate.info = quantize_graph(self.float_path, path, recipe, self.work, self.calibration, self.refit)
            except EdgeftError as exc:
                candidate.error = str(exc)
                return candidate
            logits = onnx_logits(path, self.evaluation.batches, self.evaluation.numerics)
            self.cache.put(key, {"info": candidate.info}, None if recipe.mode == "none" else path, logits)
        candidate.path, candidate.logits, candidate.size_bytes = path, logits, path.stat().st_size
        candidate.comparison, candidate.accuracy, candidate.drop_points, candidate.accepted = self.evaluation.judge(logits)
        return candidate


def _describe(c: Candidate) -> str:
    acc = "" if c.accuracy is None else f", accuracy drop {c.drop_points:+.2f} pts"
    return f"top-1 agreement {c.comparison.top1_agreement:.1%}, max abs diff {c.comparison.max_abs_diff:.3g}{acc}"  # type: ignore[union-attr]


def repair(builder: _Builder, base: Candidate, log: Log) -> tuple[Candidate | None, dict[str, Any]]:
    """The smallest number of the most precision-losing nodes (ranked by onnxruntime's QDQ
    debugging tools) that, kept in float, bring ``base`` within the budget: doubling probes, then
    bisection between the last miss and the first fit."""
    import onnx

    limit = len(compute_nodes(onnx.load(str(builder.float_path), load_external_data=False)))
    tried: dict[int, Candidate] = {}

    def probe(k: int) -> Candidate:
        if k not in tried:
            c = builder.build(Candidate(with_repair(base.recipe, k), TRY, f"sensitivity repair of {base.name}"))
            tried[k] = c
            if c.error is None:
                log(f"repair: {k} node{'s' if k > 1 else ''} in float: {_describe(c)}")
        return tried[k]

    miss, fit = 0, None
    for k in (p for p in REPAIR_PROBES if p < limit):
        c = probe(k)
        if c.error is None and c.accepted:
            fit = k
            break
        miss = k
    if fit is None:
        return None, {"base": base.name, "probes": sorted(tried), "found": None}
    while fit - miss > 1:
        middle = (miss + fit) // 2
        c = probe(middle)
        if c.error is None and c.accepted:
            fit = middle
        else:
            miss = middle
    found = tried[fit]
    return found, {"base": base.name, "probes": sorted(tried), "found": fit,
                   "nodes": found.info.get("nodes_excluded", [])}


def _rr_twin(c: Candidate, candidates: Sequence[Candidate]) -> Candidate | None:
    return next((o for o in candidates if o.recipe == replace(c.recipe, reduce_range=True) and o.latency_ms), None)


def _verdicts(candidates: list[Candidate], chosen: Candidate, evaluation: Evaluation, pre: Preflight) -> None:
    for c in candidates:
        if c.chosen:
            c.verdict = (f"chosen: the fastest variant within {evaluation.budget()} "
                         f"({c.latency_ms:.2f} ms, {c.size_bytes / 1e6:.1f} MB)")
        elif c.error:
            c.verdict = f"not built: {c.error}"
        elif c.status == MEASURE_ONLY:
            twin = _rr_twin(c, candidates)
            fix = (f"; reduce_range fixes it at {c.latency_ms / twin.latency_ms:.2f}x the latency"  # type: ignore[operator]
                   if twin and c.latency_ms and twin.accepted else "")
            where = "this AVX2 CPU without VNNI" if pre.cpu.u8s8_saturates else "this CPU"
            c.verdict = f"{c.name}: {_describe(c)} on {where} (saturation risk: never kept){fix}"
        elif not c.accepted:
            c.verdict = f"{c.name}: outside the budget ({evaluation.budget()}): {_describe(c)}"
        elif c.latency_ms is not None and chosen.latency_ms:
            c.verdict = (f"{c.name}: within the budget but slower: {c.latency_ms:.2f} ms, "
                         f"{c.latency_ms / chosen.latency_ms:.2f}x the chosen")
        else:
            c.verdict = f"{c.name}: within the budget; not timed"


def run_auto(float_path: Path, work: Path, pre: Preflight, calibration: list[Feeds] | None, evaluation: Evaluation,
             latency_sets: list[Feeds], threads: int, log: Log = lambda _: None, cache: Cache | None = None,
             min_time: float = 1.0, refit: HeadRefit | None = None) -> AutoResult:
    """Measure every candidate the preflight allows and keep the fastest within the budget."""
    began = time.perf_counter()
    builder = _Builder(float_path, work, calibration, evaluation, cache or Cache(), log, refit)
    candidates = []
    for verdict in pre.candidates:
        recipe = replace(verdict.recipe, head_refit=True) if refit and refit.always and verdict.recipe.refittable \
            else verdict.recipe
        c = builder.build(Candidate(recipe, verdict.status, verdict.why))
        log(f"candidate {c.name}: " + (f"not built ({c.error})" if c.error else _describe(c) + (" [cached]" if c.cached else "")))
        candidates.append(c)
        if refit is not None and c.error is None and not c.accepted and c.recipe.refittable and not c.recipe.head_refit:
            twin = builder.build(Candidate(replace(c.recipe, head_refit=True), verdict.status,
                                           f"{verdict.why}; the head refitted on its quantized features"))
            log(f"candidate {twin.name}: " + (f"not built ({twin.error})" if twin.error else _describe(twin)))
            candidates.append(twin)
    static = [c for c in candidates if c.recipe.mode == "static" and c.status == TRY and c.error is None]
    repair_info = None
    if static and not any(c.accepted for c in static):
        base = next((c for c in static if c.recipe.per_channel and c.recipe.calibration_method == "minmax"
                     and c.recipe.activation_type == "uint8"), static[0])
        log(f"no static candidate met the budget: sensitivity repair of {base.name}")
        repaired, repair_info = repair(builder, base, log)
        if repaired is not None:
            candidates.append(repaired)
    timed = {f"c{i}": c for i, c in enumerate(candidates) if c.path is not None and (c.accepted or c.status == MEASURE_ONLY)}
    log(f"timing {len(timed)} candidates on this CPU (batch 1, {threads} threads, interleaved blocks)")
    latencies = time_models({k: c.path for k, c in timed.items()}, latency_sets, threads, min_time=min_time)  # type: ignore[misc]
    for key, stats in latencies.items():
        timed[key].latency_ms, timed[key].latency_p90_ms = stats.p50, stats.p90
    eligible = [c for c in candidates if c.status == TRY and c.accepted and c.latency_ms is not None]
    fastest = min(c.latency_ms for c in eligible)  # type: ignore[type-var]
    float_ms = next((c.latency_ms for c in eligible if c.recipe.mode == "none"), None)
    ties = [c for c in eligible if c.latency_ms <= fastest * (1 + SAME_SPEED)  # type: ignore[operator]
            and (float_ms is None or c.latency_ms <= float_ms)]  # never slower than float
    chosen = min(ties, key=lambda c: (c.size_bytes, c.latency_ms))
    chosen.chosen = True
    _verdicts(candidates, chosen, evaluation, pre)
    return AutoResult(candidates, chosen, pre, evaluation, repair_info, time.perf_counter() - began)
