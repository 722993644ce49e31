"""Choosing how to quantize: one candidate type, one judge, one repair ladder, two strategies.

- ``Judge``: the held-out samples, the PyTorch reference and the budget; it judges a candidate's
  logits, computed with the target's numerics.
- ``Builder``: quantizes a recipe, runs it on the held-out samples and has it judged (through a
  content-addressed cache where one is given); with a ``HeadRefit`` (a frozen backbone) or
  ``QatGraphs`` (a run that trained backbone groups) it builds the recipe's head-refit or
  quantization-aware twin as the policy says.
- ``repair``: the fewest most precision-losing nodes that, treated apart, bring a static candidate
  within the budget.
- Strategies: ``with_fallbacks`` (the requested mode, then its fallbacks in order until one fits)
  and ``fastest`` (every candidate the preflight allows measured; the fastest within budget kept).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeft.errors import EdgeftError
from edgeft.export.cache import Cache, arrays_digest, digest, file_digest
from edgeft.export.candidate import AccuracyBudgetError, Assessment, Candidate, Selection
from edgeft.export.config import QuantizeRecipe
from edgeft.export.exact_int8 import SIMULATION
from edgeft.export.inputs import Feeds
from edgeft.export.preflight import MEASURE_ONLY, TRY, Preflight
from edgeft.export.qat import QatGraphs
from edgeft.export.quantize import compute_nodes, quantize_graph
from edgeft.export.refit import HeadRefit
from edgeft.export.verify import accuracy, compare, onnx_logits

Log = Callable[[str], None]
Confirm = Callable[["Candidate"], bool]  # a device's verdict on a candidate within budget here
REPAIR_PROBES = (1, 2, 4, 8, 16, 32)
SAME_SPEED = 0.03  # latencies within 3% are a tie, broken by size


@dataclass
class Judge:
    """The held-out samples, the references every candidate is compared with, and the budget."""

    batches: list[Feeds]
    reference: np.ndarray  # PyTorch logits
    float_accuracy: float | None
    labels: list[int] | None
    max_drop: float
    numerics: str = "host"  # the target's (edgeft.export.targets): candidates run so here

    def assess(self, logits: np.ndarray) -> Assessment:
        """How ``logits`` compare with the reference, and whether they are within the budget: the
        drop in validation accuracy with labels, else the top-1 disagreement with PyTorch (which
        bounds the drop from above)."""
        comparison = compare(self.reference, logits)
        acc = accuracy(logits, self.labels) if self.labels else None
        drop = None if acc is None or self.float_accuracy is None else round((self.float_accuracy - acc) * 100, 4)
        disagreement = (1.0 - comparison.top1_agreement) * 100
        return Assessment(comparison, acc, drop, (drop if drop is not None else disagreement) <= self.max_drop)

    def judge(self, candidate: "Candidate", logits: np.ndarray) -> None:
        """Fill in ``candidate``'s figures from its ``logits``."""
        v = self.assess(logits)
        candidate.logits, candidate.comparison, candidate.accuracy = logits, v.comparison, v.accuracy
        candidate.drop_points, candidate.within_budget = v.drop_points, v.within_budget

    def budget(self) -> str:
        return (f"a drop of at most {self.max_drop:g} points of validation accuracy" if self.labels
                else f"at most {self.max_drop:g}% top-1 disagreement with PyTorch (no labels)")


