"""Loading a bundle with the lean runtime, and `edgeft verify` on this machine."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeft.cli import main
from edgeft.manifest import ManifestError, sha256_file
from edgeft.runtime import EdgeModel
from edgeft.runtime.model import InputError


@pytest.fixture
def bundle(text_bundle, tmp_path) -> Path:
    """A private copy each test may break."""
    return Path(shutil.copytree(text_bundle, tmp_path / "bundle"))


def _edit_manifest(bundle: Path, **changes) -> None:
    path = bundle / "edgeft.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_verify_reproduces_the_golden_vectors(text_bundle):
    result = CliRunner().invoke(main, ["verify", str(text_bundle), "--json"])
    assert result.exit_code == 0, result.output
    check = json.loads(result.stdout)
    assert check["ok"] and check["count"] == 4 and check["max_abs_diff"] <= check["atol"]
    assert check["provider"] == "CPUExecutionProvider"


def test_verify_fails_on_outputs_beyond_tolerance(bundle):
    golden = dict(np.load(bundle / "golden.npz"))
    golden["logits"] = golden["logits"] + 1.0
    np.savez(bundle / "golden.npz", **golden)
    manifest = json.loads((bundle / "edgeft.json").read_text())  # the hash made to match: a real mismatch
    manifest["golden"]["sha256"] = hashlib.sha256((bundle / "golden.npz").read_bytes()).hexdigest()
    (bundle / "edgeft.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(main, ["verify", str(bundle)])
    assert result.exit_code == 1 and result.output.startswith("MISMATCH")


def test_runtime_output_equals_onnxruntime_run_by_hand(text_bundle):
    import onnxruntime as ort

    model = EdgeModel.load(text_bundle, threads=1)
    feeds = {"input_ids": np.array([[101, 2023, 2003, 102]]), "attention_mask": np.ones((1, 4), np.int64),
             "token_type_ids": np.zeros((1, 4), np.int64)}
    by_hand = ort.InferenceSession(str(text_bundle / "model.onnx")).run(None, feeds)[0]
    np.testing.assert_array_equal(model.logits(feeds), by_hand)


@pytest.mark.parametrize("breakage, message", [
    ("edited model", "does not match the manifest's sha256"),
    ("unknown format_version", "format_version 7"),
    ("missing tokenizer", "without its tokenizer"),
    ("truncated onnx", "onnxruntime cannot load"),
    ("inputs that the graph lacks", "are not the model's inputs"),
])
def test_broken_bundles_are_refused_with_one_line(bundle, breakage, message):
    model = bundle / "model.onnx"
    if breakage == "edited model":
        model.write_bytes(model.read_bytes()[:-1] + b"\0")
    elif breakage == "unknown format_version":
        _edit_manifest(bundle, format_version=7)
    elif breakage == "missing tokenizer":
        (bundle / "tokenizer.json").unlink()
    elif breakage == "inputs that the graph lacks":
        inputs = json.loads((bundle / "edgeft.json").read_text())["inputs"]
        _edit_manifest(bundle, inputs=[{**inputs[0], "name": "ids"}, *inputs[1:]])
    else:
        model.write_bytes(model.read_bytes()[:1000])
        source = json.loads((bundle / "edgeft.json").read_text())["source"]
        _edit_manifest(bundle, source={**source, "model_sha256": sha256_file(model)})
    with pytest.raises(ManifestError, match=message):
        EdgeModel.load(bundle)
    result = CliRunner().invoke(main, ["verify", str(bundle)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_tensors_of_the_wrong_shape_or_dtype_are_refused(text_bundle):
    model = EdgeModel.load(text_bundle)
    good = {"input_ids": np.ones((1, 4), np.int64), "attention_mask": np.ones((1, 4), np.int64),
            "token_type_ids": np.zeros((1, 4), np.int64)}
    with pytest.raises(InputError, match="must be int64"):
        model.logits({**good, "input_ids": np.ones((1, 4), np.int32)})
    with pytest.raises(InputError, match="shape"):
        model.logits({**good, "attention_mask": np.ones((4,), np.int64)})
    with pytest.raises(InputError, match="empty batch"):
        model.logits({k: v[:0] for k, v in good.items()})
    with pytest.raises(InputError, match="missing"):
        model.logits({"input_ids": good["input_ids"]})


def test_an_unavailable_provider_is_named(text_bundle):
    result = CliRunner().invoke(main, ["verify", str(text_bundle), "--provider", "NoSuchExecutionProvider"])
    assert result.exit_code == 2 and "NoSuchExecutionProvider is not available here" in result.output
