"""Quantization-aware fine-tuning (QAT) for runs that trained backbone groups.

Such a run cannot have its head refitted on frozen features (``edgeft.export.refit``): the groups it
trained are what INT8 disturbs. A short fine-tune of those same groups with fake quantization in
torch teaches them weights that survive the recipe: batch norms folded into their convolutions (as
the exported graph folds them), every Conv / Linear weight fake-quantized as onnxruntime quantizes
it (symmetric int8, per channel or per tensor, 7-bit where the recipe reduces the range) and every
Conv / Linear input fake-quantized to uint8 over its observed range. The weights it ends with lie
on the int8 grid, so the recipe's post-training quantization reproduces them exactly; the result is
exported and measured like every other candidate. Only the groups the run trained (and the head)
are updated; the frozen ones keep their weights but run quantized.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

from edgeft.backbones import Backbone
from edgeft.errors import EdgeftError
from edgeft.export.inputs import Feeds

QUANTIZED = (nn.Conv2d, nn.Linear)


class QatError(EdgeftError):
    """The model cannot be prepared for quantization-aware fine-tuning (exit 1)."""


@dataclass(frozen=True)
class QatPlan:
    """What a quantization-aware fine-tune needs: the run's float model, the groups it trained and
    batches of the training split."""

    model: Backbone
    trained: tuple[str, ...]  # the backbone groups the run trained (the head always trains)
    batches: Sequence[tuple[Feeds, Sequence[int]]]
    epochs: int = 2
    lr: float = 1e-4
    always: bool = False  # every static recipe gets its QAT twin (else only one that misses the budget)


class _WeightFakeQuant(nn.Module):
    """Symmetric int8 as onnxruntime quantizes weights: scale = absmax / qmax, range [-qmax, qmax]."""

    def __init__(self, per_channel: bool, reduce_range: bool) -> None:
        super().__init__()
        self.per_channel, self.qmax = per_channel, 64 if reduce_range else 127

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.per_channel:
            absmax = w.detach().abs().flatten(1).amax(1).clamp_min(1e-12)
            zero = torch.zeros(len(absmax), dtype=torch.int32)
            return torch.fake_quantize_per_channel_affine(w, absmax / self.qmax, zero, 0, -self.qmax, self.qmax)
        scale = float(w.detach().abs().max().clamp_min(1e-12)) / self.qmax
        return torch.fake_quantize_per_tensor_affine(w, scale, 0, -self.qmax, self.qmax)


class _InputFakeQuant:
    """A forward pre-hook: the module's input as uint8 over its running (min, max), asymmetric."""

    def __init__(self, momentum: float = 0.9) -> None:
        self.low: float | None = None
        self.high = 0.0
        self.momentum = momentum

    def __call__(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = args[0]
        low, high = min(float(x.detach().min()), 0.0), max(float(x.detach().max()), 0.0)
        if self.low is None:
            self.low, self.high = low, high
        elif module.training:
            m = self.momentum
            self.low, self.high = m * self.low + (1 - m) * low, m * self.high + (1 - m) * high
        scale = max(self.high - self.low, 1e-8) / 255
        zero = int(min(255, max(0, round(-self.low / scale))))
        return (torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, 255), *args[1:])


def fold_batch_norms(model: nn.Module) -> int:
    """Fold each BatchNorm2d that directly follows a Conv2d among its module's children into that
    convolution (eval-mode statistics), as the exported graph does; the count folded."""
    folded = 0
    for module in list(model.modules()):
        children = list(module.named_children())
        for (_, conv), (bn_name, bn) in zip(children, children[1:], strict=False):
            if (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
                    and bn.num_features == conv.out_channels and bn.running_var is not None):
                fused = torch.nn.utils.fusion.fuse_conv_bn_eval(conv.eval(), bn.eval())
                conv.weight, conv.bias = fused.weight, fused.bias
                setattr(module, bn_name, nn.Identity())
                folded += 1
    return folded


def _inputs(feeds: Feeds) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in feeds.items()}


def _train_mode(model: nn.Module, on: bool) -> None:
    """Input ranges follow the data in train mode; dropout stays off either way."""
    model.train(on)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.eval()


def _loss(model: Backbone, states: Sequence[Any], batches: Sequence[tuple[Feeds, Sequence[int]]], start: int) -> float:
    with torch.no_grad():
        losses = [nn.functional.cross_entropy(model.forward_from(state, start), torch.as_tensor(list(y))).item()
                  for state, (_, y) in zip(states, batches, strict=True)]
    return sum(losses) / len(losses)


