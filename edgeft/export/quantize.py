"""Quantization steps, each an ONNX file in and an ONNX file out, done by onnxruntime.quantization
(dynamic and static INT8) and onnxruntime's float16 converter."""

from __future__ import annotations

import contextlib
import io
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import onnx

from edgeft.errors import EdgeftError
from edgeft.export.config import QuantizeRecipe
from edgeft.export.inputs import Feeds
from edgeft.export.quiet import quiet
from edgeft.export.refit import HeadRefit, head_node, refit_head

COMPUTE_OPS = ("Conv", "MatMul", "Gemm", "Attention")


class QuantizeFailed(EdgeftError):
    """onnxruntime.quantization or the fp16 converter failed on this graph (exit 1)."""


def compute_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the compute nodes (Conv, MatMul, Gemm, Attention) in graph order."""
    return [n.name for n in model.graph.node if n.op_type in COMPUTE_OPS]


def name_nodes(model: onnx.ModelProto) -> bool:
    """The quantizer addresses nodes by name: give every unnamed node one; whether any was unnamed."""
    unnamed = [(i, node) for i, node in enumerate(model.graph.node) if not node.name]
    for i, node in unnamed:
        node.name = f"{node.op_type}_{i}"
    return bool(unnamed)


def _named(src: Path, work: Path) -> tuple[Path, onnx.ModelProto]:
    """``src`` itself when all its nodes have names (optimize_graph sees to that), else a named copy."""
    model = onnx.load(str(src))
    if not name_nodes(model):
        return src, model
    named = work / "named.onnx"
    onnx.save(model, str(named))
    return named, model


def _prepared(src: Path, work: Path) -> Path:
    """``quant_pre_process`` of ``src`` (shape inference, basic optimisation), done once per source."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    stat = src.stat()
    key = f"{src.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    prepared, marker = work / "static_pre.onnx", work / "static_pre.key"
    if not (prepared.is_file() and marker.is_file() and marker.read_text() == key):
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=False)
        marker.write_text(key)
    return prepared


class _Reader:
    """onnxruntime's CalibrationDataReader over batches of feeds."""

    def __init__(self, batches: Iterable[Feeds]) -> None:
        self._batches: Iterator[Feeds] = iter(batches)

    def get_next(self) -> Feeds | None:
        return next(self._batches, None)

    def __iter__(self):  # newer onnxruntime iterates the reader
        return iter(self.get_next, None)


def _dynamic(src: Path, dst: Path, recipe: QuantizeRecipe, exclude: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, per_channel=recipe.per_channel,
        reduce_range=recipe.reduce_range, nodes_to_exclude=exclude,
        # after onnxruntime's transformer fusions some tensors have no inferred type
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def _static(src: Path, dst: Path, recipe: QuantizeRecipe, exclude: list[str], calibration: Iterable[Feeds], work: Path,
            full_range: list[str] = ()) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    prepared = _prepared(src, work)
    weights = {n.name: n.input[1] for n in onnx.load(str(prepared)).graph.node if len(n.input) > 1}
    overrides = {weights[name]: [{"quant_type": QuantType.QInt8, "reduce_range": False, "axis": 0}]
                 for name in full_range if name in weights}
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[recipe.calibration_method]
    batches = list(calibration)
    quantize_static(
        str(prepared), str(dst), _Reader(batches), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8 if recipe.activation_type == "uint8" else QuantType.QInt8,
        weight_type=QuantType.QInt8,  # uint8 weights: these, re-encoded below
        per_channel=recipe.per_channel, reduce_range=recipe.reduce_range, calibrate_method=method,
        nodes_to_exclude=exclude,
        extra_options={"CalibTensorRangeSymmetric": False, "DefaultTensorType": onnx.TensorProto.FLOAT,
                       **({"TensorQuantOverrides": overrides} if overrides else {})},
        **_calibration_cache(quantize_static, prepared, batches, recipe.calibration_method, work),
    )
    if recipe.weight_type == "uint8":  # symmetric 8-bit weights stored as uint8 + 128: exact on x86 without VNNI
        from edgeft.export.exact_int8 import exact_int8_model

        dst.write_bytes(exact_int8_model(dst))


def _calibration_cache(quantize_static: Any, model: Path, batches: list[Feeds], method: str, work: Path) -> dict[str, Any]:
    """onnxruntime's own range cache (1.32+), keyed by the model file, the calibration data and the
    method: the activation ranges do not depend on per-channel, reduce_range, the weight type or the
    nodes kept in float, so every static recipe of one export after the first skips calibration."""
    import hashlib
    import inspect

    if "calibration_cache_path" not in inspect.signature(quantize_static).parameters:
        return {}
    stat = model.stat()
    h = hashlib.sha256(f"{model.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{method}".encode())
    for feeds in batches:
        for name in sorted(feeds):
            array = np.ascontiguousarray(feeds[name])
            h.update(f"{name}|{array.dtype}|{array.shape}".encode())
            h.update(array.tobytes())
    return {"calibration_cache_path": str(work / f"ranges-{h.hexdigest()[:20]}.json")}


def _fp16(src: Path, dst: Path) -> None:
    # onnxruntime's converter knows its own fused operators (Attention, SkipLayerNormalization...),
    # which onnxconverter-common's leaves with mismatched casts
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(src)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dst))


