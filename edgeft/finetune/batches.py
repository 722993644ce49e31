"""How the stage batches its items: loaders in the single-process order on every rank, tensors
moved to the device, and the progress bar."""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch.utils.data import DataLoader

from edgeft.finetune.cache import CachedStates
from edgeft.finetune.distributed import DistContext, GlobalBatchSampler, strided_batches

INFERENCE_BATCH = 8  # small batches run faster per item on CPU for these models (measured)


def make_loader(items: Any, batch_size: int, ctx: DistContext, device: torch.device, *, shuffle: bool = False,
                seed: int = 0, shard: str = "slice", num_workers: int = 0) -> DataLoader:
    """Batches in the single-process order. ``shard``: ``slice`` gives this rank its slice of
    every batch (training), ``stride`` every world_size-th whole batch (evaluation), ``none``
    every batch (the feature cache: each rank caches all items). ``seed`` orders a shuffle."""
    rank, world = (ctx.rank, ctx.world_size) if shard != "none" else (0, 1)
    if shard == "stride":
        sampler = strided_batches(len(items), batch_size, rank, world)
    else:
        sampler = GlobalBatchSampler(len(items), batch_size, seed, shuffle, rank, world)
    cached = isinstance(items, CachedStates)
    return DataLoader(items, batch_sampler=sampler, num_workers=0 if cached else num_workers,
                      pin_memory=device.type == "cuda")


def to_device(obj: Any, device: torch.device) -> Any:
    """Tensors in (nested) dicts, tuples and lists moved to ``device``."""
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return type(obj)(to_device(v, device) for v in obj) if isinstance(obj, (list, tuple)) else obj


def progress_bar(iterable: Iterable, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, disable=None if enabled else True, unit="batch")
