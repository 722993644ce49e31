"""The run directory: weights as safetensors, config.json, metrics.json, a resumable checkpoint.

Layout::

    RUN_DIR/
      config.json                   backbone, head, freeze policy, preprocessing, labels, hyper-parameters
      model.safetensors             the best epoch's weights (its metadata names the epoch)
      metrics.json                  per epoch: train loss, val loss, val accuracy, seconds
      tokenizer.json                text backbones only
      checkpoint/last.safetensors   what --resume needs, as one file: the last epoch's weights and
                                    optimizer tensors, and in its metadata the scheduler, the epoch,
                                    the best-so-far and the metrics history

The directory appears with its config before the first epoch (first written to a temporary
sibling and renamed), so a run killed in its first epoch can be resumed. Each epoch commits by
one rename, the checkpoint's; ``metrics.json`` and ``model.safetensors`` are derived from it,
written after it, and repaired from it by ``--resume`` (``repair``). Every file is replaced
atomically (``edgeft.outputs``).

``RunDir`` owns that layout: whether a folder is a run, its config, its model, and every write.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from edgeft import outputs
from edgeft.backbones import Backbone
from edgeft.errors import RunDirError
from edgeft.finetune.config import FinetuneConfig

RUN_FORMAT = "edgeft-run"  # config.json's "format", and model.safetensors' metadata

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.json"
TOKENIZER = "tokenizer.json"
LAST = "checkpoint/last.safetensors"
STATE = "checkpoint/state.json"  # older runs kept the state beside the checkpoint; read on --resume


def _save_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    outputs.atomic_write(path, lambda tmp: save_file(contiguous, str(tmp), metadata=metadata))


def _save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Tensors and JSON state in one file: one rename commits an epoch."""
    _save_weights(path, tensors, {"format": "edgeft-checkpoint", "state": json.dumps(state)})


