"""The lean runtime's costs, measured in one run on the INT8 bundles of both default backbones:
cold start, overhead over a bare session.run, and dynamic padding vs padding to 128 tokens.

    .venv/bin/python benchmarks/runtime_speed.py [--from QUICKSTART_DIR] [--threads 2]

--from reuses the bundles of an `edgeft quickstart -o DIR` run; otherwise the quickstart is run
into a temporary folder first. Cold start: a fresh `python -c` process that imports
edgeft.runtime, loads the bundle and predicts one input; wall time of the whole process, median
of 5. Overhead: `EdgeModel.logits` vs `session.run` on the same session and tensor, each timed in
blocks of 200 runs, blocks alternated 5 times (medians). Padding: the bundled sample sentences
one at a time, padded to the longest (the runtime's policy) vs to 128. Writes
benchmarks/results/runtime_speed-<cpu>-t<threads>-ort<version>.{md,json}.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import cpu_model, slug, write_results  # noqa: E402

from edgeft.data import sample_data_path  # noqa: E402
from edgeft.data.unlabelled import read_samples  # noqa: E402
from edgeft.runtime import EdgeModel  # noqa: E402
from edgeft.runtime.preprocess import encode_texts  # noqa: E402

COLD = """import sys, time
from edgeft.runtime import EdgeModel
model = EdgeModel.load(sys.argv[1], threads={threads})
print(model.predict([sys.argv[2]])[0].label)
"""


def cold_start(bundle: Path, item: str, threads: int) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", COLD.format(threads=threads), str(bundle), item], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _block(fn, runs: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    return (time.perf_counter() - start) / runs


def overhead(model: EdgeModel, feeds: dict[str, np.ndarray]) -> tuple[float, float]:
    for _ in range(20):
        model.logits(feeds)
    bare, ours = [], []
    for _ in range(5):
        bare.append(_block(lambda: model.session.run(None, feeds)))
        ours.append(_block(lambda: model.logits(feeds)))
    return statistics.median(bare), statistics.median(ours)


def padding(model: EdgeModel, texts: list[str]) -> tuple[float, float, float]:
    def run(pad_to: int | None) -> float:
        feeds = [encode_texts(model.tokenizer, [t], model.preprocessing, pad_to=pad_to) for t in texts]
        for f in feeds[:10]:
            model.session.run(None, f)
        start = time.perf_counter()
        for f in feeds:
            model.session.run(None, f)
        return (time.perf_counter() - start) / len(feeds)

    lengths = [int(encode_texts(model.tokenizer, [t], model.preprocessing)["attention_mask"].sum()) for t in texts]
    return run(None), run(model.preprocessing.max_length), statistics.mean(lengths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.source
        if root is None:
            root = Path(tmp)
            subprocess.run([sys.executable, "-m", "edgeft", "quickstart", "-o", str(root), "--json"], check=True,
                           capture_output=True)
        image_bundle, text_bundle = root / "bundles/efficientnet_lite0-int8", root / "bundles/minilm_l6-int8"
        _, images = read_samples(sample_data_path("image"))
        _, texts = read_samples(sample_data_path("text"))
        rows = []
        for name, bundle, item in (("efficientnet_lite0 int8", image_bundle, images[0]), ("minilm_l6 int8", text_bundle, texts[0])):
            model = EdgeModel.load(bundle, threads=args.threads)
            feeds = model.preprocess([item])
            bare, ours = overhead(model, feeds)
            rows.append({"bundle": name, "cold_start_s": cold_start(bundle, item, args.threads),
                         "bare_ms": 1000 * bare, "runtime_ms": 1000 * ours, "overhead": ours / bare - 1})
        model = EdgeModel.load(text_bundle, threads=args.threads)
        dynamic, fixed, mean_len = padding(model, texts)
    lines = ["| bundle | cold start s (goal ≤ 0.5) | session.run ms | EdgeModel.logits ms | overhead (goal ≤ 5%) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['bundle']} | **{r['cold_start_s']:.2f}** | {r['bare_ms']:.2f} | {r['runtime_ms']:.2f} | **{r['overhead']:+.1%}** |"
              for r in rows]
    lines += ["", "| MiniLM INT8, sample sentences one by one | mean tokens | ms / sentence | ratio (goal ≤ 0.25) |",
              "|---|---|---|---|", f"| padded to 128 | 128 | {1000 * fixed:.2f} | 1.00 |",
              f"| padded to the longest (runtime) | {mean_len:.1f} | {1000 * dynamic:.2f} | **{dynamic / fixed:.2f}** |"]
    table = "\n".join(lines)
    env = f"{cpu_model()}, {args.threads} threads, onnxruntime {ort.__version__}, Python {sys.version.split()[0]}"
    write_results("runtime_speed", "Runtime speed", f"t{args.threads}-ort{slug(ort.__version__)}", env, table, {
        "rows": rows, "padding": {"dynamic_ms": 1000 * dynamic, "fixed_128_ms": 1000 * fixed, "mean_tokens": mean_len}})

if __name__ == "__main__":
    main()
