"""The feature cache: the frozen prefix's outputs, computed once and reused every epoch.

``plan_cache`` decides what a run trains on before the training loop exists: the raw items
(``full``), the frozen prefix's output (``prefix``) or pooled features for the head alone
(``pooled``), and computes the cache in one pass."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from edgeft import outputs
from edgeft.backbones import Backbone
from edgeft.finetune.freezing import set_train_mode

MEMORY_LIMIT_BYTES = 2 << 30  # larger caches go to memory-mapped files on disk


@dataclass
class CacheInfo:
    """What the cache holds and cost: the run's metrics report it."""

    prefix_groups: int
    pooled: bool
    items: int
    bytes: int
    storage: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CachedStates(TorchDataset):
    """Cached states (a tuple of tensors, batch first) with their labels."""

    def __init__(self, tensors: list[torch.Tensor], labels: torch.Tensor, spill_dir: Path | None = None) -> None:
        self.tensors, self.labels, self.spill_dir = tensors, labels, spill_dir

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, ...], int]:
        return tuple(t[index] for t in self.tensors), int(self.labels[index])

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors)

    def close(self) -> None:
        """Drop the tensors and any files backing them."""
        self.tensors = []
        if self.spill_dir is not None:
            shutil.rmtree(self.spill_dir, ignore_errors=True)
            self.spill_dir = None


@torch.no_grad()
def compute_states(
    model: Backbone,
    batches: Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]],
    count: int,
    prefix: int,
    pooled: bool,
    spill_beside: Path | None = None,
    memory_limit: int = MEMORY_LIMIT_BYTES,
) -> CachedStates:
    """Run the first ``prefix`` groups (then pooling if ``pooled``) over every batch once.

    The frozen groups must already be in eval mode. Storage is allocated after the first batch:
    in memory up to ``memory_limit`` bytes, else in memory-mapped files in a temporary folder
    beside ``spill_beside`` (the run directory, whose next run reaps it after a kill).
    """
    tensors: list[torch.Tensor] = []
    labels = torch.empty(count, dtype=torch.int64)
    spill_dir: Path | None = None
    offset = 0
    for inputs, batch_labels in batches:
        state = model.run(model.initial_state(inputs), 0, prefix)
        if pooled:
            state = (model.pool(state),)
        if not tensors:
            per_item = sum(t[0].numel() * t.element_size() for t in state)
            if per_item * count > memory_limit:
                spill_dir = (outputs.make_temp_dir(spill_beside) if spill_beside is not None
                             else Path(tempfile.mkdtemp(prefix="edgeft-cache-")))
                tensors = [
                    torch.from_numpy(
                        np.lib.format.open_memmap(
                            spill_dir / f"state{i}.npy", mode="w+",
                            dtype=t.numpy().dtype, shape=(count, *t.shape[1:]),
                        )
                    )
                    for i, t in enumerate(state)
                ]
            else:
                tensors = [torch.empty((count, *t.shape[1:]), dtype=t.dtype) for t in state]
        n = len(batch_labels)
        for store, t in zip(tensors, state, strict=False):
            store[offset : offset + n] = t
        labels[offset : offset + n] = torch.as_tensor(batch_labels)
        offset += n
    return CachedStates(tensors, labels, spill_dir)


@dataclass
class CachePlan:
    """What the training loop runs on: ``mode`` is ``full`` (the whole model on raw items),
    ``prefix`` (the groups after the cached ``prefix``) or ``pooled`` (the head on pooled features)."""

    mode: str
    prefix: int
    train: Any  # a torch Dataset: raw items, or CachedStates
    val: Any
    info: CacheInfo | None = None
    head_features: CachedStates | None = None  # pooled training features a head-only run fits its head on

    def close(self) -> None:
        for items in (self.train, self.val, self.head_features):
            if isinstance(items, CachedStates):
                items.close()


def plan_cache(model: Backbone, frozen_prefix: int, train: Any, val: Any, *, enabled: bool, augment: bool,
               device: torch.device, spill_beside: Path, log: Callable[[str], None],
               batches: Callable[[Any, str], Iterable], head_features: bool = False) -> CachePlan:
    """Cache the frozen prefix's output (pooled when the whole backbone is frozen) of ``train``
    and ``val`` when that pays, else plan the full model. ``batches(items, what)`` yields the
    items' batches on ``device``. ``head_features``: a run that trains the head alone gets the
    pooled training features to fit it on, cache or not."""
    pooled = frozen_prefix == len(model.groups())
    reason = ("off (--no-cache-features)" if not enabled else
              "off, because --augment changes the inputs every epoch" if augment else
              "off, no frozen prefix to cache" if frozen_prefix == 0 else None)
    if reason:
        log(f"feature cache: {reason}")
        fit_on = None
        if head_features and pooled:
            set_train_mode(model)
            fit_on = compute_states(model, batches(train, "train"), len(train), frozen_prefix, True, spill_beside)
        return CachePlan("full", 0, train, val, head_features=fit_on)
    start = time.perf_counter()
    set_train_mode(model)  # frozen groups in eval mode, as during training
    caches = [compute_states(model, batches(items, what), len(items), frozen_prefix, pooled, spill_beside)
              for items, what in ((train, "train"), (val, "val"))]
    info = CacheInfo(prefix_groups=frozen_prefix, pooled=pooled, items=sum(len(c) for c in caches),
                     bytes=sum(c.nbytes for c in caches), storage="disk" if caches[0].spill_dir else "memory",
                     seconds=time.perf_counter() - start)
    where = "pooled features" if pooled else f"the output of the first {frozen_prefix} groups"
    log(f"feature cache: {where} of {info.items} items, {info.bytes / 2**20:.1f} MiB in {info.storage}, "
        f"{info.seconds:.1f} s")
    return CachePlan("pooled" if pooled else "prefix", frozen_prefix, caches[0], caches[1], info,
                     head_features=caches[0] if pooled else None)
