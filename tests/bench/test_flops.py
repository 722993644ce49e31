"""The work counted from an ONNX graph is the work of its matrix products and convolutions."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from edgeft.bench.flops import graph_flops


def _model(path):
    w = helper.make_tensor("w", TensorProto.FLOAT, [8, 4, 3, 3], np.zeros(8 * 4 * 9, np.float32))
    m = helper.make_tensor("m", TensorProto.FLOAT, [8, 5], np.zeros(40, np.float32))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMean", ["c"], ["r"], axes=[2, 3], keepdims=0),
             helper.make_node("MatMul", ["r", "m"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 10, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 5])], [w, m])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_conv_and_matmul_counted_at_the_given_batch(tmp_path):
    path = _model(tmp_path / "m.onnx")
    for batch in (1, 3):
        conv = batch * 8 * 10 * 10 * (4 * 3 * 3)
        matmul = batch * 5 * 8
        assert graph_flops(path, {"x": np.zeros((batch, 4, 10, 10), np.float32)}) == 2 * (conv + matmul)


def test_a_quantized_bundle_counts_work_linear_in_batch(text_bundle, tmp_path):
    feeds = {n: np.ones((2, 16), np.int64) for n in ("input_ids", "attention_mask", "token_type_ids")}
    flops = graph_flops(text_bundle / "model.onnx", feeds)
    assert flops and flops > 0
    assert graph_flops(text_bundle / "model.onnx", {k: np.ones((4, 16), np.int64) for k in feeds}) == 2 * flops
