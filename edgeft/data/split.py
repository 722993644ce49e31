"""Deterministic stratified train/validation split."""

from __future__ import annotations

import numpy as np

from edgeft.data.dataset import Dataset, DatasetSplits
from edgeft.errors import DataError


def stratified_split(dataset: Dataset, val_fraction: float, seed: int) -> DatasetSplits:
    """Split each class by ``val_fraction`` (at least one validation item per class).

    The same dataset, fraction and seed always give the same split, whatever the file order
    on disk, because items are sorted by the readers before they get here.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"--val-split must be between 0 and 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(dataset.labels)
    train_idx: list[int] = []
    val_idx: list[int] = []
    for cls in range(len(dataset.classes)):
        members = np.flatnonzero(labels == cls)
        if len(members) < 2:
            raise DataError(
                f"class {dataset.classes[cls]!r} has {len(members)} item(s); a split needs at least 2"
            )
        members = rng.permutation(members)
        n_val = min(len(members) - 1, max(1, round(len(members) * val_fraction)))
        val_idx.extend(members[:n_val].tolist())
        train_idx.extend(members[n_val:].tolist())
    return DatasetSplits(
        train=dataset.subset(sorted(train_idx)),
        val=dataset.subset(sorted(val_idx)),
        source=f"stratified split, val_fraction={val_fraction}, seed={seed}",
    )
