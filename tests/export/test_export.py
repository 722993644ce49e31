"""`edgeft export` as a user runs it: each quantization mode, the fallback chain, the bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from edgeft.cli import main
from edgeft.export import ExportConfig, QuantizeRecipe, export_bundle, pipeline, select
from edgeft.manifest import FORMAT_VERSION, ManifestError, read_manifest, sha256_file
from edgeft.runtime.cpu import CpuInfo
from tests.conftest import read_json, write_text_csv

PLAIN_CHECK = Path(__file__).with_name("plain_check.py")


def export(source, out, *args):
    result = CliRunner().invoke(main, ["export", str(source), "-o", str(out), "--json", *args])
    return result, (json.loads(result.stdout) if result.exit_code == 0 else None)


def _recipe(mode: str, cpu: CpuInfo) -> QuantizeRecipe:
    """What `edgeft export --quantize MODE` asks for on ``cpu`` (the default target: this CPU)."""
    from edgeft.export.targets import resolve_target

    return ExportConfig(source="run", output="out", quantize=mode).recipe(resolve_target("cpu", cpu))


def plain_check(bundle: Path) -> dict:
    """The golden vectors reproduced in a fresh interpreter with onnxruntime and the manifest only."""
    out = subprocess.run([sys.executable, str(PLAIN_CHECK), str(bundle)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("mode", ["none", "dynamic", "static", "fp16"])
def test_each_quantization_mode_gives_a_verified_bundle(text_run, tmp_path, mode):
    result, info = export(text_run, tmp_path / "bundle", "--quantize", mode)
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "bundle"
    assert sorted(p.name for p in bundle.iterdir()) == ["edgeft.json", "golden.npz", "model.onnx", "tokenizer.json"]
    manifest = read_manifest(bundle)
    assert manifest.quantization["mode"] in (mode, "dynamic")  # static may fall back to dynamic
    assert manifest.source["model_sha256"] == sha256_file(bundle / "model.onnx")
    assert manifest.verification["float_vs_torch"]["max_abs_diff"] <= 1e-4
    assert manifest.verification["accuracy"]["drop_points"] <= 1.0
    assert [t.name for t in manifest.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest.inputs[0].shape == ["batch", "sequence"] and manifest.outputs[0].shape == ["batch", 3]
    check = plain_check(bundle)
    assert check["max_abs_diff"] <= check["atol"] and check["top1_agrees"] and not check["edgeft_imported"]
    graph = __import__("onnx").load(str(bundle / "model.onnx")).graph
    ops = {n.op_type for n in graph.node}
    expected = {"none": "Attention", "dynamic": "MatMulInteger", "static": "QuantizeLinear", "fp16": "Cast"}[mode]
    assert expected in ops or manifest.quantization["mode"] != mode, ops
    if mode in ("dynamic", "static"):
        assert info["size_ratio"] < 0.5
    if mode == "fp16":  # the weights themselves are float16, and the file about half the float one
        assert manifest.quantization["mode"] == "fp16"
        weights = [t for t in graph.initializer if len(t.dims) >= 2]
        assert weights and all(t.data_type == __import__("onnx").TensorProto.FLOAT16 for t in weights)
        assert 0.4 < info["size_ratio"] < 0.6, info["size_ratio"]


def test_image_bundle_is_reproduced_by_plain_onnxruntime(image_run, tmp_path):
    result, info = export(image_run, tmp_path / "float")
    assert result.exit_code == 0, result.output
    manifest = read_json(tmp_path / "float" / "edgeft.json")
    assert manifest["format_version"] == FORMAT_VERSION and manifest["task"] == "image-classification"
    assert manifest["labels"] == ["blue", "green", "red"]
    assert manifest["inputs"] == [{"name": "pixel_values", "dtype": "float32", "shape": ["batch", 3, 64, 64]}]
    assert manifest["preprocessing"]["size"] == 64 and manifest["source"]["kind"] == "run"
    assert manifest["verification"]["float_vs_torch"]["max_abs_diff"] <= 1e-4
    check = plain_check(tmp_path / "float")
    assert check["max_abs_diff"] <= check["atol"] and check["top1_agrees"] and not check["edgeft_imported"]
    session = ort.InferenceSession(str(tmp_path / "float" / "model.onnx"))
    batch = session.run(None, {"pixel_values": np.zeros((5, 3, 64, 64), np.float32)})[0]
    assert batch.shape == (5, 3)  # dynamic batch axis


def test_static_image_export_records_its_calibration(image_run, tmp_path):
    result, info = export(image_run, tmp_path / "int8", "--quantize", "static", "--calibration-samples", "8",
                          "--calibration-method", "percentile")
    assert result.exit_code == 0, result.output
    q = read_json(tmp_path / "int8" / "edgeft.json")["quantization"]
    assert q["calibration_method"] == "percentile" and q["calibration_samples"] == 8
    assert q["attempts"][-1]["chosen"] and q["name"] == q["attempts"][-1]["recipe"]
    assert q["mode"] == "static" and q["name"].startswith("static")  # static kept, not a fallback
    ops = [n.op_type for n in __import__("onnx").load(str(tmp_path / "int8" / "model.onnx")).graph.node]
    assert ops.count("QuantizeLinear") >= 10 and ops.count("DequantizeLinear") >= 10
    assert info["size_ratio"] < 0.4, info["size_ratio"]  # INT8 weights: about a quarter of float
    check = plain_check(tmp_path / "int8")
    assert check["max_abs_diff"] <= check["atol"] and check["top1_agrees"]


def test_fallback_chain_keeps_the_first_recipe_within_budget(text_run, tmp_path, monkeypatch):
    scores = iter([1.0, 0.5, 1.0])  # float, then the first recipe drops 50 points, then the next one holds
    for module in (pipeline, select):
        monkeypatch.setattr(module, "accuracy", lambda logits, labels: next(scores))
    result = export_bundle(ExportConfig(source=str(text_run), output=str(tmp_path / "b"), quantize="dynamic"))
    attempts = result.manifest.quantization["attempts"]
    assert [(a["within_budget"], a["chosen"]) for a in attempts] == [(False, False), (True, True)]
    assert "per-channel" in attempts[1]["recipe"] and result.manifest.quantization["per_channel"]


def test_no_recipe_within_budget_writes_nothing(text_run, tmp_path, monkeypatch):
    scores = iter([1.0] + [0.5] * 100)
    for module in (pipeline, select):
        monkeypatch.setattr(module, "accuracy", lambda logits, labels: next(scores))
    result = CliRunner().invoke(main, ["export", str(text_run), "-o", str(tmp_path / "b"), "-q", "static"])
    assert result.exit_code == 1
    assert "no recipe stayed within --max-accuracy-drop 1 points" in result.output
    assert "dynamic u8s8 per-channel" in result.output  # the whole chain was tried, static to dynamic
    assert list(tmp_path.iterdir()) == []


def test_a_failure_mid_export_leaves_no_bundle(text_run, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline, "write_golden", broken)
    with pytest.raises(RuntimeError):
        export_bundle(ExportConfig(source=str(text_run), output=str(tmp_path / "b")))
    assert list(tmp_path.iterdir()) == []


def test_force_replaces_a_bundle(text_run, tmp_path):
    assert export(text_run, tmp_path / "b")[0].exit_code == 0
    result, _ = export(text_run, tmp_path / "b", "--force", "-q", "dynamic")
    assert result.exit_code == 0, result.output
    assert read_manifest(tmp_path / "b").quantization["mode"] == "dynamic"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_fallback_order():
    cpu = CpuInfo("x86_64", "test", 2, ("avx2",))
    chain = [r.name for r in _recipe("static", cpu).fallbacks()]
    assert chain[0] == "static u8s8 per-tensor reduce-range minmax"
    assert chain[1] == "static u8s8 per-channel reduce-range minmax"
    assert chain[2].endswith("first/last float") and chain[-1].startswith("dynamic")
    assert _recipe("static", cpu).repairs == ("full-range", "float")  # tried before the mode changes
    vnni = CpuInfo("x86_64", "test", 2, ("avx2", "avx512_vnni"))
    assert not _recipe("static", vnni).reduce_range
    assert [r.name for r in _recipe("none", cpu).fallbacks()] == ["none"]


# -- bad input: one line, exit 2, nothing written ---------------------------------------------------

def _bad(args, tmp_path, expected):
    result = CliRunner().invoke(main, ["export", *map(str, args)])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    return result


def test_source_that_is_neither_run_nor_backbone(tmp_path):
    _bad(["efficientnet_lite1", "-o", tmp_path / "out"], tmp_path, "neither a run directory nor a backbone")
    _bad([tmp_path, "-o", tmp_path / "out"], tmp_path, "not a run directory")


def test_run_dir_with_missing_or_corrupt_weights(text_run, tmp_path):
    import shutil

    broken = tmp_path / "run"
    shutil.copytree(text_run, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    _bad([broken, "-o", tmp_path / "out"], tmp_path, "not a readable safetensors file")
    (broken / "model.safetensors").unlink()
    _bad([broken, "-o", tmp_path / "out"], tmp_path, "model.safetensors is missing")


def test_unwritable_or_existing_output(text_run, tmp_path):
    (tmp_path / "file").write_text("x")
    _bad([text_run, "-o", tmp_path / "file" / "out"], tmp_path, "cannot create")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["export", str(text_run), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "pass --force" in result.output
    result = CliRunner().invoke(main, ["export", str(text_run), "-o", str(tmp_path / "out"), "--force"])
    assert result.exit_code == 2 and "not an edgeft bundle" in result.output
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_calibration_data_of_the_wrong_modality(image_run, text_run, tmp_path):
    texts = write_text_csv(tmp_path / "texts.csv")
    _bad([image_run, "-o", tmp_path / "out", "-q", "static", "--calibration-data", texts], tmp_path,
         "holds text samples; efficientnet_lite0 takes image")
    _bad([text_run, "-o", tmp_path / "out", "-q", "static", "--calibration-data", image_run.parent / "images"],
         tmp_path, "takes text")


def test_static_on_a_backbone_name_needs_calibration_data(tmp_path):
    _bad(["efficientnet_lite0", "-o", tmp_path / "out", "-q", "static"], tmp_path, "pass --calibration-data")


def test_backbone_without_a_pretrained_head_is_refused(tiny_bert, tmp_path):
    _bad([tiny_bert, "-o", tmp_path / "out"], tmp_path, "no pretrained classification head")


# -- the manifest --------------------------------------------------------------------------------

def test_manifest_schema_is_checked(text_run, tmp_path):
    assert export(text_run, tmp_path / "b")[0].exit_code == 0
    path = tmp_path / "b" / "edgeft.json"
    data = json.loads(path.read_text())
    for key in ("format_version", "task", "labels", "inputs", "outputs", "preprocessing", "quantization",
                "verification", "source", "golden"):
        assert key in data
    assert {"backbone", "run_config", "edgeft_version", "opset", "model_sha256"} <= set(data["source"])
    assert {"mode", "weight_type", "activation_type", "per_channel", "calibration_method", "nodes_excluded"} <= set(data["quantization"])
    path.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(ManifestError, match="format_version 99"):
        read_manifest(tmp_path / "b")
    path.write_text(json.dumps({**data, "task": "detection"}))
    with pytest.raises(ManifestError, match="task 'detection'"):
        read_manifest(tmp_path / "b")
    path.write_text(json.dumps({k: v for k, v in data.items() if k != "labels"}))
    with pytest.raises(ManifestError, match="labels"):
        read_manifest(tmp_path / "b")


def test_a_float_export_that_differs_from_pytorch_fails_and_writes_nothing(text_run, tmp_path, monkeypatch):
    import onnx
    from onnx import numpy_helper

    from edgeft.export import optimize as optimize_module

    optimize = optimize_module.optimize_graph

    def off_by_a_little(*args, **kwargs):  # a conversion bug: one weight matrix slightly changed
        path = optimize(*args, **kwargs)
        model = onnx.load(str(path))
        weight = next(t for t in model.graph.initializer if len(t.dims) == 2 and t.dims[0] > 8)
        weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.01, weight.name))
        onnx.save(model, str(path))
        return path

    monkeypatch.setattr(optimize_module, "optimize_graph", off_by_a_little)
    result = CliRunner().invoke(main, ["export", str(text_run), "-o", str(tmp_path / "b")])
    assert result.exit_code == 1, result.output
    assert "the ONNX graph differs from PyTorch: output 'logits' max abs diff" in result.output
    assert not (tmp_path / "b").exists()


def test_without_labels_the_most_agreeing_recipe_is_kept_with_a_warning(text_run, tmp_path, monkeypatch):
    """No labels (a backbone name with unlabelled calibration data): when no recipe agrees with
    PyTorch within the budget, the most agreeing one is kept, and the log says so."""
    from edgeft.export.verify import Comparison

    exported = tmp_path / "float.onnx"
    assert export(text_run, tmp_path / "b")[0].exit_code == 0
    (tmp_path / "b" / "model.onnx").rename(exported)
    agreements = iter([0.90, 0.97, 0.80, 0.85])  # the dynamic chain: per-tensor, per-channel, ...
    monkeypatch.setattr(select, "compare", lambda ref, out: Comparison(len(ref), 0.5, 0.1, next(agreements)))
    lines = []
    recipe = _recipe("dynamic", CpuInfo("x86_64", "test", 2, ("avx2",)))
    feeds = [{"input_ids": np.ones((2, 4), np.int64), "attention_mask": np.ones((2, 4), np.int64),
              "token_type_ids": np.zeros((2, 4), np.int64)}]
    judge = select.Judge(feeds, np.zeros((2, 3), np.float32), None, None, 1.0)
    selection = select.with_fallbacks(recipe, select.Builder(exported, tmp_path, None, judge, lines.append), lines.append)
    chain = recipe.fallbacks()
    assert [c.recipe for c in selection.candidates] == chain
    assert selection.chosen.recipe == chain[1] and selection.chosen.comparison.top1_agreement == 0.97
    assert any(line.startswith("warning: no recipe agreed with PyTorch") and chain[1].name in line for line in lines)


def test_too_few_calibration_samples_are_said(image_run, tmp_path):
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / "b"), "-q", "static",
                                       "--calibration-samples", "8", "--json"])
    assert result.exit_code == 0, result.output
    assert "Warning: static INT8 is calibrated on 8 samples; activation ranges need at least 32" in result.stderr
    warnings_ = read_json(tmp_path / "b" / "edgeft.json")["quantization"]["warnings"]
    assert warnings_ == ["static INT8 is calibrated on 8 samples; activation ranges need at least 32 (pass more with "
                         "--calibration-data)"]