class Builder:
    """Builds and judges candidates of one float graph: the same data, numerics and refit for all."""

    def __init__(self, float_path: Path, work: Path, calibration: list[Feeds] | None, judge: Judge, log: Log,
                 refit: HeadRefit | None = None, cache: Cache | None = None, qat: QatGraphs | None = None) -> None:
        self.float_path, self.work, self.calibration, self.judge = float_path, work, calibration, judge
        self.log, self.refit, self.cache, self.qat = log, refit, cache, qat
        self.count = 0
        self.base_key = ""
        if cache is not None:
            import onnxruntime

            self.base_key = digest(file_digest(float_path), arrays_digest(calibration), arrays_digest(judge.batches),
                                   onnxruntime.__version__, judge.numerics, SIMULATION,
                                   *(refit.digest_parts() + (arrays_digest(refit.batches),) if refit else ()))

    def build(self, recipe: QuantizeRecipe, why: str = "", status: str = TRY) -> Candidate:
        """``recipe`` quantized, run on the held-out samples with the target's numerics, judged."""
        began = time.perf_counter()
        candidate = Candidate(recipe, why, status)
        self.count += 1
        path = self.work / f"candidate-{self.count}.onnx"
        # a quantization-aware candidate's float graph is trained here first: nothing to key it by
        key = digest(self.base_key, json.dumps(recipe.to_dict(), sort_keys=True)) if self.cache and not recipe.qat else ""
        hit = self.cache.get(key) if key else None
        if hit is not None and hit[1] is not None and (hit[0] is not None or recipe.mode == "none"):
            model, logits, meta = hit
            shutil.copyfile(model or self.float_path, path)
            candidate.info, candidate.cached = meta["info"], True
        else:
            if recipe.mode == "static" and not self.calibration:
                candidate.error = "needs calibration samples (the run's training split or --calibration-data)"
                return candidate
            try:
                source, trained = (self.qat.graph(recipe.per_channel, recipe.reduce_range)  # type: ignore[union-attr]
                                   if recipe.qat else (self.float_path, {}))
                candidate.info = {**quantize_graph(source, path, recipe, self.work, self.calibration, self.refit),
                                  **trained}
            except EdgeftError as exc:
                candidate.error = str(exc)
                return candidate
            logits = onnx_logits(path, self.judge.batches, self.judge.numerics)
            if key:
                self.cache.put(key, {"info": candidate.info}, None if recipe.mode == "none" else path, logits)
        candidate.path, candidate.size_bytes = path, path.stat().st_size
        self.judge.judge(candidate, logits)
        candidate.seconds = time.perf_counter() - began
        return candidate

    def build_with_twin(self, recipe: QuantizeRecipe, why: str = "", status: str = TRY) -> list[Candidate]:
        """``recipe`` and, for a static recipe of a run that allows one, its twin: the head refitted
        on its quantized features (a frozen backbone, ``--head-refit``) or the trained groups
        fine-tuned under fake quantization (``--qat``). The twin alone under ``always``; under
        ``auto`` only where ``recipe`` misses the budget (measured, not assumed)."""
        if self.refit is not None and recipe.refittable and not recipe.head_refit:
            twin, always, what = replace(recipe, head_refit=True), self.refit.always, "the head refitted on its quantized features"
        elif self.qat is not None and recipe.mode == "static" and not recipe.qat and status == TRY:  # it trains: kept ones only
            twin, always, what = replace(recipe, qat=True), self.qat.always, "the trained groups fine-tuned quantization-aware"
        else:
            return [self._logged(self.build(recipe, why, status))]
        if always:
            return [self._logged(self.build(twin, why, status))]
        built = [self._logged(self.build(recipe, why, status))]
        if built[0].error is None and not built[0].within_budget:
            built.append(self._logged(self.build(twin, status=status, why=f"{why}; {what}".lstrip("; "))))
        return built

    def _logged(self, c: Candidate) -> Candidate:
        if c.recipe.quantized:
            self.log(f"candidate {c.name}: {c.describe()}{' [cached]' if c.cached else ''}")
        return c


def repair(builder: Builder, base: Candidate, log: Log, kind: str = "float") -> tuple[Candidate | None, dict[str, Any]]:
    """The smallest number of the most precision-losing nodes (ranked by onnxruntime's QDQ
    debugging tools) that, treated as ``kind`` ("float": kept in float; "full-range": 8-bit
    weights), bring ``base`` within the budget: doubling probes, then bisection between the
    last miss and the first fit."""
    import onnx

    limit = len(compute_nodes(onnx.load(str(builder.float_path), load_external_data=False)))
    tried: dict[int, Candidate] = {}

    def probe(k: int) -> Candidate:
        if k not in tried:
            c = builder.build(base.recipe.repaired(k, kind), f"sensitivity repair of {base.name}")
            tried[k] = c
            if c.error is None:
                log(f"repair: {k} node{'s' if k > 1 else ''} {kind}: {c.describe()}")
        return tried[k]

    miss, fit = 0, None
    for k in (p for p in REPAIR_PROBES if p < limit):
        if probe(k).eligible:
            fit = k
            break
        miss = k
    info: dict[str, Any] = {"base": base.name, "kind": kind, "probes": sorted(tried), "found": None}
    if fit is None:
        return None, info
    while fit - miss > 1:
        middle = (miss + fit) // 2
        if probe(middle).eligible:
            fit = middle
        else:
            miss = middle
    found = tried[fit]
    return found, {**info, "probes": sorted(tried), "found": fit, "nodes": found.info.get("nodes_excluded", [])}