def _sensitive_nodes(named: Path, recipe: QuantizeRecipe, work: Path, calibration: Iterable[Feeds]) -> list[tuple[str, float]]:
    """The nodes ranked by precision lost under ``recipe`` without repair (computed once per export)."""
    import json

    from edgeft.export.sensitivity import rank_nodes

    cache = work / (f"sensitivity-{recipe.per_channel}-{recipe.reduce_range}-{recipe.calibration_method}-"
                    f"{recipe.weight_type}-{recipe.activation_type}.json")
    if not cache.is_file():
        batches = list(calibration)
        base = work / "sensitivity-base.onnx"
        _static(named, base, replace(recipe, repair_nodes=0), [], batches, work)
        cache.write_text(json.dumps(rank_nodes(_prepared(named, work), base, batches[:4], work)))
    return [tuple(item) for item in json.loads(cache.read_text())]


def quantize_graph(
    src: str | Path, dst: str | Path, recipe: QuantizeRecipe, work: str | Path,
    calibration: Iterable[Feeds] | None = None, refit: HeadRefit | None = None,
) -> dict[str, Any]:
    """Apply ``recipe`` to the float graph ``src``; returns what the manifest records about it.
    A recipe with ``head_refit`` keeps the head in float and refits it on the quantized backbone's
    features with ``refit``'s data (``edgeft.export.refit``)."""
    with quiet("", stdout=False, ignore_warnings=False):  # the quantizer logs advice on the root logger
        return _quantize_graph(Path(src), Path(dst), recipe, Path(work), calibration, refit)


def _quantize_graph(src: Path, dst: Path, recipe: QuantizeRecipe, work: Path, calibration: Iterable[Feeds] | None,
                    refit: HeadRefit | None) -> dict[str, Any]:
    named, model = _named(src, work)
    nodes = compute_nodes(model)
    exclude = [nodes[0], nodes[-1]] if recipe.exclude_first_last and len(nodes) >= 2 else []
    head = head_node(model) if refit is not None and recipe.head_refit and recipe.refittable else None
    if head is not None and head.name not in exclude:
        exclude.append(head.name)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrators print their progress
            info_extra = _apply(recipe, named, dst, work, calibration, exclude, model)
    except EdgeftError:
        raise
    except Exception as exc:  # onnxruntime.quantization raises plain exceptions of many kinds
        raise QuantizeFailed(f"{recipe.name} quantization failed: {type(exc).__name__}: {exc}") from exc
    exclude, full_range = info_extra
    info: dict[str, Any] = {**recipe.to_dict(), "nodes_excluded": exclude,  # kept in float
                            "nodes_full_range": full_range}
    if head is not None:
        try:
            info.update(refit_head(dst, dst, refit))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise QuantizeFailed(f"{recipe.name}: the head refit failed: {type(exc).__name__}: {exc}") from exc
    if recipe.mode == "fp16":
        info.update(weight_type="float16", activation_type="float16", io_type="float32")
    elif recipe.mode == "dynamic":
        info.update(activation_type="uint8 (dynamic)")
    elif recipe.mode == "none":
        info.update(weight_type="float32", activation_type="float32")
    return info


def _apply(recipe: QuantizeRecipe, named: Path, dst: Path, work: Path, calibration: Iterable[Feeds] | None,
           exclude: list[str], model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """Run the quantizer ``recipe`` names; the nodes kept in float and those given full-range weights."""
    full_range: list[str] = []
    if recipe.repair_nodes and calibration is not None:
        worst = [name for name, _ in _sensitive_nodes(named, recipe, work, calibration)[:recipe.repair_nodes]]
        if recipe.repair == "full-range":
            full_range = worst
        else:
            exclude = [*exclude, *worst]
    if recipe.mode == "dynamic":
        _dynamic(named, dst, recipe, exclude)
    elif recipe.mode == "static":
        if calibration is None:
            raise QuantizeFailed("static quantization needs calibration data")
        _static(named, dst, recipe, exclude, calibration, work, full_range)
    elif recipe.mode == "fp16":
        _fp16(named, dst)
    else:
        shutil.copyfile(named, dst)
    return exclude, full_range
