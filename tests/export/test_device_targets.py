"""Export for a device it can reach (`--target qemu-arm64`, `--target ssh://...`): the device's CPU
read there, the kept candidate confirmed on held-out samples run with the device's onnxruntime, a
candidate the device disagrees with passed over, and clear errors for an unreachable device or an
operator its onnxruntime lacks."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from edgeft.cli import main
from edgeft.export import pipeline
from edgeft.export.device import Device, MissingOperatorError
from edgeft.export.verify import onnx_logits
from tests.bench.test_remote import sshd  # noqa: F401  (the module's sshd fixture)
from tests.conftest import needs_arm64, read_json


class _FakeDevice:
    """A device whose onnxruntime scrambles the first candidate it runs; host numerics otherwise."""

    where, runtime = "a test device", "onnxruntime test"

    def __init__(self) -> None:
        self.runs = 0

    def outputs(self, model, sets, threads=0):
        self.runs += 1
        logits = np.concatenate([onnx_logits(model, [feeds]) for feeds in sets])
        return logits[:, ::-1].copy() if self.runs == 1 else logits


def test_a_candidate_the_device_disagrees_with_is_passed_over(image_run, tmp_path, monkeypatch):
    device = _FakeDevice()
    monkeypatch.setattr(pipeline, "_reach", lambda config, log: device)
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / "b"), "-q", "static",
                                       "--target", "qemu-arm64", "--head-refit", "never"])
    assert result.exit_code == 0, result.output
    q = read_json(tmp_path / "b" / "edgeft.json")["quantization"]
    first, kept = q["attempts"][0], q["attempts"][-1]
    assert first["within_budget"] and not first["chosen"] and not first["confirmation"]["within_budget"]
    assert "not on the device" in first["verdict"]
    assert kept["chosen"] and kept["confirmation"]["within_budget"] and kept["recipe"] != first["recipe"]
    assert device.runs == 2


def test_an_unreachable_ssh_target_is_exit_2_with_nothing_written(image_run, tmp_path):
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / "b"), "-q", "static",
                                       "--target", "ssh://127.0.0.1:1"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: --target ssh://127.0.0.1:1: cannot reach the device")
    assert not (tmp_path / "b").exists()


def test_an_operator_the_devices_onnxruntime_lacks_is_named(tmp_path):
    """onnxruntime's CPU provider has no double Erf: the message names the operator and the node."""
    graph = helper.make_graph([helper.make_node("Erf", ["x"], ["y"], name="the_erf")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path / "m.onnx")
    device = Device("cpu")
    device.probe()
    with pytest.raises(MissingOperatorError, match=r"onnxruntime .* has no kernel for operator Erf \(opset 13, node 'the_erf'\)"):
        device.outputs(tmp_path / "m.onnx", [{"x": np.zeros(1, np.float64)}])


def test_export_confirms_on_a_device_over_ssh(image_run, tmp_path, sshd):  # noqa: F811
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / "b"), "-q", "static",
                                       "--target", sshd["target"], "--ssh-config", sshd["config"],
                                       "--remote-python", sys.executable, "--json"])
    assert result.exit_code == 0, result.output
    manifest = read_json(tmp_path / "b" / "edgeft.json")
    target, kept = manifest["quantization"]["target"], manifest["quantization"]["attempts"][-1]
    assert target["device"] == sshd["target"] and target["cpu"]["arch"] in ("x86_64", "aarch64")
    assert kept["chosen"] and kept["confirmation"]["within_budget"] and kept["confirmation"]["samples"] >= 1
    assert manifest["golden"]["device"]["within_tolerance"]


@pytest.mark.arm
@needs_arm64
def test_export_confirms_under_emulated_arm64(image_run, tmp_path):
    result = CliRunner().invoke(main, ["export", str(image_run), "-o", str(tmp_path / "b"), "-q", "static",
                                       "--target", "qemu-arm64", "--json"])
    assert result.exit_code == 0, result.output
    manifest = read_json(tmp_path / "b" / "edgeft.json")
    q = manifest["quantization"]
    assert q["target"]["device"] == "qemu-arm64" and not q["reduce_range"]  # 8-bit weights: exact on ARM
    kept = q["attempts"][-1]
    assert kept["confirmation"]["where"] == "emulated ARM64 (QEMU)" and kept["confirmation"]["within_budget"]
    assert manifest["golden"]["device"]["within_tolerance"]  # the stored golden outputs hold on the device