def _closest(candidates: list[Candidate]) -> Candidate:
    """The candidate nearest the budget: highest accuracy (or agreement), then smallest max diff."""
    built = [c for c in candidates if c.comparison is not None]
    return max(built, key=lambda c: (c.accuracy if c.accuracy is not None else -1.0,
                                     c.comparison.top1_agreement, -c.comparison.max_abs_diff))  # type: ignore[union-attr]


def _confirmed(c: Candidate, confirm: Confirm | None) -> bool:
    return c.eligible and (confirm is None or confirm(c))


def with_fallbacks(recipe: QuantizeRecipe, builder: Builder, log: Log, confirm: Confirm | None = None) -> Selection:
    """The requested recipe, then its fallbacks (``QuantizeRecipe.fallbacks``) with the repair
    ladders before the mode changes, until one is within the budget (and, with ``confirm``, within
    it on the target's device too); that one is kept.

    With labels a measured drop beyond the budget everywhere stops the export
    (``AccuracyBudgetError``). Without labels the most agreeing candidate is kept with a warning:
    accuracy was not measured, so nothing is proven wrong."""
    began = time.perf_counter()
    judge = builder.judge
    candidates: list[Candidate] = []
    repair_info: dict[str, Any] | None = None

    def done(chosen: Candidate) -> Selection:
        chosen.chosen = True
        _verdicts(candidates, chosen, judge, "the first in the fallback order within")
        return Selection("fallbacks", candidates, chosen, judge, repair_info, time.perf_counter() - began)

    chain = recipe.fallbacks()
    for step in [r for r in chain if r.mode == recipe.mode]:
        built = builder.build_with_twin(step, "the requested recipe" if step == recipe else "a fallback")
        candidates += built
        fit = next((c for c in built if _confirmed(c, confirm)), None)
        if fit is not None:
            return done(fit)
    if recipe.repairs:
        per_channel = [c for c in candidates if c.recipe.per_channel and not c.recipe.exclude_first_last and c.error is None]
        base = _closest(per_channel) if per_channel else None
        for kind in recipe.repairs if base is not None else ():
            log(f"no {recipe.mode} recipe met the budget: sensitivity repair ({kind}) of {base.name}")  # type: ignore[union-attr]
            found, repair_info = repair(builder, base, log, kind)  # type: ignore[arg-type]
            if found is not None:
                candidates.append(found)
                if _confirmed(found, confirm):
                    return done(found)
    for step in [r for r in chain if r.mode != recipe.mode]:
        built = builder.build_with_twin(step, "the fallback to another mode")
        candidates += built
        fit = next((c for c in built if _confirmed(c, confirm)), None)
        if fit is not None:
            return done(fit)
    if not any(c.comparison is not None for c in candidates):
        raise EdgeftError("; ".join(f"{c.name}: {c.error}" for c in candidates))
    if judge.labels or confirm is not None:
        report = "; ".join(f"{c.name}: {c.describe()}" + (f", on the device: {c.confirmation.get('summary')}"
                                                          if c.confirmation else "") for c in candidates)
        measured = f"float accuracy {judge.float_accuracy:.2%}" if judge.float_accuracy is not None else "no labels"
        raise AccuracyBudgetError(f"no recipe stayed within --max-accuracy-drop {judge.max_drop:g} points "
                                  f"({measured}): {report}. Nothing was written.",
                                  candidates)
    kept = _closest(candidates)
    log(f"warning: no recipe agreed with PyTorch on {100 - judge.max_drop:g}% of the unlabelled samples; kept the most "
        f"agreeing one, {kept.name} ({kept.comparison.top1_agreement:.1%}). "  # type: ignore[union-attr]
        "Pass labelled data to measure accuracy.")
    return done(kept)


