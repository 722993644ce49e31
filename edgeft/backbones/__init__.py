"""Backbones: pretrained feature extractors with named groups for freezing.

``load_backbone("efficientnet_lite0", num_classes=3)``; a local Hugging Face folder or a hub id
works where a registered name does.
"""

from __future__ import annotations

from pathlib import Path

from edgeft.backbones import efficientnet_lite, hf_text  # noqa: F401  (registers)
from edgeft.backbones.base import Backbone, BackboneSpec, State
from edgeft.backbones.registry import BACKBONES, register_backbone
from edgeft.errors import UsageError


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/"))


def backbone_spec(name_or_path: str) -> BackboneSpec:
    """The spec of a registered backbone, a local Hugging Face folder, or a hub id."""
    if name_or_path in BACKBONES:
        return BACKBONES.get(name_or_path).spec
    path = Path(name_or_path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{path} is not a Hugging Face model folder (no config.json)")
        return hf_text.folder_spec(str(path.resolve()))
    if _looks_like_hub_id(name_or_path) and not path.exists():
        return hf_text.folder_spec(name_or_path)
    return BACKBONES.get(name_or_path)  # raises with "did you mean" and the known names


def load_backbone(
    name_or_path: str, num_classes: int | None = None, pretrained: bool = True, **options: object
) -> Backbone:
    """Load a backbone with a head for ``num_classes`` (``None``: its own pretrained head)."""
    spec = backbone_spec(name_or_path)
    if spec.name in BACKBONES:
        model = BACKBONES.get(spec.name).load(spec, num_classes, pretrained=pretrained, **options)
    else:
        model = hf_text.load_hf_encoder(spec.name, spec, num_classes, pretrained, **options)
    return model


__all__ = ["BACKBONES", "Backbone", "BackboneSpec", "State", "backbone_spec", "load_backbone", "register_backbone"]
