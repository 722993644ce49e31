"""Exact int8 reproduced on any CPU: int8 weights re-encoded as uint8 (the same values), so that
onnxruntime's fused kernels here compute what ARM, VNNI and GPU kernels compute."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeft.export.exact_int8 import exact_int8_model
from edgeft.export.verify import onnx_logits

K, N = 64, 8


def _qdq_matmul(path, weights: np.ndarray) -> None:
    """x -> Q/DQ (uint8, scale 1) -> MatMul with DQ(int8 weights, scale 1) -> Q/DQ out: a graph that
    onnxruntime fuses into an integer kernel, whose products 255 x 127 saturate in pairs on AVX2 u8s8."""
    one, zero_u8, zero_i8 = (numpy_helper.from_array(np.array(v, dtype=t), n) for v, t, n in
                             ((1.0, np.float32, "one"), (0, np.uint8, "zero_u8"), (np.zeros(N), np.int8, "w_zero")))
    out_scale = numpy_helper.from_array(np.array(K * 255 * 127 / 255, np.float32), "out_scale")
    nodes = [helper.make_node("QuantizeLinear", ["x", "one", "zero_u8"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "one", "zero_u8"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zero"], ["wd"], axis=1),
             helper.make_node("MatMul", ["xd", "wd"], ["y"]),
             helper.make_node("QuantizeLinear", ["y", "out_scale", "zero_u8"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "out_scale", "zero_u8"], ["out"])]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, N])],
        [one, zero_u8, zero_i8, out_scale, numpy_helper.from_array(weights, "w"),
         numpy_helper.from_array(np.ones(N, np.float32), "w_scale")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_the_reencoded_graph_computes_exact_int8_on_this_cpu(tmp_path):
    rng = np.random.default_rng(0)
    weights = np.where(rng.random((K, N)) < 0.9, 127, -127).astype(np.int8)
    x = np.full((1, K), 255.0, np.float32)
    _qdq_matmul(tmp_path / "m.onnx", weights)
    exact_y = x @ weights.astype(np.float32)
    scale = K * 255 * 127 / 255
    expected = np.clip(np.round(exact_y / scale), 0, 255) * scale  # the graph's output quantization, exactly
    got = onnx_logits(tmp_path / "m.onnx", [{"x": x}], numerics="simulated")
    assert np.array_equal(got, expected.astype(np.float32)), (got, expected)

    reencoded = onnx.load_from_string(exact_int8_model(tmp_path / "m.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in reencoded.graph.initializer}
    assert inits["w__exact_u8"].dtype == np.uint8 and (inits["w_zero__exact_u8"] == 128).all()
    assert np.array_equal(inits["w__exact_u8"].astype(np.int16) - 128, weights)  # the same values
    assert "w" not in inits  # the int8 copy is gone


def test_graphs_without_int8_weights_come_back_unchanged(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "f.onnx")
    assert onnx.load_from_string(exact_int8_model(tmp_path / "f.onnx")) == onnx.load(str(tmp_path / "f.onnx"))
