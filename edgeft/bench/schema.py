"""The bench report, ``results.json`` (``schema: edgeft.bench/1``), as dataclasses; ``to_dict``
gives the JSON that ``results.json``, ``--json`` and the report writers read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "edgeft.bench/1"


@dataclass
class GoldenResult:
    """One bundle's golden vectors run on the target against its exported logits
    (``edgeft.runtime.golden`` judges)."""

    bundle: str
    samples: int
    top1_agreement: float
    max_abs_diff: float
    atol: float
    within_tolerance: bool
    ok: bool


@dataclass
class ResultRow:
    """One bundle at one sweep point. ``seq`` is None for images and real inputs; ``latency_ms``
    holds runs, min, mean, std, p50, p90, p99, max; ``ratio`` is p50 to the reference's."""

    bundle: str
    kind: str
    threads: int
    batch: int
    seq: int | None
    tokens: float | None
    provider: str
    latency_ms: dict[str, float]
    throughput_per_s: float
    load_s: float
    first_run_ms: float
    peak_rss_mb: float | None
    gflop: float | None
    gflops_per_s: float | None
    samples_ms: list[float]
    ratio: float | None = None


@dataclass
class BenchReport:
    """``settings``: runs, min_time_s, warmup, rounds, inputs. ``fingerprint``: what the runner
    read on the target: arch, cpu, cpu_id (x86 family/model/stepping, ARM implementer/part: one
    cloud name covers several generations), cpu_features, logical_cores, os, python, runtime,
    runtime_version, available_providers, emulated, emulated_cpu. ``bundles``: per contender its
    name, kind (onnx | model | torch), path, quantization, size_bytes, sha256. ``error``: None, or
    why the run stopped (the results before it are kept)."""

    created: str
    edgeft_version: str
    target: str
    provider: str
    emulated: bool
    reference: str  # the bundle ratios are taken to
    settings: dict[str, Any]
    bundles: list[dict[str, Any]]
    fingerprint: dict[str, Any] = field(default_factory=dict)
    golden: list[GoldenResult] = field(default_factory=list)
    results: list[ResultRow] = field(default_factory=list)
    error: str | None = None
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"schema": data.pop("schema"), **data}
