"""The backbone registry: ``@register_backbone(spec)`` on a loader function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgeft.backbones.base import BackboneSpec, Loader
from edgeft.registry import Registry


@dataclass(frozen=True)
class BackboneEntry:
    spec: BackboneSpec
    load: Loader


BACKBONES: Registry[BackboneEntry] = Registry("backbone")


def register_backbone(spec: BackboneSpec) -> Callable[[Loader], Loader]:
    """Register a loader ``load(spec, num_classes, pretrained=True, **options) -> Backbone``."""

    def add(load: Loader) -> Loader:
        BACKBONES.register(spec.name)(BackboneEntry(spec, load))
        return load

    return add
