"""Epoch time of the feature cache and of freezing, measured side by side on the real backbones.

    .venv/bin/python benchmarks/finetune_speed.py [--epochs 3]

For each default backbone on its bundled sample data: a frozen-backbone run with the feature
cache, the same without it, and a full fine-tune (nothing frozen). Epoch times are medians over
the run's epochs (the one-time cache build is reported apart). Prints a table of ratios and
writes it to benchmarks/results/finetune_speed-<cpu>-t<threads>-pt<torch>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
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


def epoch_seconds(backbone: str, modality: str, out: Path, epochs: int, **options) -> tuple[float, dict | None]:
    config = FinetuneConfig(backbone=backbone, data=str(sample_data_path(modality)), output=str(out),
                            epochs=epochs, patience=0, seed=0, **options)
    result = finetune(config)
    metrics = json.loads((out / "metrics.json").read_text())
    return statistics.median(e["seconds"] for e in metrics["epochs"]), result.cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backbone, modality in BACKBONES:
            cached, cache = epoch_seconds(backbone, modality, Path(tmp) / f"{backbone}-c", args.epochs)
            uncached, _ = epoch_seconds(backbone, modality, Path(tmp) / f"{backbone}-u", args.epochs,
                                        cache_features=False)
            full, _ = epoch_seconds(backbone, modality, Path(tmp) / f"{backbone}-f", 1, freeze="none")
            rows.append({
                "backbone": backbone, "cached_epoch_s": cached, "cache_build_s": cache["seconds"],
                "uncached_epoch_s": uncached, "full_finetune_epoch_s": full,
                "cached_over_uncached": cached / uncached, "frozen_over_full": uncached / full,
                "cached_over_full": cached / full,
            })
    env = {"cpu": cpu_model(), "threads": threads, "torch": torch.__version__, "epochs": args.epochs}
    header = ("| backbone | cached epoch s | cache build s (once) | uncached epoch s | full fine-tune epoch s "
              "| cached / uncached (goal ≤ 0.05) | frozen / full | cached / full |\n|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['backbone']} | {r['cached_epoch_s']:.4f} | {r['cache_build_s']:.2f} | {r['uncached_epoch_s']:.2f} "
             f"| {r['full_finetune_epoch_s']:.2f} | {r['cached_over_uncached']:.4f} | {r['frozen_over_full']:.3f} "
             f"| {r['cached_over_full']:.4f} |" for r in rows]
    table = "\n".join([header, *lines])
    title = (f"Fine-tune epoch times on the bundled sample data, {env['cpu']}, {threads} threads, "
             f"torch {env['torch']} (medians over {args.epochs} epochs; full fine-tune: 1 epoch)")
    print(title)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stem = f"finetune_speed-{slug(env['cpu'])}-t{threads}-pt{slug(torch.__version__)}"
    (RESULTS / f"{stem}.md").write_text(f"# {title}\n\nCommand: `.venv/bin/python benchmarks/finetune_speed.py`\n\n{table}\n")
    (RESULTS / f"{stem}.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
