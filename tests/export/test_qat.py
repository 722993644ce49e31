"""`edgeft export --qat`: a run that trained backbone groups gets a quantization-aware twin of a
static recipe, whose trained groups were fine-tuned under fake quantization of that recipe."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper

from edgeft.cli import main
from tests.conftest import SEVEN_BIT, read_json, write_image_folder

pytestmark = pytest.mark.recipes


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory):
    """A Lite0 run that trained its last block and neck (the first 7 groups frozen)."""
    from edgeft.finetune import FinetuneConfig, finetune

    root = tmp_path_factory.mktemp("partial-run")
    data = write_image_folder(root / "images", per_class=8)
    finetune(FinetuneConfig(backbone="efficientnet_lite0", data=str(data), output=str(root / "run"),
                            batch_size=8, image_size=64, freeze="7", epochs=3))
    return root / "run"


def _plan(run, epochs=2):
    from edgeft.export.inputs import InputMaker
    from edgeft.export.qat import QatPlan
    from edgeft.export.source import load_source

    source = load_source(str(run), lambda _: None)
    maker = InputMaker(source.model.preprocessing)
    items, labels = list(source.train.items), list(source.train.labels)
    batches = [(maker.feeds(items[i:i + 8]), labels[i:i + 8]) for i in range(0, len(items), 8)]
    return source.model, QatPlan(source.model, ("blocks.6", "neck"), batches, epochs=epochs, lr=1e-3)


def test_qat_trains_the_trained_groups_onto_the_int8_grid(partial_run):
    from edgeft.export.qat import qat_finetune

    model, plan = _plan(partial_run)
    tuned, info = qat_finetune(plan, per_channel=True, reduce_range=False)
    assert info["qat_groups"] == ["blocks.6", "neck", "head"] and info["qat_steps"] == 2 * len(plan.batches)
    assert info["qat_loss"][1] < info["qat_loss"][0]  # it learned under fake quantization
    convs = [m for m in tuned.modules() if isinstance(m, torch.nn.Conv2d)]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in tuned.modules())  # folded, as the graph folds them
    for conv in convs:  # every weight on the symmetric per-channel int8 grid onnxruntime's quantizer computes
        w = conv.weight.detach().flatten(1)
        q = w / (w.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127)
        assert torch.allclose(q, q.round(), atol=1e-3) and q.abs().max() <= 127 + 1e-3, (q - q.round()).abs().max()
    import copy

    from edgeft.export.qat import fold_batch_norms

    folded = copy.deepcopy(model)
    fold_batch_norms(folded)
    before, after = dict(folded.named_parameters()), dict(tuned.named_parameters())
    stem = next(n for n in before if n.endswith("weight") and before[n].dim() == 4)  # the first conv: frozen
    w = before[stem].detach().flatten(1)
    scale = w.abs().amax(1, keepdim=True) / 127
    assert torch.allclose(after[stem].detach().flatten(1), (w / scale).round() * scale, atol=1e-6)  # only rounded
    assert not torch.allclose(after["head.1.weight"], before["head.1.weight"], atol=1e-3)  # trained


def _int8_weights(path):
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8}


def test_a_static_recipe_that_misses_is_tried_again_quantization_aware(partial_run, tmp_path, monkeypatch):
    from edgeft.export import pipeline, select

    for name, flag in (("qat", "auto"), ("plain", "never")):
        scores = iter([1.0, 0.5, 1.0, 1.0])  # float; the first recipe misses; the next one holds
        for module in (pipeline, select):
            monkeypatch.setattr(module, "accuracy", lambda logits, labels, scores=scores: next(scores))
        result = CliRunner().invoke(main, ["export", str(partial_run), "-o", str(tmp_path / name), "-q", "static",
                                           "--qat", flag])
        assert result.exit_code == 0, result.output
    qat = read_json(tmp_path / "qat" / "edgeft.json")["quantization"]
    plain = read_json(tmp_path / "plain" / "edgeft.json")["quantization"]
    first = f"static u8s8 per-tensor{' reduce-range' if SEVEN_BIT else ''} minmax"  # the suite's profile decides
    assert [a["recipe"] for a in qat["attempts"]] == [first, f"{first} quantization-aware"]
    assert qat["qat"] and qat["qat_groups"] == ["blocks.6", "neck", "head"] and qat["qat_steps"] > 0
    assert not plain["qat"] and [a["recipe"] for a in plain["attempts"]][0] == first
    assert not qat["head_refit"]  # a run that trained groups is not refitted: its groups are
    tuned, ptq = _int8_weights(tmp_path / "qat" / "model.onnx"), _int8_weights(tmp_path / "plain" / "model.onnx")
    assert any(not np.array_equal(tuned[k], ptq[k]) for k in tuned.keys() & ptq.keys())


@pytest.mark.parametrize("per_channel, reduce_range", [(False, False), (True, True), (False, True)])
def test_every_weight_grid_the_recipes_use(partial_run, per_channel, reduce_range):
    """Per-tensor weights share one scale; 7-bit weights (reduce_range) use onnxruntime's [-64, 64]."""
    from edgeft.export.qat import qat_finetune

    _, plan = _plan(partial_run, epochs=1)
    tuned, _ = qat_finetune(plan, per_channel=per_channel, reduce_range=reduce_range)
    qmax = 64 if reduce_range else 127
    for conv in [m for m in tuned.modules() if isinstance(m, torch.nn.Conv2d)]:
        w = conv.weight.detach().flatten(1)
        absmax = w.abs().amax(1, keepdim=True) if per_channel else w.abs().max()
        q = w / (absmax.clamp_min(1e-12) / qmax)
        assert torch.allclose(q, q.round(), atol=1e-3) and q.abs().max() <= qmax + 1e-3, (q - q.round()).abs().max()


def test_layer_inputs_are_fake_quantized_to_uint8_over_their_range():
    from edgeft.export.qat import _InputFakeQuant

    layer = torch.nn.Linear(64, 2)
    hook = _InputFakeQuant()
    layer.train()
    x = torch.linspace(-1.0, 3.0, 64 * 16).reshape(16, 64)
    (quantized,) = hook(layer, (x,))
    scale = 4.0 / 255
    assert len(torch.unique(quantized)) <= 256 and not torch.equal(quantized, x)
    assert torch.allclose(quantized, torch.round(x / scale) * scale, atol=1e-5)  # zero point round(1 / scale)


def test_qat_always_fine_tunes_a_recipe_that_already_holds(partial_run, tmp_path):
    result = CliRunner().invoke(main, ["export", str(partial_run), "-o", str(tmp_path / "b"), "-q", "static",
                                       "--qat", "always"])
    assert result.exit_code == 0, result.output
    q = read_json(tmp_path / "b" / "edgeft.json")["quantization"]
    assert [a["recipe"].endswith("quantization-aware") for a in q["attempts"]] == [True]  # the twin alone
    assert q["qat"] and q["qat_steps"] > 0 and q["qat_groups"] == ["blocks.6", "neck", "head"]
