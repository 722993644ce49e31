"""Data-parallel fine-tuning with plain torch.distributed, under torchrun or accelerate launch.

The launchers set ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. Each optimizer step sees the
same global batch as a single-process run (``--batch-size`` is the global batch): the batch
is split into contiguous per-rank slices, each rank's loss is its slice's sum divided by the
global batch size times the world size, and DDP's gradient mean then equals the single-process
mean gradient exactly (up to floating-point summation order).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from edgeft.errors import EdgeftError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> DistContext:
    """The launcher's view of this process (a single process when no launcher set it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistContext(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(ctx: DistContext, device: torch.device) -> None:
    """gloo on CPU, nccl on CUDA; a no-op for a single process or an existing group."""
    if ctx.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    if not dist.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def weights_digest(model: torch.nn.Module) -> str:
    """A digest of every parameter and buffer, to compare ranks."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics), as DDP does at the start
    of each forward: after an epoch's last step each rank holds its own batch's statistics."""
    if dist.is_initialized():
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


class RanksDivergedError(EdgeftError):
    """Data-parallel ranks hold different weights: a bug, never a user error."""


def check_ranks_agree(model: torch.nn.Module) -> str:
    """Raise if any rank's weights differ from rank 0's; return the common digest."""
    digest = weights_digest(model)
    if not dist.is_initialized():
        return digest
    digests: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, digest)
    if len(set(digests)) != 1:
        raise RanksDivergedError(f"ranks hold different weights after training: {digests}")
    return digest


class GlobalBatchSampler(Sampler[list[int]]):
    """The single-process batches (a seeded permutation cut into ``batch_size`` pieces), each
    cut into ``world_size`` contiguous, non-empty slices; this rank gets its slice."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size

    def global_batches(self) -> list[list[int]]:
        """The single-process batches; when distributed, a last batch with fewer items than
        ranks is dropped (every rank must take part in every step)."""
        order = (torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed))
                 if self.shuffle else torch.arange(self.n))
        batches = [order[i:i + self.batch_size].tolist() for i in range(0, self.n, self.batch_size)]
        return [b for b in batches if len(b) >= self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            bounds = [round(len(batch) * r / self.world_size) for r in range(self.world_size + 1)]
            yield batch[bounds[self.rank]:bounds[self.rank + 1]]

    def __len__(self) -> int:
        return len(self.global_batches())


def strided_batches(n: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """Whole batches in order, every ``world_size``-th one for this rank (for evaluation)."""
    batches = [list(range(i, min(n, i + batch_size))) for i in range(0, n, batch_size)]
    return batches[rank::world_size]
