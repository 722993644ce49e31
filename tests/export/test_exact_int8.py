"""Exact int8 reproduced on any CPU: int8 weights re-encoded as uint8 (the same values), so that
onnxruntime's fused kernels here compute what ARM, VNNI and GPU kernels compute."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
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


# -- every operator with int8 weights, not only DequantizeLinear ------------------------------------
# (weight input, zero point input) of each operator, as the ONNX and com.microsoft specs define them
SLOTS = {"MatMulInteger": (1, 3), "ConvInteger": (1, 3), "DynamicQuantizeMatMul": (1, 3), "QAttention": (1, 7)}


def _integer_graph(path, op: str, weights: np.ndarray, zero_point: np.ndarray) -> None:
    """One ``op`` node with int8 ``weights`` and their ``zero_point``: uint8 x in, the op's output out."""
    ms = "com.microsoft" if op in ("DynamicQuantizeMatMul", "QAttention") else ""
    inits = [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(zero_point, "w_zero"),
             numpy_helper.from_array(np.array(0, np.uint8), "x_zero"), numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    x_type, out_type = TensorProto.UINT8, TensorProto.INT32
    if op == "MatMulInteger":
        node, x_shape, out_shape = helper.make_node(op, ["x", "w", "x_zero", "w_zero"], ["y"]), [1, K], [1, N]
    elif op == "ConvInteger":
        node, x_shape, out_shape = helper.make_node(op, ["x", "w", "x_zero", "w_zero"], ["y"]), [1, K, 1, 1], [1, N, 1, 1]
    elif op == "DynamicQuantizeMatMul":
        node = helper.make_node(op, ["x", "w", "w_scale", "w_zero"], ["y"], domain=ms)
        inits.append(numpy_helper.from_array(np.ones(N, np.float32), "w_scale"))
        x_type, out_type, x_shape, out_shape = TensorProto.FLOAT, TensorProto.FLOAT, [1, K], [1, N]
    else:  # QAttention: structure only (its kernel needs a real attention shape)
        node = helper.make_node(op, ["x", "w", "bias", "one", "one", "", "x_zero", "w_zero"], ["y"], domain=ms,
                                num_heads=1)
        inits.append(numpy_helper.from_array(np.zeros(weights.shape[1], np.float32), "bias"))
        x_type, out_type, x_shape, out_shape = TensorProto.UINT8, TensorProto.FLOAT, [1, 1, K], [1, 1, N // 3]
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", x_type, x_shape)],
                              [helper.make_tensor_value_info("y", out_type, out_shape)], inits)
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(ms, 1)] if ms else [])
    onnx.save(helper.make_model(graph, opset_imports=opsets), path)


def _full_range(op: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = {"ConvInteger": (N, K, 1, 1), "QAttention": (K, 3 * N)}.get(op, (K, N))
    return np.where(rng.random(shape) < 0.9, 127, -127).astype(np.int8)  # pairs of 255 x 127 saturate int16


@pytest.mark.parametrize("op", sorted(SLOTS))
def test_every_integer_operator_has_its_int8_weights_reencoded(tmp_path, op):
    weights = _full_range(op)
    zero = np.zeros(N if op in ("MatMulInteger", "DynamicQuantizeMatMul") else (), np.int8)  # per-tensor where the kernel asks
    _integer_graph(tmp_path / "m.onnx", op, weights, zero)
    model = onnx.load_from_string(exact_int8_model(tmp_path / "m.onnx"))
    node, inits = model.graph.node[0], {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    w, z = (inits[node.input[i]] for i in SLOTS[op])
    assert w.dtype == np.uint8 and np.array_equal(w.astype(np.int16) - 128, weights), op  # the same values
    assert z.dtype == np.uint8 and (z == 128).all() and z.shape == zero.shape
    if op == "QAttention":
        return
    x = np.full([1, K, 1, 1] if op == "ConvInteger" else [1, K], 255, np.float32 if op == "DynamicQuantizeMatMul" else np.uint8)
    exact = x.reshape(1, K).astype(np.int64) @ weights.reshape(N, K).T.astype(np.int64) if op == "ConvInteger" else \
        x.astype(np.int64) @ weights.astype(np.int64)
    got = onnx_logits(tmp_path / "m.onnx", [{"x": x}], numerics="simulated").reshape(1, N)
    if op == "DynamicQuantizeMatMul":  # x quantized to uint8 with scale 1 (range 0..255): exact too
        assert np.allclose(got, exact, rtol=1e-6), (got, exact)
    else:
        assert np.array_equal(got, exact), (got, exact)  # u8u8 kernels are exact on every CPU


def test_weights_with_a_nonzero_zero_point_are_left_as_they_are(tmp_path):
    """Re-encoding assumes zero point 0 (onnxruntime's symmetric weights); any other is kept."""
    weights = _full_range("MatMulInteger")
    _integer_graph(tmp_path / "m.onnx", "MatMulInteger", weights, np.full(N, 3, np.int8))
    assert onnx.load_from_string(exact_int8_model(tmp_path / "m.onnx")) == onnx.load(str(tmp_path / "m.onnx"))


def test_simulated_numerics_run_the_reencoded_graph(tmp_path, monkeypatch):
    """On a VNNI or ARM host both graphs compute the same numbers, so numbers cannot tell whether
    the simulation ran: which graph each numerics runs is checked instead."""
    import edgeft.export.exact_int8 as exact_int8

    seen, real = [], exact_int8.exact_int8_model
    monkeypatch.setattr(exact_int8, "exact_int8_model", lambda path: seen.append(path) or real(path))
    _qdq_matmul(tmp_path / "m.onnx", _full_range("MatMulInteger"))
    feeds = [{"x": np.full((1, K), 255.0, np.float32)}]
    onnx_logits(tmp_path / "m.onnx", feeds, numerics="host")
    assert seen == []
    onnx_logits(tmp_path / "m.onnx", feeds, numerics="simulated")
    assert seen == [tmp_path / "m.onnx"]
