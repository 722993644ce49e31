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
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from edgeft import outputs
from edgeft.errors import RunDirError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.json"
TOKENIZER = "tokenizer.json"
LAST = "checkpoint/last.safetensors"
STATE = "checkpoint/state.json"  # older runs kept the state beside the checkpoint; read on --resume


def write_json(path: Path, data: Any) -> None:
    outputs.write_json(path, data)


def write_text(path: Path, text: str) -> None:
    outputs.write_text(path, text)


def save_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    outputs.atomic_write(path, lambda tmp: save_file(contiguous, str(tmp), metadata=metadata))


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Tensors and JSON state in one file: one rename commits an epoch."""
    save_weights(path, tensors, {"format": "edgeft-checkpoint", "state": json.dumps(state)})


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The checkpoint's tensors and state (None for an older run's checkpoint without its state)."""
    tensors = load_weights(path)
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


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise RunDirError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunDirError(f"{path} is not a readable safetensors file ({exc})") from None


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RunDirError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc})") from None


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
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


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    slots: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            slots.setdefault(int(index), {})[key] = value
    for name, value in info["scalars"].items():
        index, key = name.split(".", 1)
        slots.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": slots, "param_groups": info["param_groups"]})


def create_run_dir(final: Path, write: Callable[[Path], None]) -> None:
    """Write the first version of a run directory in a temporary sibling, then rename it in."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = outputs.make_temp_dir(final)
    try:
        write(tmp)
        outputs.publish_mode(tmp)
        if final.is_dir():
            final.rmdir()  # an empty folder the user made beforehand
        outputs.commit_point(f"create {final.name}")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_new_run_dir(path: Path) -> None:
    """A new run must not overwrite anything, and its parent must be writable."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunDirError(f"{path} already exists; use --resume to continue it or choose another -o")
    parent = path.parent if path.parent != Path("") else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise RunDirError(f"cannot write to {path}: {probe} is not writable")
