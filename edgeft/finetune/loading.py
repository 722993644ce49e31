"""Read a finished (or interrupted) run directory back into a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeft.backbones import Backbone
from edgeft.errors import RunDirError
from edgeft.finetune import run_dir as rd
from edgeft.finetune.config import FinetuneConfig


@dataclass
class Run:
    """A run directory's model (best weights, eval mode) with its config and metrics."""

    path: Path
    model: Backbone
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def labels(self) -> list[str]:
        return self.config["labels"]


def load_run(path: str | Path) -> Run:
    """Load ``model.safetensors`` into the backbone the run's config names."""
    from edgeft.finetune.trainer import build_model

    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path} is not a run directory")
    config = rd.read_json(path / rd.CONFIG)
    if config.get("format") != "edgeft-run":
        raise RunDirError(f"{path / rd.CONFIG} is not an edgeft run config")
    weights = rd.load_weights(path / rd.WEIGHTS)
    finetune_config = FinetuneConfig.from_dict(config["finetune_config"])
    model = build_model(finetune_config, config["head"]["num_classes"], pretrained=False)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise RunDirError(f"{path / rd.WEIGHTS} does not fit {config['backbone']['name']}: "
                          f"{str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else exc}") from None
    model.eval()
    return Run(path, model, config, rd.read_json(path / rd.METRICS))
