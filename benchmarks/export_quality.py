"""Float vs quantized bundles of the real backbones, side by side: accuracy, agreement, size,
export time, and a batch-1 latency taken on this machine.

    .venv/bin/python benchmarks/export_quality.py [--epochs 10] [--threads 2]

Fine-tunes each default backbone (frozen) on its bundled sample data, exports it with every
--quantize mode, and prints one table. Accuracy is on the run's validation split (32 images,
64 sentences: one sample is 3.1 / 1.6 points). Latency: batch 1 (text padded to 128 tokens),
--threads intra-op threads, median of 100 runs after 20 warm-up runs, one session at a time (no
interleaving: onnxruntime's spinning threads would slow the next session). Writes
benchmarks/results/export_quality-<cpu>-t<threads>-ort<version>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import cpu_model, slug, write_results  # noqa: E402

from edgeft.data import sample_data_path  # noqa: E402
from edgeft.export import AccuracyBudgetError, ExportConfig, export_bundle  # noqa: E402
from edgeft.finetune import FinetuneConfig, finetune  # noqa: E402

BACKBONES = (("efficientnet_lite0", "image"), ("minilm_l6", "text"))
MODES = ("none", "dynamic", "static", "fp16")


def latency_ms(bundle: Path, threads: int, runs: int = 100, warmup: int = 20) -> float:
    manifest = json.loads((bundle / "edgeft.json").read_text())
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(bundle / "model.onnx"), options, providers=["CPUExecutionProvider"])
    if manifest["task"] == "image-classification":
        size = manifest["preprocessing"]["size"]
        feeds = {"pixel_values": np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)}
    else:
        ids = np.random.default_rng(0).integers(1000, 20000, (1, 128))
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        feeds = {k: v for k, v in feeds.items() if k in manifest["preprocessing"]["input_names"]}
    for _ in range(warmup):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _num(value: float | None) -> str:
    return "rejected" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backbone, modality in BACKBONES:
            run = Path(tmp) / backbone
            finetune(FinetuneConfig(backbone=backbone, data=str(sample_data_path(modality)), output=str(run),
                                    epochs=args.epochs, seed=0))
            float_size = None
            for mode in MODES:
                bundle = Path(tmp) / f"{backbone}-{mode}"
                try:
                    result = export_bundle(ExportConfig(source=str(run), output=str(bundle), quantize=mode))
                except AccuracyBudgetError as exc:  # recorded as a row: every recipe missed the budget
                    best = max(exc.candidates, key=lambda a: a.accuracy or 0)
                    rows.append({"backbone": backbone, "mode": mode, "recipe": f"none kept; best: {best.recipe.name}",
                                 "attempts": len(exc.candidates), "accuracy": best.accuracy, "drop_points": best.drop_points,
                                 "agreement": best.comparison.top1_agreement, "max_abs_diff": best.comparison.max_abs_diff,
                                 "size_mb": best.size_bytes / 1e6, "size_ratio": best.size_bytes / float_size,
                                 "export_s": float("nan"), "latency_ms": None})
                    continue
                v, q = result.manifest.verification, result.manifest.quantization
                float_size = float_size or result.size_bytes
                rows.append({
                    "backbone": backbone, "mode": mode, "recipe": q["name"], "attempts": len(q["attempts"]),
                    "accuracy": v["accuracy"]["exported"], "float_accuracy": v["accuracy"]["float"],
                    "drop_points": v["accuracy"]["drop_points"], "agreement": v["exported_vs_torch"]["top1_agreement"],
                    "max_abs_diff": v["exported_vs_torch"]["max_abs_diff"], "size_mb": result.size_bytes / 1e6,
                    "size_ratio": result.size_bytes / float_size, "export_s": result.seconds,
                    "latency_ms": latency_ms(bundle, args.threads),
                })
    for row in rows:
        base = next(r for r in rows if r["backbone"] == row["backbone"] and r["mode"] == "none")
        row["latency_ratio"] = row["latency_ms"] / base["latency_ms"] if row["latency_ms"] else None
    header = ("| backbone | --quantize | recipe kept (tries) | val acc | drop (pts) | top-1 agreement | max abs diff "
              "| size MB | size / float | export s | latency ms | latency / float |\n|" + "---|" * 12)
    lines = [header] + [
        f"| {r['backbone']} | {r['mode']} | {r['recipe']} ({r['attempts']}) | {r['accuracy']:.3f} | {r['drop_points']:+.2f} "
        f"| {r['agreement']:.3f} | {r['max_abs_diff']:.2g} | {r['size_mb']:.1f} | **{r['size_ratio']:.2f}** "
        f"| {r['export_s']:.1f} | {_num(r['latency_ms'])} | {_num(r['latency_ratio'])} |" for r in rows]
    table = "\n".join(lines)
    env = f"{cpu_model()}, {args.threads} threads, onnxruntime {ort.__version__}, batch 1, text at 128 tokens"
    write_results("export_quality", "Export quality", f"t{args.threads}-ort{slug(ort.__version__)}", env, table,
                  {"rows": rows})

if __name__ == "__main__":
    main()
