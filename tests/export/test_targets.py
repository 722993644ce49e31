"""`edgeft export --target`: the device class decides the recipes, the numerics that judge them, the
golden vectors; a frozen backbone's head is refitted on its quantized features."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgeft.bench import BenchConfig, run_bench
from edgeft.cli import main
from edgeft.export.exact_int8 import exact_int8_model
from edgeft.export.refit import HeadRefit, refit_head
from edgeft.export.targets import resolve_target
from edgeft.export.verify import onnx_logits
from edgeft.runtime.cpu import CpuInfo
from edgeft.runtime.preprocess import normalize, preprocessing_from_dict
from tests.conftest import AVX2_HOST_CPU, SEVEN_BIT, TEST_CPU, needs_arm64, read_json, use_cpu

pytestmark = pytest.mark.recipes

AVX2 = CpuInfo(**AVX2_HOST_CPU)
ARM = CpuInfo("aarch64", "Cortex-A76", 8, ("dotprod",))
VNNI = CpuInfo("x86_64", "Some Xeon", 8, ("avx2", "avx512", "avx512_vnni"))


def test_unknown_target_is_one_line_with_the_known_ones(image_run, tmp_path):
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / "b"), "--target", "arm"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip() == ("Error: unknown target 'arm'. Did you mean 'arm64'? "
                                     "Known: arm64, cpu, qemu-arm64, x86-avx2, x86-vnni; or ssh://[user@]host[:port].")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("host, name, numerics, static_7bit, dynamic_7bit", [
    (AVX2, "cpu", "host", True, True),  # u8s8 saturates here: 7-bit weights
    (AVX2, "arm64", "simulated", False, False),  # exact there, and reproduced exactly here
    (AVX2, "x86-vnni", "simulated", False, False),
    (ARM, "arm64", "host", False, False),
    (ARM, "cpu", "host", False, False),
    (VNNI, "arm64", "host", False, False),
    (VNNI, "cpu", "host", False, False),
    (VNNI, "x86-avx2", "host", True, True),  # 7-bit weights: exact on every kernel, so judged here as they run there
    (AVX2, "x86-avx2", "host", True, True),
    (ARM, "x86-avx2", "host", True, True),
])
def test_target_rules(host, name, numerics, static_7bit, dynamic_7bit):
    target = resolve_target(name, host)
    assert target.numerics == numerics
    assert target.reduce_range("static") is static_7bit and target.reduce_range("dynamic") is dynamic_7bit
    assert not target.reduce_range("none") and not target.reduce_range("fp16")


@pytest.mark.parametrize("host, cls", [(AVX2, "x86-avx2"), (VNNI, "x86-vnni"), (ARM, "arm64")])
def test_the_cpu_target_records_which_class_this_machine_was(host, cls):
    assert resolve_target("cpu", host).to_dict()["class"] == cls
    for name in ("arm64", "x86-vnni", "x86-avx2"):
        assert resolve_target(name, host).to_dict()["class"] == name


def test_an_avx2_bundle_made_on_a_vnni_host_has_7bit_weights_and_verifies(image_run, tmp_path, monkeypatch):
    """The issue's case: a VNNI machine makes a bundle for x86 without VNNI."""
    use_cpu(monkeypatch, VNNI)
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / "avx2"), "-q", "static",
                                       "--target", "x86-avx2", "--json"])
    assert result.exit_code == 0, result.output
    q = read_json(tmp_path / "avx2" / "edgeft.json")["quantization"]
    assert q["reduce_range"] and q["target"]["name"] == "x86-avx2" and q["target"]["class"] == "x86-avx2"
    assert q["target"]["numerics"] == "host" and "reduce-range" in q["name"]
    weights = [w for w in _int8_arrays(tmp_path / "avx2" / "model.onnx") if w.size > 64]
    # 7 bits: onnxruntime's reduced symmetric range is [-64, 64], where 255 * 64 * 2 < 2**15 cannot saturate
    assert weights and max(int(np.abs(w.astype(np.int16)).max()) for w in weights) == 64
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "avx2"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kernel_mismatch"] is None
    use_cpu(monkeypatch, AVX2)  # and on the machine it is made for: the same answer
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "avx2"), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["kernel_mismatch"] is None, result.output


