"""The one way edgeft opens an onnxruntime session: threads, providers, graph optimisation level,
quiet logging and custom operator libraries decided here, and nowhere else.

Standard library and onnxruntime only: ``edgeft bench`` copies this file beside its runner (as
``_edgeft_sessions.py``) to devices where edgeft is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

CPU = ("CPUExecutionProvider",)
OPTIMIZATION = ("all", "extended", "basic", "none")


def providers_for(kind: str) -> list[str]:
    """The providers of a device kind: ``cpu``; ``cuda`` (TensorRT first where present, CPU for the
    nodes they lack); ``auto`` (CUDA where available, else CPU)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if kind == "cpu":
        return list(CPU)
    if kind == "cuda":
        return [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available] + list(CPU)
    if kind == "auto":
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    raise ValueError(f"unknown provider kind {kind!r}: cpu, cuda or auto")


def open_session(model: str | Path | bytes, threads: int = 0, providers: Sequence[str] = CPU,
                 optimization: str = "all", save_optimized: str | Path | None = None,
                 custom_ops_library: str | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on ``model`` (a path or serialized bytes).

    ``threads`` 0 lets onnxruntime choose; ``optimization`` is the graph optimisation level;
    ``save_optimized`` writes the optimised graph there; ``custom_ops_library`` registers a
    shared library of custom operators (onnxruntime-extensions' for text app models)."""
    import onnxruntime as ort

    if optimization not in OPTIMIZATION:
        raise ValueError(f"optimization must be one of {', '.join(OPTIMIZATION)}")
    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: warnings about unused initializers are noise to users
    options.graph_optimization_level = levels[optimization]
    if save_optimized is not None:
        options.optimized_model_filepath = str(save_optimized)
    if custom_ops_library:
        options.register_custom_ops_library(custom_ops_library)
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=list(providers))