def _load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The checkpoint's tensors and state (None for an older run's checkpoint without its state)."""
    tensors = _load_weights(path)
    try:
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata() or {}
        state = json.loads(metadata["state"]) if "state" in metadata else None
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunDirError(f"{path} is not an edgeft checkpoint ({exc})") from None
    if state is not None and not isinstance(state, dict):
        raise RunDirError(f"{path} is not an edgeft checkpoint (its state is not an object)")
    return tensors, state


def weights_epoch(path: Path) -> int | None:
    """The epoch ``model.safetensors`` holds, from its metadata (None: unknown or unreadable)."""
    try:
        with safe_open(str(path), "pt") as f:
            return int((f.metadata() or {})["epoch"])
    except (SafetensorError, OSError, KeyError, ValueError, TypeError):
        return None


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise RunDirError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunDirError(f"{path} is not a readable safetensors file ({exc})") from None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunDirError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc})") from None


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's state split into flat tensors (for safetensors) and JSON (the rest)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    slots: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            slots.setdefault(int(index), {})[key] = value
    for name, value in info["scalars"].items():
        index, key = name.split(".", 1)
        slots.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": slots, "param_groups": info["param_groups"]})




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


class RunDir:
    """The run directory at ``path``: its files, what it holds, and every write to it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_file, self.weights_file = self.path / CONFIG, self.path / WEIGHTS
        self.metrics_file, self.tokenizer_file = self.path / METRICS, self.path / TOKENIZER
        self.checkpoint_file, self.legacy_state_file = self.path / LAST, self.path / STATE

    # -- reading -----------------------------------------------------------------------------
    @classmethod
    def find(cls, path: str | Path) -> RunDir | None:
        """The run at ``path``; None when ``path`` holds none (no folder, no config.json, or
        another tool's config.json, such as a Hugging Face model folder's). A config.json that
        cannot be read raises RunDirError: it names what is wrong rather than guessing."""
        run = cls(path)
        if not run.path.is_dir() or not run.config_file.is_file():
            return None
        config = _read_json(run.config_file)
        return run if isinstance(config, dict) and config.get("format") == RUN_FORMAT else None

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """The run at ``path``, or RunDirError saying why it is none."""
        run = cls(path)
        if not run.path.is_dir():
            raise RunDirError(f"{run.path} is not a run directory")
        if cls.find(path) is None:
            raise RunDirError(f"{run.config_file} is not an edgeft run config")
        return run

    def config(self) -> dict[str, Any]:
        return _read_json(self.config_file)

    def finetune_config(self, config: dict[str, Any] | None = None) -> FinetuneConfig:
        """The FinetuneConfig the run was made with (defaults filled in as the trainer read them),
        from ``config`` when the caller has already read config.json."""
        try:
            return FinetuneConfig.from_dict(dict((config or self.config())["finetune_config"]))
        except (KeyError, TypeError, ValueError):
            raise RunDirError(f"{self.config_file} is not an edgeft run config") from None

    def metrics(self) -> dict[str, Any]:
        return _read_json(self.metrics_file)

    def load(self) -> Run:
        """``model.safetensors`` in the backbone the run's config names, in eval mode."""
        from edgeft.finetune.model import build_model

        config, weights = self.config(), _load_weights(self.weights_file)
        model = build_model(self.finetune_config(config), config["head"]["num_classes"], pretrained=False)
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            lines = str(exc).splitlines()
            raise RunDirError(f"{self.weights_file} does not fit {config['backbone']['name']}: "
                              f"{lines[1].strip() if len(lines) > 1 else exc}") from None
        model.eval()
        return Run(self.path, model, config, self.metrics())

    # -- writing -----------------------------------------------------------------------------
    def check_new(self) -> None:
        """A new run must not overwrite anything, and its parent must be writable."""
        path = self.path
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise RunDirError(f"{path} already exists; use --resume to continue it or choose another -o")
        probe = path.parent if path.parent != Path("") else Path(".")
        while not probe.exists():
            probe = probe.parent
        if not os.access(probe, os.W_OK):
            raise RunDirError(f"cannot write to {path}: {probe} is not writable")

    def reap(self) -> None:
        """Remove what a killed process left: temporary siblings, and temporary files inside."""
        outputs.reap(self.path.absolute().parent, self.path.name)
        for folder in (self.path, self.checkpoint_file.parent):
            outputs.reap(folder)

    def create(self, config: dict[str, Any], tokenizer_json: str | None) -> None:
        """The directory's first version (config and tokenizer), written in a temporary sibling
        and renamed in, before the first epoch."""
        final = self.path
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = outputs.make_temp_dir(final)
        try:
            outputs.write_json(tmp / CONFIG, {"format": RUN_FORMAT, **config})
            if tokenizer_json is not None:
                outputs.write_text(tmp / TOKENIZER, tokenizer_json)
            outputs.publish_mode(tmp)
            if final.is_dir():
                final.rmdir()  # an empty folder the user made beforehand
            outputs.commit_point(f"create {final.name}")
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def commit_epoch(self, weights: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                     state: dict[str, Any]) -> None:
        """Commit an epoch: the checkpoint in one rename, then the files derived from it.
        ``state`` holds the epoch, the best-so-far, the scheduler and ``metrics``."""
        opt_tensors, opt_info = _optimizer_tensors(optimizer)
        state = {**state, "optimizer": opt_info}
        _save_checkpoint(self.checkpoint_file, {**{f"model.{k}": v for k, v in weights.items()}, **opt_tensors},
                         state)
        self.derive(state, weights)

    def derive(self, state: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
        """``metrics.json`` and ``model.safetensors`` as the committed checkpoint says (a repair on resume)."""
        outputs.write_json(self.metrics_file, state["metrics"])
        best = state["best_epoch"]
        if best == state["epoch"] and weights_epoch(self.weights_file) != best:
            _save_weights(self.weights_file, weights, {"format": RUN_FORMAT, "epoch": str(best)})

    def restore(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer
                ) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        """Load the last committed epoch into ``model`` and ``optimizer``; its state and model
        weights, or None when no epoch was committed."""
        if not self.checkpoint_file.is_file():
            return None
        tensors, state = _load_checkpoint(self.checkpoint_file)
        if state is None:  # a run written before the checkpoint held its state
            state = {**_read_json(self.legacy_state_file), "metrics": _read_json(self.metrics_file)}
        weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            model.load_state_dict(weights)
            _restore_optimizer(optimizer, tensors, state["optimizer"])
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise self.unfit(exc) from None
        return state, weights

    def unfit(self, exc: Exception) -> RunDirError:
        return RunDirError(f"{self.path}: checkpoint does not fit this run ({str(exc).splitlines()[0]})")

def load_run(path: str | Path) -> Run:
    """The run directory's best model, with its config and metrics."""
    return RunDir.open(path).load()