def fastest(pre: Preflight, builder: Builder, latency_sets: list[Feeds], threads: int, log: Log,
            min_time: float = 1.0, confirm: Confirm | None = None) -> Selection:
    """Every candidate the preflight allows, measured (with head-refit twins and a repair of the
    static ones where none meets the budget); the fastest within the budget is kept, never one
    slower than float, ties (within 3%) broken by size. With ``confirm``, candidates are offered
    to the device in that order and the first it confirms is kept."""
    from edgeft.export.latency import time_models

    began = time.perf_counter()
    candidates: list[Candidate] = []
    for verdict in pre.candidates:
        candidates += builder.build_with_twin(verdict.recipe, verdict.why, verdict.status)
    static = [c for c in candidates if c.recipe.mode == "static" and c.status == TRY and c.error is None]
    repair_info = None
    if static and not any(c.within_budget for c in static):
        base = next((c for c in static if c.recipe.per_channel and c.recipe.calibration_method == "minmax"
                     and c.recipe.activation_type == "uint8" and not c.recipe.head_refit
                     and not c.recipe.qat), static[0])
        log(f"no static candidate met the budget: sensitivity repair of {base.name}")
        repaired, repair_info = repair(builder, base, log)
        if repaired is not None:
            candidates.append(repaired)
    timed = {f"c{i}": c for i, c in enumerate(candidates)
             if c.path is not None and (c.within_budget or c.status == MEASURE_ONLY)}
    log(f"timing {len(timed)} candidates on this CPU (batch 1, {threads} threads, interleaved blocks)")
    latencies = time_models({k: c.path for k, c in timed.items()}, latency_sets, threads, min_time=min_time)  # type: ignore[misc]
    for key, stats in latencies.items():
        timed[key].latency_ms, timed[key].latency_p90_ms = stats.p50, stats.p90
    eligible = [c for c in candidates if c.eligible and c.latency_ms is not None]
    float_ms = next((c.latency_ms for c in eligible if c.recipe.mode == "none"), None)
    eligible = [c for c in eligible if float_ms is None or c.latency_ms <= float_ms]  # never slower than float
    while True:
        best = min(c.latency_ms for c in eligible)  # type: ignore[type-var]
        ties = [c for c in eligible if c.latency_ms <= best * (1 + SAME_SPEED)]  # type: ignore[operator]
        chosen = min(ties, key=lambda c: (c.size_bytes, c.latency_ms))
        if confirm is None or confirm(chosen):
            break
        eligible.remove(chosen)
        if not eligible:
            raise AccuracyBudgetError("no candidate within the budget here was confirmed on the device: " + "; ".join(
                f"{c.name}: {c.confirmation.get('summary')}" for c in candidates if c.confirmation), candidates)
    chosen.chosen = True
    _verdicts(candidates, chosen, builder.judge, "the fastest variant within", pre)
    return Selection("fastest", candidates, chosen, builder.judge, repair_info, time.perf_counter() - began, pre)


def _verdicts(candidates: list[Candidate], chosen: Candidate, judge: Judge, rule: str,
              pre: Preflight | None = None) -> None:
    for c in candidates:
        if c.chosen:
            timing = f" ({c.latency_ms:.2f} ms, {c.size_bytes / 1e6:.1f} MB)" if c.latency_ms else ""
            c.verdict = f"chosen: {rule} {judge.budget()}{timing}"
        elif c.error:
            c.verdict = f"not built: {c.error}"
        elif c.status == MEASURE_ONLY:
            twin = next((o for o in candidates if o.recipe == replace(c.recipe, reduce_range=True) and o.latency_ms), None)
            fix = (f"; reduce_range fixes it at {c.latency_ms / twin.latency_ms:.2f}x the latency"  # type: ignore[operator]
                   if twin and c.latency_ms and twin.within_budget else "")
            where = "this AVX2 CPU without VNNI" if pre is not None and pre.cpu.u8s8_saturates else "this CPU"
            c.verdict = f"{c.name}: {c.describe()} on {where} (saturation risk: never kept){fix}"
        elif not c.within_budget:
            c.verdict = f"{c.name}: outside the budget ({judge.budget()}): {c.describe()}"
        elif c.confirmation is not None and not c.confirmation.get("within_budget"):
            c.verdict = f"{c.name}: within the budget here, not on the device: {c.confirmation.get('summary')}"
        elif c.latency_ms is not None and chosen.latency_ms:
            c.verdict = (f"{c.name}: within the budget but slower: {c.latency_ms:.2f} ms, "
                         f"{c.latency_ms / chosen.latency_ms:.2f}x the chosen")
        else:
            c.verdict = f"{c.name}: within the budget; not tried first"
