"""The one small interface every backbone keeps: ordered named groups, pooling, a linear head.

A backbone runs as a chain of *groups* (``stem``, ``blocks.0`` ... or ``embeddings``,
``layer.0`` ...) over a *state* (a tuple of tensors, batch first). Freezing speaks group names,
and the feature cache stores the state after a frozen prefix of groups.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from edgeft.manifest import modality_of

State = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class BackboneSpec:
    """Facts about a backbone that travel into run configs, manifests and ``edgeft backbones``."""

    name: str
    task: str
    description: str
    source: str
    license: str
    params: int  # parameters of the feature extractor, without any classifier
    packages: tuple[str, ...] = ()
    pip: str = ""
    card: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in ("image-classification", "text-classification"):
            raise ValueError(f"unknown task {self.task!r}")

    @property
    def modality(self) -> str:
        return modality_of(self.task)

    def missing_packages(self) -> list[str]:
        """Import names of the offline weight packages that are not installed here."""
        return [p for p in self.packages if importlib.util.find_spec(p) is None]

    def available_offline(self) -> bool:
        return bool(self.packages) and not self.missing_packages()


class Backbone(nn.Module):
    """A pretrained feature extractor split into ordered groups, with pooling and a linear head."""

    spec: BackboneSpec
    num_features: int
    head: nn.Module
    preprocessing: Any  # ImagePreprocessing or TextPreprocessing (edgeft.runtime.preprocess)
    pretrained_labels: list[str] | None = None  # class names of a pretrained head that was kept

    def groups(self) -> list[tuple[str, list[nn.Module]]]:
        """The backbone's groups in execution order (the head is not among them)."""
        raise NotImplementedError

    def initial_state(self, inputs: dict[str, torch.Tensor]) -> State:
        """Model inputs (``pixel_values`` or token arrays) to the state before group 0."""
        raise NotImplementedError

    def run_group(self, index: int, state: State) -> State:
        raise NotImplementedError

    def pool(self, state: State) -> torch.Tensor:
        """The state after the last group to ``(batch, num_features)``; has no parameters."""
        raise NotImplementedError

    def reset_head(self, num_classes: int) -> None:
        """A fresh linear classifier for ``num_classes`` classes."""
        raise NotImplementedError

    def get_classifier(self) -> nn.Linear:
        """The head's linear layer (the head is dropout + linear)."""
        linear = self.head[-1] if isinstance(self.head, nn.Sequential) else self.head
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"{type(self).__name__}'s head does not end in a linear layer")
        return linear

    @property
    def group_names(self) -> list[str]:
        return [name for name, _ in self.groups()]

    def group_parameters(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Every parameter by group (backbone groups, then ``head``), with its full name."""
        owner = {id(p): n for n, p in self.named_parameters()}
        out: dict[str, list[tuple[str, nn.Parameter]]] = {}
        for name, modules in [*self.groups(), ("head", [self.head])]:
            out[name] = [(owner[id(p)], p) for m in modules for p in m.parameters()]
        return out

    def run(self, state: State, start: int = 0, stop: int | None = None) -> State:
        """Run groups ``start`` up to ``stop`` (default: all) on a state."""
        stop = len(self.groups()) if stop is None else stop
        for index in range(start, stop):
            state = self.run_group(index, state)
        return state

    def forward_from(self, state: State, start: int) -> torch.Tensor:
        """Logits from the state after the first ``start`` groups."""
        return self.head(self.pool(self.run(state, start)))

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.forward_from(self.initial_state(inputs), 0)


Loader = Callable[..., Backbone]
