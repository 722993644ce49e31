"""Freezing: which parameters get gradients, and frozen BatchNorm statistics never move."""

import pytest
import torch

from edgeft.backbones import load_backbone
from edgeft.errors import UsageError
from edgeft.finetune import FreezePolicy, apply_freeze, set_train_mode


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0", num_classes=3, image_size=64)


def _grads_after_step(model, policy: str) -> dict[str, bool]:
    apply_freeze(model, FreezePolicy.parse(policy))
    set_train_mode(model)
    model.zero_grad(set_to_none=True)
    model(pixel_values=torch.randn(2, 3, 64, 64)).sum().backward()
    return {group: any(p.grad is not None for _, p in params) for group, params in model.group_parameters().items()}


def test_freeze_all_trains_only_the_head(lite0):
    grads = _grads_after_step(lite0, "all")
    assert grads.pop("head") and not any(grads.values())


def test_freeze_none_trains_everything(lite0):
    assert all(_grads_after_step(lite0, "none").values())


def test_freeze_first_n_groups(lite0):
    grads = _grads_after_step(lite0, "3")
    assert [g for g, has in grads.items() if not has] == ["stem", "blocks.0", "blocks.1"]


def test_freeze_glob_over_groups_and_parameter_names(lite0):
    grads = _grads_after_step(lite0, "blocks.[0-4]")
    assert [g for g, has in grads.items() if not has] == [f"blocks.{i}" for i in range(5)]
    result = apply_freeze(lite0, FreezePolicy.parse("*_bn*"))
    frozen = {n for n, p in lite0.named_parameters() if not p.requires_grad}
    assert frozen and all("_bn" in n for n in frozen)
    assert result.frozen_prefix == 0


def test_frozen_batchnorm_keeps_running_statistics(lite0):
    apply_freeze(lite0, FreezePolicy.parse("all"))
    before = {k: v.clone() for k, v in lite0.state_dict().items() if "running" in k}
    optimizer = torch.optim.SGD([p for p in lite0.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        set_train_mode(lite0)
        loss = lite0(pixel_values=torch.randn(4, 3, 64, 64) * 3 + 1).logsumexp(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = {k: v for k, v in lite0.state_dict().items() if "running" in k}
    assert all(torch.equal(before[k], after[k]) for k in before)
    # and a trainable BatchNorm does update: the check above can fail
    apply_freeze(lite0, FreezePolicy.parse("none"))
    set_train_mode(lite0)
    lite0(pixel_values=torch.randn(4, 3, 64, 64) * 3 + 1)
    assert not torch.equal(before["net._bn1.running_mean"], lite0.state_dict()["net._bn1.running_mean"])


def test_freeze_beyond_the_number_of_groups(lite0):
    with pytest.raises(UsageError, match="has 9 groups .*use 0..9"):
        apply_freeze(lite0, FreezePolicy.parse("10"))


def test_glob_that_matches_nothing(lite0):
    with pytest.raises(UsageError, match="matches no group or parameter"):
        apply_freeze(lite0, FreezePolicy.parse("decoder.*"))
