"""``edgeft quickstart``: the bundled sample data through the main job on the default backbones."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

from edgeft.data import sample_data_path
from edgeft.errors import RunDirError
from edgeft.finetune import FinetuneConfig, RunDir, finetune

DEFAULTS = (("efficientnet_lite0", "image"), ("minilm_l6", "text"))
INT8 = {"image": "static", "text": "dynamic"}  # the INT8 recipe that pays off for each modality


def _clear_previous(run: Path) -> None:
    """Remove an earlier quickstart run at ``run``, and refuse to touch anything else."""
    if not run.exists():
        return
    if RunDir.find(run) is None:
        raise RunDirError(f"{run} exists and is not an edgeft run; choose another -o")
    shutil.rmtree(run)


def _export(run: Path, bundle: Path, quantize: str, log: Callable[[str], None]) -> dict[str, Any]:
    from edgeft.export import ExportConfig, export_bundle

    # force replaces an earlier quickstart bundle there, and refuses a folder of anything else
    result = export_bundle(ExportConfig(source=str(run), output=str(bundle), quantize=quantize, force=True), log=log)
    v = result.manifest.verification
    return {"bundle": str(bundle), "recipe": result.manifest.quantization["name"], "size_bytes": result.size_bytes,
            "agreement": v["exported_vs_torch"]["top1_agreement"], "max_abs_diff": v["exported_vs_torch"]["max_abs_diff"],
            "accuracy": v["accuracy"]["exported"] if v["accuracy"] else None,
            "drop_points": v["accuracy"]["drop_points"] if v["accuracy"] else None,
            "export_seconds": round(result.seconds, 1)}


def _bench(backbone: str, bundles: dict[str, dict[str, Any]], report_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """A short side-by-side bench on this CPU: PyTorch eager, float and INT8 bundles."""
    from edgeft.bench import BenchConfig, run_bench
    from edgeft.bench.report import write_report

    config = BenchConfig.quick(tuple(b["bundle"] for b in bundles.values()), baseline="torch")
    report = run_bench(config, log=log)
    write_report(report, report_dir)
    return report


def run_quickstart(out: Path, log: Callable[[str], None], progress: bool, epochs: int | str = "auto",
                   bench: bool = True) -> list[dict[str, Any]]:
    """Fine-tune each default backbone (frozen) on its sample data, export it as float and INT8
    bundles, and bench them against PyTorch eager; one summary row each."""
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
            "bundles": {},
        })
        for variant, quantize in (("float", "none"), ("int8", INT8[modality])):
            log(f"== exporting {backbone} ({variant})")
            rows[-1]["bundles"][variant] = _export(run, out / "bundles" / f"{backbone}-{variant}", quantize, log)
        if bench:
            log(f"== benchmarking {backbone}: PyTorch eager, float and INT8, batch 1, all cores")
            rows[-1]["bench"] = _bench(backbone, rows[-1]["bundles"], out / "bench" / backbone, log)
    return rows
