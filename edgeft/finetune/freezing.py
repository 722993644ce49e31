"""Freezing policies applied to a backbone's named groups."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from torch import nn

from edgeft.backbones import Backbone
from edgeft.errors import UsageError
from edgeft.finetune.config import FreezePolicy


@dataclass(frozen=True)
class FreezeResult:
    """What a policy froze: parameter counts, frozen groups, and the frozen prefix length."""

    trainable: int
    frozen: int
    frozen_groups: tuple[str, ...]
    frozen_prefix: int  # leading backbone groups that are entirely frozen
    trainable_backbone: int  # trainable parameters outside the head

    @property
    def head_only(self) -> bool:
        return self.trainable_backbone == 0


def _selected(model: Backbone, policy: FreezePolicy) -> set[str]:
    """Names of the parameters the policy freezes."""
    groups = model.group_parameters()
    backbone_groups = [g for g in groups if g != "head"]
    if policy.kind == "none":
        return set()
    if policy.kind == "all":
        return {n for g in backbone_groups for n, _ in groups[g]}
    if policy.kind == "first":
        if not 0 <= policy.count <= len(backbone_groups):
            raise UsageError(
                f"--freeze {policy.count}: {model.spec.name} has {len(backbone_groups)} groups "
                f"({', '.join(backbone_groups)}); use 0..{len(backbone_groups)}"
            )
        return {n for g in backbone_groups[: policy.count] for n, _ in groups[g]}
    chosen = set()
    for group, params in groups.items():
        group_hit = fnmatch.fnmatchcase(group, policy.pattern)
        chosen |= {n for n, _ in params if group_hit or fnmatch.fnmatchcase(n, policy.pattern)}
    if not chosen:
        raise UsageError(
            f"--freeze {policy.pattern!r} matches no group or parameter of {model.spec.name}; "
            f"groups: {', '.join(groups)}"
        )
    return chosen


def apply_freeze(model: Backbone, policy: FreezePolicy) -> FreezeResult:
    """Set ``requires_grad`` by the policy; the head trains unless a glob names it."""
    frozen_names = _selected(model, policy)
    groups = model.group_parameters()
    for params in groups.values():
        for name, p in params:
            p.requires_grad_(name not in frozen_names)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise UsageError(f"--freeze {policy} leaves nothing to train")
    fully_frozen = [g for g, params in groups.items() if params and all(not p.requires_grad for _, p in params)]
    prefix = 0
    for name in model.group_names:
        if name not in fully_frozen:
            break
        prefix += 1
    trainable_backbone = sum(p.numel() for g, ps in groups.items() if g != "head" for _, p in ps if p.requires_grad)
    return FreezeResult(
        trainable=trainable,
        frozen=sum(p.numel() for p in model.parameters()) - trainable,
        frozen_groups=tuple(fully_frozen),
        frozen_prefix=prefix,
        trainable_backbone=trainable_backbone,
    )


def set_train_mode(model: Backbone) -> None:
    """``model.train()``, except that frozen groups (and any BatchNorm with frozen parameters)
    stay in eval mode: running statistics and dropout of frozen parts do not change."""
    model.train()
    for _, modules in model.groups():
        params = [p for m in modules for p in m.parameters()]
        if params and not any(p.requires_grad for p in params):
            for m in modules:
                m.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if not any(p.requires_grad for p in m.parameters(recurse=False)):
                m.eval()
