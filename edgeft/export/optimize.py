"""Graph optimisation that keeps the model loadable by plain onnxruntime on CPU.

Text encoders: onnxruntime's transformer optimizer (attention, LayerNorm, GELU fusions into
com.microsoft ops that every onnxruntime build has). CNNs: onnxruntime's *basic* offline level
(constant folding, redundant-node removal), which is provider-independent; the extended fusions
are left to the session at load time, where they fit the machine that runs them.
"""

from __future__ import annotations

import collections
from pathlib import Path

import onnx


def _optimize_transformer(src: Path, dst: Path, num_heads: int, hidden_size: int) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    from edgeft.export.quiet import quiet

    with quiet("onnxruntime.transformers", stdout=False, ignore_warnings=False):  # its advice, restored after
        optimized = optimize_model(str(src), model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                                   opt_level=0)
    optimized.save_model_to_file(str(dst))


def _optimize_basic(src: Path, dst: Path) -> None:
    from edgeft.runtime.sessions import open_session

    open_session(src, optimization="basic", save_optimized=dst)


def op_counts(path: str | Path) -> dict[str, int]:
    """How many nodes of each operator type the graph has."""
    return dict(collections.Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node))


def optimize_graph(src: str | Path, dst: str | Path, modality: str, num_heads: int = 0, hidden_size: int = 0) -> Path:
    """ONNX file in, optimised ONNX file out, every node named."""
    from edgeft.export.quantize import name_nodes

    src, dst = Path(src), Path(dst)
    if modality == "text":
        _optimize_transformer(src, dst, num_heads, hidden_size)
    else:
        _optimize_basic(src, dst)
    model = onnx.load(str(dst))
    if name_nodes(model):  # once here, so each quantization step can address nodes as they are
        onnx.save(model, str(dst))
    return dst
