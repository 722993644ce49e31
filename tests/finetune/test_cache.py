"""The feature cache gives the same training as running the frozen prefix every time."""

import pytest
import torch

from edgeft.finetune import FinetuneConfig, finetune
from edgeft.finetune.cache import compute_states
from tests.conftest import read_json


def _run(tiny_bert, text_csv, tmp_path, name, **options):
    config = FinetuneConfig(backbone=str(tiny_bert), data=str(text_csv), output=str(tmp_path / name),
                            epochs=3, batch_size=8, lr=1e-3, patience=0, **options)
    result = finetune(config)
    return result, read_json(tmp_path / name / "metrics.json")["epochs"]


@pytest.mark.parametrize("freeze, pooled", [("all", True), ("2", False)])
def test_cached_training_matches_uncached(tiny_bert, text_csv, tmp_path, freeze, pooled):
    cached, with_cache = _run(tiny_bert, text_csv, tmp_path, "c", freeze=freeze)
    _, without = _run(tiny_bert, text_csv, tmp_path, "u", freeze=freeze, cache_features=False)
    assert cached.cache["pooled"] is pooled
    assert cached.cache["prefix_groups"] == (3 if pooled else 2)
    for a, b in zip(with_cache, without, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)


def test_no_cache_without_a_frozen_prefix(tiny_bert, text_csv, tmp_path):
    result, _ = _run(tiny_bert, text_csv, tmp_path, "n", freeze="none")
    assert result.cache is None


def test_spill_to_disk_gives_the_same_states(tiny_bert, tmp_path):
    from edgeft.backbones import load_backbone

    model = load_backbone(str(tiny_bert), num_classes=2).eval()
    ids = torch.randint(1000, 2000, (6, 5))
    batches = [({"input_ids": ids[i:i + 3], "attention_mask": torch.ones(3, 5, dtype=torch.long)},
                torch.tensor([0, 1, 0])) for i in (0, 3)]
    memory = compute_states(model, batches, 6, prefix=2, pooled=False)
    disk = compute_states(model, batches, 6, prefix=2, pooled=False, spill_beside=tmp_path / "run", memory_limit=0)
    assert disk.spill_dir is not None and any(disk.spill_dir.iterdir())
    assert all(torch.equal(a, b) for a, b in zip(memory.tensors, disk.tensors, strict=True))
    disk.close()
    assert not list(tmp_path.glob("edgeft-cache-*"))


def test_augment_turns_the_cache_off(image_folder, tmp_path):
    lines = []
    result = finetune(FinetuneConfig(backbone="efficientnet_lite0", data=str(image_folder), output=str(tmp_path / "a"),
                                     epochs=1, batch_size=8, image_size=32, augment=True), log=lines.append)
    assert result.cache is None and read_json(tmp_path / "a/metrics.json")["cache"] is None
    assert "feature cache: off, because --augment changes the inputs every epoch" in lines
