"""The run directory: weights as safetensors, config.json, metrics.json, a resumable checkpoint.

Layout::

    RUN_DIR/
      config.json            backbone, head, freeze policy, preprocessing, labels, hyper-parameters
      model.safetensors      the best epoch's weights
      metrics.json           per epoch: train loss, val loss, val accuracy, seconds
      tokenizer.json         text backbones only
      checkpoint/last.safetensors, checkpoint/state.json   what --resume needs

The directory appears complete or not at all (first written to a temporary sibling and
renamed); later updates replace each file atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from edgeft.errors import RunDirError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.json"
TOKENIZER = "tokenizer.json"
LAST = "checkpoint/last.safetensors"
STATE = "checkpoint/state.json"


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


def write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    _atomic_write(path, lambda tmp: save_file(contiguous, tmp, metadata=metadata))


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
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".partial"))
    try:
        write(tmp)
        if final.is_dir():
            final.rmdir()  # an empty folder the user made beforehand
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
