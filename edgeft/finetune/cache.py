"""The feature cache: the frozen prefix's outputs, computed once and reused every epoch."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from edgeft import outputs
from edgeft.backbones import Backbone

MEMORY_LIMIT_BYTES = 2 << 30  # larger caches go to memory-mapped files on disk


@dataclass
class CacheInfo:
    prefix_groups: int
    pooled: bool
    items: int
    bytes: int
    storage: str
    seconds: float


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
