"""Preflight: read the target's ISA, onnxruntime and the graph's operators, and say which
quantization recipes can run fast and exactly there, before anything is measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeft.export.config import QuantizeRecipe
from edgeft.runtime.cpu import CpuInfo

TRY, MEASURE_ONLY, SKIP = "try", "measure-only", "skip"  # candidate status: eligible / shown, never kept / not built


@dataclass(frozen=True)
class Verdict:
    """What the preflight says of one recipe: ``status`` and one plain sentence why."""

    recipe: QuantizeRecipe
    status: str
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe.name, "status": self.status, "why": self.why}


@dataclass(frozen=True)
class Preflight:
    cpu: CpuInfo
    onnxruntime: str
    providers: list[str]
    modality: str
    ops: dict[str, int]
    findings: list[str]
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def candidates(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status != SKIP]

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu.to_dict(), "onnxruntime": self.onnxruntime, "providers": self.providers,
                "modality": self.modality, "ops": self.ops, "findings": self.findings,
                "verdicts": [v.to_dict() for v in self.verdicts]}


def _isa(cpu: CpuInfo) -> str:
    features = ", ".join(cpu.features) or "no listed ISA extensions"
    return f"{cpu.model} ({cpu.arch}: {features})"


def _static(cpu: CpuInfo, per_channel: bool, reduce_range: bool, method: str = "minmax", weights: str = "int8",
            activations: str = "uint8") -> QuantizeRecipe:
    return QuantizeRecipe(mode="static", per_channel=per_channel, reduce_range=reduce_range, calibration_method=method,
                          weight_type=weights, activation_type=activations)


def _verdicts(cpu: CpuInfo, modality: str, ops: dict[str, int]) -> list[Verdict]:
    x86 = cpu.arch in ("x86_64", "amd64")
    saturates = cpu.u8s8_saturates
    rr = saturates  # 7-bit weights where 8-bit ones would saturate
    out = [Verdict(QuantizeRecipe(mode="none"), TRY, "the float graph: the reference every candidate is measured against")]
    fp16_fast = not x86 or "avx512_fp16" in cpu.features
    out.append(Verdict(QuantizeRecipe(mode="fp16"), TRY if fp16_fast else SKIP,
                       "fp16 arithmetic on this CPU" if fp16_fast else
                       "fp16: onnxruntime's CPU provider on this x86 CPU computes in float32 behind casts "
                       "(Lite0 7.6 vs 7.8 ms measured): it halves the size but does not pay in speed; it pays on GPUs"))
    conv = any(op in ops for op in ("Conv", "FusedConv"))
    out.append(Verdict(QuantizeRecipe(mode="dynamic", per_channel=conv, reduce_range=rr), TRY,
                       "dynamic INT8 of convolutions runs ConvInteger, a slow path that some reduced builds lack"
                       if conv else "dynamic INT8: MatMulInteger with activations quantized at run time; fast on this CPU"))
    if not conv:
        out.append(Verdict(QuantizeRecipe(mode="dynamic", per_channel=True, reduce_range=rr), TRY,
                           "dynamic INT8 with per-channel weights"))
    attention = "Attention" in ops or "MultiHeadAttention" in ops
    static_note = (" (QDQ cannot enter the fused Attention operators: they stay float, so expect little speed-up)"
                   if attention else "")
    for per_channel in (False, True):
        out.append(Verdict(_static(cpu, per_channel, rr), TRY,
                           f"static INT8 u8s8 {'per-channel' if per_channel else 'per-tensor'}"
                           f"{', 7-bit weights (reduce_range) so the u8s8 kernels cannot saturate' if rr else ''}{static_note}"))
    if saturates:
        out.append(Verdict(_static(cpu, True, False), MEASURE_ONLY,
                           f"static u8s8 with 8-bit weights (onnxruntime's default): on {_isa(cpu)} without VNNI the "
                           "u8s8 kernels add products in pairs into int16 and saturate; measured for the report, never kept"))
    for method in ("entropy", "percentile"):
        out.append(Verdict(_static(cpu, True, rr, method), TRY, f"static INT8 per-channel calibrated with {method}"))
    out.append(Verdict(_static(cpu, True, rr, activations="int8"), TRY,
                       "static INT8 s8s8 (int8 activations)" + ("; 7-bit weights as for u8s8" if rr else "")))
    if saturates:
        out.append(Verdict(_static(cpu, True, False, weights="uint8"), TRY,
                           "static u8u8 per-channel: 8-bit weights stored as uint8 (zero point 128, the same values), "
                           "which these u8u8 kernels compute exactly; Lite0 ran 1.4x the 7-bit u8s8 latency here"))
    else:
        out.append(Verdict(_static(cpu, True, False, weights="uint8"), SKIP,
                           "static u8u8 (uint8 weights): the same values as 8-bit int8 weights, which this CPU's "
                           "u8s8 kernels already compute exactly"))
    return out


def preflight(cpu: CpuInfo, modality: str, ops: dict[str, int], ort_version: str | None = None,
              providers: list[str] | None = None) -> Preflight:
    """The recipes to build and measure on ``cpu`` for a graph with ``ops``, and the plain facts behind them."""
    if ort_version is None or providers is None:
        import onnxruntime as ort

        ort_version, providers = ort.__version__, ort.get_available_providers()
    findings = [f"target CPU: {_isa(cpu)}, {cpu.cores} logical cores; onnxruntime {ort_version} "
                f"({', '.join(providers)})"]
    if cpu.u8s8_saturates:
        findings.append("x86 without VNNI: u8s8 INT8 kernels (vpmaddubsw) saturate with 8-bit weights; 7-bit weights "
                        "(reduce_range) or uint8 weights are exact")
    elif cpu.vnni:
        findings.append("VNNI: u8s8 INT8 kernels accumulate in int32, exact with 8-bit weights")
    elif cpu.arch in ("aarch64", "arm64"):
        dot = "dotprod" in cpu.features
        findings.append(f"ARM64: INT8 kernels accumulate in int32 ({'dot product' if dot else 'NEON'}"
                        f"{', i8mm' if 'i8mm' in cpu.features else ''}), exact with 8-bit weights")
    contrib = sorted(op for op in ops if op in ("Attention", "SkipLayerNormalization", "EmbedLayerNormalization",
                                                 "BiasGelu", "FastGelu", "QAttention", "MultiHeadAttention"))
    if contrib:
        findings.append(f"the graph uses onnxruntime's fused operators ({', '.join(contrib)}): onnxruntime only, and "
                        "a reduced-size build must list them")
    if "CUDAExecutionProvider" not in providers:
        findings.append("no CUDA provider in this onnxruntime: the candidates are measured on the CPU")
    top = ", ".join(f"{op} {n}" for op, n in sorted(ops.items(), key=lambda kv: -kv[1])[:8])
    findings.append(f"graph operators: {top}")
    return Preflight(cpu, ort_version, providers, modality, ops, findings, _verdicts(cpu, modality, ops))

