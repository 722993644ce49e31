"""The fine-tuning stage's configuration."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from edgeft.errors import UsageError

PRECISIONS = ("fp32", "bf16", "fp16")
AUTO_EPOCHS = 10  # what --epochs auto means when the run trains more than a head on cached features


@dataclass(frozen=True)
class FreezePolicy:
    """Which parameters stay fixed: ``all`` (the whole backbone), ``none``, the first ``N``
    backbone groups, or a glob over group names and parameter names."""

    kind: str
    count: int = 0
    pattern: str = ""

    @classmethod
    def parse(cls, text: str) -> "FreezePolicy":
        text = text.strip()
        if text in ("all", "none"):
            return cls(text)
        if re.fullmatch(r"\d+", text):
            return cls("first", count=int(text))
        if not text:
            raise UsageError("--freeze needs all, none, a number of groups, or a glob")
        return cls("glob", pattern=text)

    def __str__(self) -> str:
        return {"first": str(self.count), "glob": self.pattern}.get(self.kind, self.kind)


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything a fine-tune run needs; stored in the run directory's ``config.json``.

    ``lr=None`` picks 3e-3 when only the head trains, else 3e-4 for images and 5e-5 for text.
    ``epochs="auto"``: a head alone on cached pooled features is fitted to convergence (L-BFGS,
    ``edgeft.finetune.head_fit``); anything else trains ``AUTO_EPOCHS`` epochs with early stopping.
    ``epochs=N`` for a head alone (cache or not): N AdamW epochs that start from that fit.
    """

    backbone: str
    data: str
    output: str
    freeze: str = "all"
    epochs: int | str = "auto"
    lr: float | None = None
    batch_size: int = 32
    val_split: float = 0.2
    val_data: str | None = None
    seed: int = 0
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    label_smoothing: float = 0.0
    patience: int = 3
    cache_features: bool = True
    augment: bool = False
    pooling: str | None = None
    image_size: int | None = None
    max_length: int | None = None
    text_column: str = "text"
    label_column: str = "label"
    num_workers: int = 0
    device: str = "auto"
    precision: str = "fp32"
    dropout: float | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.epochs == "auto" or (type(self.epochs) is int and self.epochs >= 1),
             "--epochs must be auto or a whole number of at least 1"),
            (self.lr is None or 0 < self.lr < math.inf, "--lr must be a positive number"),
            (0.0 <= self.weight_decay < math.inf, "--weight-decay must be 0 or more"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (0.0 < self.val_split < 1.0, "--val-split must be between 0 and 1"),
            (0.0 <= self.warmup_ratio < 1.0, "--warmup-ratio must be in [0, 1)"),
            (0.0 <= self.label_smoothing < 1.0, "--label-smoothing must be in [0, 1)"),
            (self.patience >= 0, "--patience must be 0 (off) or more"),
            (self.image_size is None or self.image_size >= 32, "--image-size must be at least 32"),
            (self.max_length is None or self.max_length >= 4, "--max-length must be at least 4"),
            (self.num_workers >= 0, "--num-workers must be 0 or more"),
            (self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}"),
            (self.dropout is None or 0.0 <= self.dropout < 1.0, "--dropout must be in [0, 1)"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        FreezePolicy.parse(self.freeze)

    @property
    def freeze_policy(self) -> FreezePolicy:
        return FreezePolicy.parse(self.freeze)

    def resolved_epochs(self, head_fit: bool) -> int:
        """The number of epochs to run; a direct head fit counts as one."""
        if self.epochs != "auto":
            return int(self.epochs)
        return 1 if head_fit else AUTO_EPOCHS

    def resolved_lr(self, head_only: bool, modality: str) -> float:
        if self.lr is not None:
            return self.lr
        if head_only:
            return 3e-3
        return 3e-4 if modality == "image" else 5e-5

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FinetuneConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
