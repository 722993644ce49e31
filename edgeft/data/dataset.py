"""The in-memory description of a labelled dataset: items (image paths or texts) and labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Items with integer labels indexing ``classes``; ``modality`` is ``image`` or ``text``."""

    items: tuple[str, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]
    modality: str

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, indices: Sequence[int]) -> "Dataset":
        return Dataset(
            tuple(self.items[i] for i in indices),
            tuple(self.labels[i] for i in indices),
            self.classes,
            self.modality,
        )

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True)}


@dataclass(frozen=True)
class DatasetSplits:
    """A train and a validation split over the same classes, and where they came from."""

    train: Dataset
    val: Dataset
    source: str

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes
