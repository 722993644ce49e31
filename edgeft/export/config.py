"""Export configs: what to export where (``ExportConfig``) and how to quantize (``QuantizeRecipe``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from edgeft.errors import UsageError
from edgeft.manifest import QUANTIZATION_MODES

if TYPE_CHECKING:
    from edgeft.export.targets import QuantTarget

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
HEAD_REFIT = ("auto", "always", "never")


@dataclass(frozen=True)
class QuantizeRecipe:
    """One way to quantize a float graph with onnxruntime.quantization.

    ``reduce_range`` quantizes weights to 7 bits, which keeps the u8s8 kernels of x86 CPUs
    without VNNI from saturating; ``exclude_first_last`` keeps the first and last compute nodes
    (Conv / MatMul / Gemm / Attention) in float.
    """

    mode: str = "none"
    per_channel: bool = False
    reduce_range: bool = False
    calibration_method: str = "minmax"
    exclude_first_last: bool = False
    repair_nodes: int = 0  # this many of the most precision-losing nodes get special treatment (static):
    repair: str = "float"  # "float": kept in float; "full-range": 8-bit weights although reduce_range is on
    weight_type: str = "int8"
    activation_type: str = "uint8"
    head_refit: bool = False  # the head kept in float and refitted on the quantized features (frozen runs, static)
    qat: bool = False  # quantized from a quantization-aware fine-tune of the trained groups (edgeft.export.qat)
    full_range_repair: bool = True  # the target's numerics are judged right here for 8-bit nodes of a 7-bit recipe

    def __post_init__(self) -> None:
        if self.mode not in QUANTIZATION_MODES:
            raise UsageError(f"--quantize must be one of {', '.join(QUANTIZATION_MODES)}, not {self.mode!r}")
        if self.calibration_method not in CALIBRATION_METHODS:
            raise UsageError(f"--calibration-method must be one of {', '.join(CALIBRATION_METHODS)}")

    @property
    def quantized(self) -> bool:
        return self.mode in ("dynamic", "static")

    @property
    def refittable(self) -> bool:
        """Static (QDQ) recipes can keep the head in float for a refit; onnxruntime's dynamic
        quantizer rewrites a Gemm head to MatMulInteger + Add whatever it is told to exclude."""
        return self.mode == "static"

    def fallbacks(self) -> list["QuantizeRecipe"]:
        """This recipe, then the ones tried when it misses the accuracy budget: per-channel
        weights; first and last layers kept in float; for static, then dynamic quantization. (Exact
        8-bit weights stored as uint8 are no fallback: on Lite0 they ran at 0.93x float in the
        quickstart; ``--quantize auto`` measures them.) The
        selection runs the repair ladders (``repairs``) before leaving the requested mode, and
        a frozen backbone's head-refit twins (or a trained one's quantization-aware twins) beside
        each (``edgeft.export.select``)."""
        if not self.quantized:
            return [self]
        chain = [self]
        if not self.per_channel:
            chain.append(replace(self, per_channel=True))
        chain.append(replace(chain[-1], exclude_first_last=True))
        if self.mode == "static":
            chain.append(replace(self, mode="dynamic", per_channel=True, exclude_first_last=False))
        return chain

    @property
    def repairs(self) -> tuple[str, ...]:
        """The sensitivity repairs this recipe takes, in the order tried: the most precision-losing
        nodes given full-range 8-bit weights (where reduce_range is on: it keeps the size), then
        kept in float."""
        if self.mode != "static":
            return ()
        return ("full-range", "float") if self.reduce_range and self.full_range_repair else ("float",)

    def repaired(self, nodes: int, kind: str = "float") -> "QuantizeRecipe":
        """This recipe with its ``nodes`` most precision-losing nodes treated as ``kind``."""
        return replace(self, repair_nodes=nodes, repair=kind)

    @property
    def name(self) -> str:
        if not self.quantized:
            return self.mode
        types = ("u8" if self.activation_type == "uint8" else "s8") + ("s8" if self.weight_type == "int8" else "u8")
        parts = [self.mode, types,
                 "per-channel" if self.per_channel else "per-tensor"]
        if self.reduce_range:
            parts.append("reduce-range")
        if self.mode == "static":
            parts.append(self.calibration_method)
        if self.exclude_first_last:
            parts.append("first/last float")
        if self.repair_nodes:
            parts.append(f"{self.repair_nodes} sensitive node{'s' if self.repair_nodes > 1 else ''} {self.repair}")
        if self.head_refit:
            parts.append("head refit")
        if self.qat:
            parts.append("quantization-aware")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class ExportConfig:
    """``edgeft export SOURCE -o OUTPUT`` and its options."""

    source: str
    output: str
    quantize: str = "none"
    calibration_data: str | None = None
    calibration_method: str = "minmax"
    calibration_samples: int = 128
    per_channel: bool = False
    max_accuracy_drop: float = 1.0
    opset: int | None = None
    eval_samples: int = 256
    force: bool = False
    seed: int = 0
    target: str = "cpu"  # the device class the bundle is made for (edgeft.export.targets)
    head_refit: str = "auto"  # a frozen backbone's head refitted on its quantized features: auto | always | never
    qat: str = "auto"  # a quantization-aware fine-tune of the groups a run trained: auto | always | never
    confirm_samples: int = 128  # held-out samples a device target (qemu-arm64, ssh://) runs each kept candidate on
    ssh_config: str | None = None  # for an ssh:// target
    remote_python: str = "python3"  # on an ssh:// target (needs numpy and onnxruntime there)
    app: bool = False  # the model takes what an app has, preprocessing inside the graph (edgeft.export.app_bundle)

    def __post_init__(self) -> None:
        # validates both (auto: the doctor picks among measured candidates)
        QuantizeRecipe(mode="none" if self.auto else self.quantize, calibration_method=self.calibration_method)
        from edgeft.export.targets import check_target

        check_target(self.target)  # an unknown target is named with the known ones
        checks = [
            (self.calibration_samples >= 1, "--calibration-samples must be at least 1"),
            (self.max_accuracy_drop >= 0, "--max-accuracy-drop must be 0 or more (points)"),
            (self.opset is None or 14 <= self.opset <= 23, "--opset must be between 14 and 23"),
            (not self.app or self.opset is None or self.opset >= 18, "--app needs --opset 18 or later (Resize with antialias)"),
            (self.eval_samples >= 1, "--eval-samples must be at least 1"),
            (self.confirm_samples >= 1, "--confirm-samples must be at least 1"),
            (self.head_refit in HEAD_REFIT, f"--head-refit must be one of {', '.join(HEAD_REFIT)}"),
            (self.qat in HEAD_REFIT, f"--qat must be one of {', '.join(HEAD_REFIT)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    @property
    def auto(self) -> bool:
        return self.quantize == "auto"

    def recipe(self, target: QuantTarget) -> QuantizeRecipe:
        """The requested recipe for ``target`` (for ``auto``, the float graph the candidates are
        measured against)."""
        mode = "none" if self.auto else self.quantize
        int8 = mode in ("dynamic", "static")
        return QuantizeRecipe(mode=mode, per_channel=self.per_channel and int8,
                              reduce_range=target.reduce_range(mode), calibration_method=self.calibration_method,
                              full_range_repair=target.full_range_judged)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
