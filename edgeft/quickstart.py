"""``edgeft quickstart``: the bundled sample data through the main job on the default backbones."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from edgeft.data import sample_data_path
from edgeft.errors import RunDirError
from edgeft.finetune import FinetuneConfig, finetune
from edgeft.finetune import run_dir as rd

DEFAULTS = (("efficientnet_lite0", "image"), ("minilm_l6", "text"))


def _clear_previous(run: Path) -> None:
    """Remove an earlier quickstart run at ``run``, and refuse to touch anything else."""
    if not run.exists():
        return
    config = run / rd.CONFIG
    if not config.is_file() or rd.read_json(config).get("format") != "edgeft-run":
        raise RunDirError(f"{run} exists and is not an edgeft run; choose another -o")
    shutil.rmtree(run)


def run_quickstart(out: Path, log: Callable[[str], None], progress: bool, epochs: int = 10) -> list[dict[str, Any]]:
    """Fine-tune each default backbone (frozen) on its sample data; one summary row each."""
    rows = []
    for backbone, modality in DEFAULTS:
        run = out / "runs" / backbone
        _clear_previous(run)
        log(f"== fine-tuning {backbone} on the sample {modality} data")
        config = FinetuneConfig(backbone=backbone, data=str(sample_data_path(modality)), output=str(run),
                                freeze="all", epochs=epochs, seed=0)
        result = finetune(config, log=log, progress=progress)
        rows.append({
            "backbone": backbone, "task": result.task, "run_dir": str(run),
            "val_accuracy": result.best_val_accuracy, "best_epoch": result.best_epoch,
            "epochs": result.epochs_run, "seconds": round(result.seconds, 2),
            "trainable_params": result.trainable_params, "frozen_params": result.frozen_params,
        })
    return rows
