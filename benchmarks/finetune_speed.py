"""Epoch time of the feature cache, of freezing, and of devices / processes, side by side on
the real backbones.

    .venv/bin/python benchmarks/finetune_speed.py [--epochs 3] [--device cpu|cuda] [--precision fp32|bf16]
                                                  [--processes 2]

For each default backbone on its bundled sample data: a frozen-backbone run with the feature
cache, the same without it, and a full fine-tune (nothing frozen), on --device. With
--processes N the full fine-tune is also run under `torchrun --nproc-per-node N` (gloo on CPU,
nccl on CUDA). Epoch times are medians over the run's epochs (the one-time cache build is
reported apart). Prints a table and writes it to
benchmarks/results/finetune_speed-<cpu>-<device>-t<threads>-pt<torch>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import cpu_model, slug  # noqa: E402

from edgeft.data import sample_data_path  # noqa: E402
from edgeft.finetune import FinetuneConfig, finetune  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BACKBONES = (("efficientnet_lite0", "image"), ("minilm_l6", "text"))


def _median_epoch(out: Path) -> float:
    metrics = json.loads((out / "metrics.json").read_text())
    return statistics.median(e["seconds"] for e in metrics["epochs"])


def run(backbone: str, modality: str, out: Path, epochs: int, **options) -> tuple[float, dict | None]:
    config = FinetuneConfig(backbone=backbone, data=str(sample_data_path(modality)), output=str(out),
                            epochs=epochs, patience=0, seed=0, **options)
    result = finetune(config)
    return _median_epoch(out), result.cache


def run_torchrun(backbone: str, modality: str, out: Path, processes: int, device: str, precision: str) -> float:
    threads = max(1, torch.get_num_threads() // processes)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes), "-m", "edgeft",
           "finetune", "-b", backbone, "-d", str(sample_data_path(modality)), "-o", str(out), "--epochs", "1",
           "--freeze", "none", "--device", device, "--precision", precision, "--json"]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return _median_epoch(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    opts = {"device": args.device, "precision": args.precision}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backbone, modality in BACKBONES:
            cached, cache = run(backbone, modality, Path(tmp) / f"{backbone}-c", args.epochs, **opts)
            uncached, _ = run(backbone, modality, Path(tmp) / f"{backbone}-u", args.epochs, cache_features=False, **opts)
            full, _ = run(backbone, modality, Path(tmp) / f"{backbone}-f", 1, freeze="none", **opts)
            row = {
                "backbone": backbone, "device": args.device, "precision": args.precision, "processes": 1,
                "cached_epoch_s": cached, "cache_build_s": cache["seconds"], "uncached_epoch_s": uncached,
                "full_finetune_epoch_s": full, "cached_over_uncached": cached / uncached,
                "frozen_over_full": uncached / full, "cached_over_full": cached / full,
            }
            if args.processes > 1:
                multi = run_torchrun(backbone, modality, Path(tmp) / f"{backbone}-p", args.processes,
                                     args.device, args.precision)
                row.update({"processes": args.processes, f"full_epoch_s_{args.processes}proc": multi,
                            "multi_over_single_full": multi / full})
            rows.append(row)
    env = {"cpu": cpu_model(), "threads": threads, "torch": torch.__version__, "epochs": args.epochs,
           "device": args.device, "precision": args.precision}
    multi_cols = args.processes > 1
    header = ("| backbone | device | cached epoch s | cache build s (once) | uncached epoch s | full fine-tune epoch s "
              "| cached / uncached (goal ≤ 0.05) | frozen / full | cached / full |"
              + (f" full epoch s, {args.processes} processes | {args.processes} proc / 1 proc |" if multi_cols else ""))
    header += "\n|" + "---|" * (9 + (2 if multi_cols else 0))
    lines = []
    for r in rows:
        line = (f"| {r['backbone']} | {r['device']} {r['precision']} | {r['cached_epoch_s']:.4f} | {r['cache_build_s']:.2f} "
                f"| {r['uncached_epoch_s']:.2f} | {r['full_finetune_epoch_s']:.2f} | {r['cached_over_uncached']:.4f} "
                f"| {r['frozen_over_full']:.3f} | {r['cached_over_full']:.4f} |")
        if multi_cols:
            line += f" {r[f'full_epoch_s_{args.processes}proc']:.2f} | {r['multi_over_single_full']:.2f} |"
        lines.append(line)
    table = "\n".join([header, *lines])
    title = (f"Fine-tune epoch times on the bundled sample data, {env['cpu']}, {threads} threads, "
             f"torch {env['torch']} (medians over {args.epochs} epochs; full fine-tune: 1 epoch)")
    print(title)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stem = f"finetune_speed-{slug(env['cpu'])}-{slug(args.device)}-{args.precision}-t{threads}-pt{slug(torch.__version__)}"
    command = "benchmarks/finetune_speed.py " + " ".join(sys.argv[1:])
    (RESULTS / f"{stem}.md").write_text(f"# {title}\n\nCommand: `.venv/bin/python {command.strip()}`\n\n{table}\n")
    (RESULTS / f"{stem}.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
