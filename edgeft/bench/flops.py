"""Work per inference counted from the ONNX graph: multiply-adds of the matrix and convolution
nodes, float or integer, at concrete input shapes (2 operations per multiply-add).

Shapes come from one run of the graph with every node output exposed, so fused
onnxruntime operators (Attention, QAttention, SkipLayerNormalization...) need no shape rules.
Needs the ``onnx`` package (the bench's optional extra); without it the count is skipped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

Shapes = dict[str, tuple[int, ...]]

_MATMUL = {"MatMul", "MatMulInteger", "QLinearMatMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
           "FusedMatMul", "MatMulNBits", "Gemm"}
_CONV = {"Conv", "ConvInteger", "QLinearConv", "FusedConv", "NhwcConv", "ConvTranspose"}
_ATTENTION = {"Attention", "QAttention"}
# operands' positions: (A, B) for matrix products
_OPERANDS = {"QLinearMatMul": (0, 3), "QLinearConv": (0, 3)}


def _matmul_macs(node: Any, shape: Callable[[str], tuple[int, ...] | None]) -> int:
    a_index, _ = _OPERANDS.get(node.op_type, (0, 1))
    a, out = shape(node.input[a_index]), shape(node.output[0])
    if a is None or out is None or not a:
        return 0
    k = a[-1]
    if node.op_type == "Gemm" and any(attr.name == "transA" and attr.i for attr in node.attribute):
        k = a[0]
    return math.prod(out) * k


def _conv_macs(node: Any, shape: Callable[[str], tuple[int, ...] | None]) -> int:
    _, w_index = _OPERANDS.get(node.op_type, (0, 1))
    w, out = shape(node.input[w_index]), shape(node.output[0])
    if w is None or out is None:
        return 0
    return math.prod(out) * math.prod(w[1:])  # W is (M, C/group, kH, kW)


def _attention_macs(node: Any, shape: Callable[[str], tuple[int, ...] | None]) -> int:
    x, w = shape(node.input[0]), shape(node.input[1])
    if x is None or w is None or len(x) != 3:
        return 0
    batch, seq, hidden = x
    projected = w[-1] // 3  # query, key and value side by side
    return batch * seq * hidden * w[-1] + 2 * batch * seq * seq * projected


def count_macs(model: Any, shapes: Shapes) -> int:
    """Multiply-adds of an ``onnx.ModelProto`` whose tensor shapes are given."""
    initializers = {i.name: tuple(i.dims) for i in model.graph.initializer}

    def shape(name: str) -> tuple[int, ...] | None:
        return shapes.get(name) or initializers.get(name)

    total = 0
    for node in model.graph.node:
        if node.op_type in _MATMUL:
            total += _matmul_macs(node, shape)
        elif node.op_type in _CONV:
            total += _conv_macs(node, shape)
        elif node.op_type in _ATTENTION:
            total += _attention_macs(node, shape)
    return total


def _shapes(model: Any, feeds: dict[str, np.ndarray]) -> Shapes:
    import onnx.helper

    from edgeft.runtime.sessions import open_session

    exposed = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in exposed:
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
                exposed.add(name)
    session = open_session(model.SerializeToString(), optimization="none")
    values = session.run(None, feeds)
    shapes = {o.name: tuple(np.shape(v)) for o, v in zip(session.get_outputs(), values, strict=True)}
    shapes.update({name: tuple(v.shape) for name, v in feeds.items()})
    return shapes


def graph_flops(model_file: Path, feeds: dict[str, np.ndarray]) -> int | None:
    """Operations (2 × multiply-adds) of one run of ``model_file`` on ``feeds``; None without onnx
    or for a graph this cannot read (an ORT-format model)."""
    try:
        import onnx
    except ImportError:
        return None
    if model_file.suffix != ".onnx":
        return None
    model = onnx.load(str(model_file))
    return 2 * count_macs(model, _shapes(model, feeds))
