"""INT8 accuracy per target, with and without the head refit, and latency on this CPU, in one run.

    .venv/bin/python benchmarks/int8_accuracy.py [--images 600] [--skip-text]

A frozen EfficientNet-Lite0 fine-tuned (edgeft's defaults) on scikit-learn's real handwritten
digits (10 classes; see finetune_quality.py), and MiniLM-L6 on the bundled sample text. Each is
exported as float and as INT8 (static QDQ per-channel for images, dynamic for text) for the targets
``cpu`` (this machine's kernels) and ``arm64`` (exact int8 arithmetic, simulated here by running the
QDQ graph unfused), with and without the head refit (``--head-refit always|never``, static only). Accuracy is the validation split's, judged
with the target's numerics as the manifest records it; the budget is lifted so that every recipe is
measured as it is, not replaced by a fallback. Latency: batch 1, this CPU, the bench's runner.

Needs scikit-learn (benchmark-only). Writes benchmarks/results/int8_accuracy-<cpu>-ort<version>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import onnxruntime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import cpu_model, slug, write_results  # noqa: E402
from finetune_quality import write_digits  # noqa: E402

from edgeft.bench import BenchConfig, run_bench  # noqa: E402
from edgeft.data import sample_data_path  # noqa: E402
from edgeft.export import ExportConfig, export_bundle  # noqa: E402
from edgeft.finetune import FinetuneConfig, finetune  # noqa: E402


def export(run: Path, out: Path, quantize: str, target: str, refit: bool) -> dict:
    result = export_bundle(ExportConfig(source=str(run), output=str(out), quantize=quantize, target=target,
                                        head_refit="always" if refit else "never", per_channel=quantize == "static",
                                        max_accuracy_drop=100.0))
    m = result.manifest
    acc = m.verification["accuracy"]
    return {"bundle": str(out), "recipe": m.quantization["name"], "target": target,
            "numerics": m.quantization["target"]["numerics"], "head_refit": bool(m.quantization.get("head_refit")),
            "float_accuracy": acc["float"], "accuracy": acc["exported"], "drop_points": acc["drop_points"],
            "top1_agreement_with_torch": m.verification["exported_vs_torch"]["top1_agreement"],
            "size_mb": result.size_bytes / 1e6, "export_s": result.seconds}


def latency(rows: list[dict], float_bundle: Path) -> None:
    """p50 batch-1 latency here, every bundle in its own process, interleaved blocks."""
    bundles = [str(float_bundle)] + [r["bundle"] for r in rows]
    report = run_bench(BenchConfig(tuple(bundles), threads=(), min_time=2.0, rounds=5, warmup=10))
    p50 = {r["bundle"]: r["latency_ms"]["p50"] for r in report["results"]}
    base = p50[float_bundle.name]
    for row in rows:
        name = Path(row["bundle"]).name
        row["latency_ms"], row["latency_vs_float"] = p50[name], p50[name] / base


def bench_model(name: str, backbone: str, data: Path, quantize: str, tmp: Path) -> list[dict]:
    run = tmp / f"{name}-run"
    finetune(FinetuneConfig(backbone=backbone, data=str(data), output=str(run), seed=0))
    float_bundle = tmp / f"{name}-float"
    export_bundle(ExportConfig(source=str(run), output=str(float_bundle)))
    rows = []
    for target in ("cpu", "arm64"):
        for refit in (False, True):
            if refit and quantize != "static":
                continue  # the refit applies to static (QDQ) recipes
            row = export(run, tmp / f"{name}-{target}-{'refit' if refit else 'plain'}", quantize, target, refit)
            rows.append({"model": name, **row})
    latency(rows, float_bundle)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--skip-text", action="store_true")
    args = parser.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        digits = write_digits(tmp / "digits", args.images)
        rows += bench_model("Lite0 / digits (real)", "efficientnet_lite0", digits, "static", tmp)
        if not args.skip_text:
            rows += bench_model("MiniLM / topics (sample)", "minilm_l6", sample_data_path("text"), "dynamic", tmp)
    lines = ["| model | target | numerics | recipe | head refit | float acc | INT8 acc | drop (pts) | "
             "top-1 vs torch | latency vs float (this CPU) | size MB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['target']} | {r['numerics']} | {r['recipe']} | {'yes' if r['head_refit'] else 'no'} "
                     f"| {r['float_accuracy']:.1%} | {r['accuracy']:.1%} | {r['drop_points']:+.2f} | "
                     f"{r['top1_agreement_with_torch']:.1%} | {r['latency_vs_float']:.2f}x ({r['latency_ms']:.2f} ms) | "
                     f"{r['size_mb']:.1f} |")
    env = (f"CPU: {cpu_model()}; onnxruntime {onnxruntime.__version__}; {args.images} digits, validation split 0.2; "
           "arm64 accuracy simulated on this x86 host (QDQ unfused), not yet confirmed under emulation")
    write_results("int8_accuracy", "INT8 accuracy per target, with and without the head refit",
                  f"ort{slug(onnxruntime.__version__)}", env, "\n".join(lines), {"rows": json.loads(json.dumps(rows))})


if __name__ == "__main__":
    main()