def qat_finetune(plan: QatPlan, per_channel: bool, reduce_range: bool,
                 log: Callable[[str], None] = lambda _: None) -> tuple[Backbone, dict[str, Any]]:
    """A copy of ``plan.model`` whose trained groups were fine-tuned under fake quantization of the
    recipe's weights (``per_channel``, ``reduce_range``), with its weights left on the int8 grid;
    and what the manifest records of it."""
    model = copy.deepcopy(plan.model).float().cpu().eval()
    probe = plan.batches[0][0]
    with torch.no_grad():
        before = model(**_inputs(probe))
        fold_batch_norms(model)
        after = model(**_inputs(probe))
    if not torch.allclose(before, after, atol=1e-3, rtol=1e-3):
        raise QatError(f"{model.spec.name}: folding its batch norms changed its outputs "
                       f"(max diff {float((before - after).abs().max()):.3g}); quantization-aware fine-tuning skipped")
    groups = model.group_parameters()
    trainable = {name for g in (*plan.trained, "head") for name, _ in groups.get(g, [])}
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
    hooks = []
    layers = [m for m in model.modules() if isinstance(m, QUANTIZED)]
    for layer in layers:
        parametrize.register_parametrization(layer, "weight", _WeightFakeQuant(per_channel, reduce_range))
        hooks.append(layer.register_forward_pre_hook(_InputFakeQuant()))
    # the frozen groups before the first trained one: their input ranges observed over the data,
    # then fixed, and their (fake-quantized) outputs computed once, as fine-tuning caches features
    start = min(model.group_names.index(g) for g in plan.trained) if plan.trained else len(model.group_names)
    with torch.no_grad():
        _train_mode(model, True)
        for feeds, _ in plan.batches:
            model.run(model.initial_state(_inputs(feeds)), 0, start)
        _train_mode(model, False)
        states = [model.run(model.initial_state(_inputs(feeds)), 0, start) for feeds, _ in plan.batches]
    params = [p for p in model.parameters() if p.requires_grad]
    steps = plan.epochs * len(plan.batches)
    optimizer = torch.optim.AdamW(params, lr=plan.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    first = _loss(model, states, plan.batches, start)
    generator = torch.Generator().manual_seed(0)
    _train_mode(model, True)
    for _ in range(plan.epochs):
        for index in torch.randperm(len(plan.batches), generator=generator).tolist():
            loss = nn.functional.cross_entropy(model.forward_from(states[index], start),
                                               torch.as_tensor(list(plan.batches[index][1])))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    _train_mode(model, False)
    last = _loss(model, states, plan.batches, start)
    for hook in hooks:
        hook.remove()
    for layer in layers:  # the weights stay fake-quantized: on the grid the recipe's quantizer computes
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    log(f"quantization-aware fine-tune of {', '.join(plan.trained)} and the head: {len(layers)} layers fake-quantized, "
        f"{steps} steps, training loss under fake quantization {first:.3f} -> {last:.3f}")
    for p in model.parameters():
        p.requires_grad_(False)
    return model, {"qat_groups": [*plan.trained, "head"], "qat_steps": steps, "qat_lr": plan.lr,
                   "qat_loss": [round(first, 4), round(last, 4)]}


class QatGraphs:
    """The float ONNX graphs of quantization-aware fine-tunes, one per weight grid (per channel or
    not, 7 or 8 bits), each made when a recipe first asks for it."""

    def __init__(self, plan: QatPlan, export: Callable[[Backbone, str], Path],
                 log: Callable[[str], None] = lambda _: None) -> None:
        self.plan, self.export, self.log = plan, export, log
        self._made: dict[tuple[bool, bool], tuple[Path, dict[str, Any]]] = {}

    @property
    def always(self) -> bool:
        return self.plan.always

    def graph(self, per_channel: bool, reduce_range: bool) -> tuple[Path, dict[str, Any]]:
        """The float graph to quantize, and the manifest's record of its fine-tune."""
        key = (per_channel, reduce_range)
        if key not in self._made:
            began = time.perf_counter()
            model, info = qat_finetune(self.plan, per_channel, reduce_range, self.log)
            path = self.export(model, f"qat-{'channel' if per_channel else 'tensor'}-{7 if reduce_range else 8}bit")
            self._made[key] = (path, {**info, "qat_seconds": round(time.perf_counter() - began, 1)})
        return self._made[key]