def _int8_arrays(path):
    model = onnx.load(str(path))
    return [numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == TensorProto.INT8]


def _golden_feeds(bundle):
    manifest = read_json(bundle / "edgeft.json")
    golden = np.load(bundle / "golden.npz")
    return manifest, golden, [{"pixel_values": normalize(golden["crops"], preprocessing_from_dict(manifest["preprocessing"]))}]


def test_arm64_bundle_is_judged_and_golden_with_simulated_exact_int8(image_run, tmp_path, avx2_host):
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / "arm"), "-q", "static",
                                       "--target", "arm64", "--per-channel", "--json"])
    assert result.exit_code == 0, result.output
    manifest, golden, feeds = _golden_feeds(tmp_path / "arm")
    q = manifest["quantization"]
    assert q["target"]["name"] == "arm64" and q["target"]["numerics"] == "simulated"
    assert q["mode"] == "static" and not q["reduce_range"]  # 8-bit weights: exact on ARM
    assert manifest["golden"]["numerics"] == "simulated"
    exact = ort.InferenceSession(exact_int8_model(tmp_path / "arm" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(golden["logits"] - exact.run(None, feeds[0])[0]).max() <= 1e-6  # the target's outputs


def _head(path):
    model = onnx.load(str(path))
    gemm = next(n for n in model.graph.node if model.graph.output[0].name in n.output)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return gemm.op_type, inits.get(gemm.input[1])


def test_a_frozen_runs_head_is_refitted_when_the_trained_head_misses_the_budget(image_run, tmp_path, monkeypatch):
    from edgeft.export import pipeline, select

    for name, flag in (("refit", "auto"), ("plain", "never")):
        scores = iter([1.0, 0.5, 1.0, 1.0])  # float; the first recipe misses; the next one holds
        for module in (pipeline, select):
            monkeypatch.setattr(module, "accuracy", lambda logits, labels, scores=scores: next(scores))
        result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / name), "-q", "static",
                                           "--head-refit", flag])
        assert result.exit_code == 0, result.output
    refit_q = read_json(tmp_path / "refit" / "edgeft.json")["quantization"]
    plain_q = read_json(tmp_path / "plain" / "edgeft.json")["quantization"]
    bits = " reduce-range" if SEVEN_BIT else ""  # `--target cpu` is the suite's profile (EDGEFT_TEST_CPU)
    assert [a["recipe"] for a in refit_q["attempts"]] == [f"static u8s8 per-tensor{bits} minmax",
                                                         f"static u8s8 per-tensor{bits} minmax head refit"]
    assert refit_q["head_refit"] and refit_q["head_refit_samples"] == 18 and refit_q["name"].endswith("head refit")
    assert not plain_q["head_refit"] and plain_q["name"] == f"static u8s8 per-channel{bits} minmax"
    assert refit_q["target"]["class"] == TEST_CPU
    op, refitted = _head(tmp_path / "refit" / "model.onnx")
    assert op == "Gemm" and refitted is not None and refitted.dtype == np.float32  # the head stays in float
    from safetensors.numpy import load_file

    trained = load_file(str(image_run / "model.safetensors"))["head.1.weight"]
    assert refitted.shape == trained.shape and not np.allclose(refitted, trained, atol=1e-3)


