"""The model a fine-tuning config describes: a backbone with a fresh head."""

from __future__ import annotations

import torch

from edgeft.backbones import Backbone, load_backbone
from edgeft.finetune.config import FinetuneConfig


def build_model(config: FinetuneConfig, num_classes: int, pretrained: bool = True) -> Backbone:
    """The backbone with a fresh head, as the config describes (seeded for a reproducible head)."""
    torch.manual_seed(config.seed)
    return load_backbone(config.backbone, num_classes=num_classes, pretrained=pretrained, pooling=config.pooling,
                         max_length=config.max_length, image_size=config.image_size, dropout=config.dropout)