def test_refit_head_fits_the_features_it_is_given(tmp_path):
    """A graph whose head is wrong for the labels: the refit makes it right on its own features."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (300, 8)).astype(np.float32)
    w = np.eye(8, 16, dtype=np.float32)
    labels = (np.maximum(x @ w, 0) @ rng.normal(0, 1, (16, 3))).argmax(-1)  # linear in the features
    head = rng.normal(0, 1, (3, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["f"]),
         helper.make_node("Gemm", ["f", "head_w", "head_b"], ["logits"], transB=1)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(head, "head_w"),
         numpy_helper.from_array(np.zeros(3, np.float32), "head_b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    feeds = [{"x": x}]
    before = float(np.mean(onnx_logits(tmp_path / "m.onnx", feeds).argmax(-1) == labels))
    info = refit_head(tmp_path / "m.onnx", tmp_path / "r.onnx", HeadRefit(feeds, labels.tolist()))
    after = float(np.mean(onnx_logits(tmp_path / "r.onnx", feeds).argmax(-1) == labels))
    assert info["head_refit"] and info["head_refit_samples"] == 300
    assert before < 0.6 and after >= 0.95
    assert [o.name for o in onnx.load(str(tmp_path / "r.onnx")).graph.output] == ["logits"]


@pytest.mark.arm
@needs_arm64
def test_simulated_numerics_agree_with_the_emulated_arm64_target(image_run, tmp_path, avx2_host):
    """The golden vectors of an arm64 bundle (simulated here) against onnxruntime's real ARM kernels."""
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / "arm"), "-q", "static",
                                       "--target", "arm64", "--per-channel"])
    assert result.exit_code == 0, result.output
    report = run_bench(BenchConfig((str(tmp_path / "arm"),), target="qemu-arm64", runs=1, rounds=1, warmup=0))
    golden = report["golden"][0]
    assert golden["top1_agreement"] == 1.0 and golden["within_tolerance"], golden
    # the re-encoded graph runs the same integer arithmetic: measured bit-identical on Lite0 bundles
    # (max abs diff 0 to 2e-6); the old simulation (QDQ unfused) differed by 0.066 here, 1.1% of the scale
    scale = max(1.0, float(np.abs(np.load(tmp_path / "arm" / "golden.npz")["logits"]).max()))
    assert golden["max_abs_diff"] <= 1e-4 * scale, json.dumps(golden)


def test_verify_says_when_this_cpu_cannot_compute_as_the_target(image_run, tmp_path, monkeypatch, avx2_host):
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / "arm"), "-q", "static",
                                       "--target", "arm64", "--per-channel"])
    assert result.exit_code == 0, result.output
    use_cpu(monkeypatch, avx2_host)  # verify on an x86 CPU without VNNI
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "arm")])
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("made for arm64 (exact int8 arithmetic, 8-bit weights); this x86_64 CPU without VNNI "
                           "saturates u8s8") and "the bundle is intact" in line, result.output
    out = json.loads(CliRunner().invoke(main, ["verify", str(tmp_path / "arm"), "--json"]).stdout)
    assert out["kernel_mismatch"] and out["simulated_target"]["ok"]
    use_cpu(monkeypatch, ARM)  # on the target's kind of CPU: nothing to say
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "arm"), "--json"])
    assert json.loads(result.stdout)["kernel_mismatch"] is None


def test_an_arm64_doctor_made_here_offers_8bit_weights_only():
    """arm64 made on an AVX2 host: every INT8 candidate, static and dynamic, gets 8-bit weights (the
    target computes them exactly, and so does the re-encoded graph here)."""
    from edgeft.export.preflight import preflight

    target = resolve_target("arm64", AVX2)
    pre = preflight(target.cpu, "text", {"MatMul": 10}, "1.32.0", ["CPUExecutionProvider"])
    recipes = [v.recipe for v in pre.verdicts if v.recipe.quantized]
    assert {r.mode for r in recipes} >= {"dynamic", "static"} and not any(r.reduce_range for r in recipes)


def test_head_refit_always_refits_a_recipe_that_already_holds(image_run, tmp_path):
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / "b"), "-q", "static",
                                       "--head-refit", "always"])
    assert result.exit_code == 0, result.output
    q = read_json(tmp_path / "b" / "edgeft.json")["quantization"]
    assert [a["recipe"].endswith("head refit") for a in q["attempts"]] == [True]  # the twin alone
    assert q["head_refit"] and q["name"].endswith("head refit")


@pytest.mark.parametrize("host, repairs", [(AVX2, ("full-range", "float")), (VNNI, ("float",)), (ARM, ("float",))])
def test_an_avx2_bundle_keeps_8bit_nodes_only_where_this_host_computes_them_as_avx2_does(host, repairs):
    """The full-range repair gives a few nodes of a 7-bit recipe 8-bit weights: they saturate on an AVX2
    machine, so only a host whose u8s8 saturates too can judge them for --target x86-avx2."""
    from edgeft.export.config import ExportConfig

    recipe = ExportConfig(source="x", output="y", quantize="static").recipe(resolve_target("x86-avx2", host))
    assert recipe.reduce_range and recipe.repairs == repairs
    assert ExportConfig(source="x", output="y", quantize="static").recipe(resolve_target("cpu", AVX2)).repairs == (
        "full-range", "float")  # this machine's own kernels judge them
