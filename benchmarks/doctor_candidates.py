"""The quantization doctor's candidate tables for both fine-tuned default backbones on the
bundled sample data, with a 0.5-point budget: every candidate's accuracy, agreement, latency and
size, the variant kept, and how long the doctor took.

    .venv/bin/python benchmarks/doctor_candidates.py [--from QUICKSTART_DIR] [--max-accuracy-drop 0.5]

--from reuses the runs of an `edgeft quickstart -o DIR`; otherwise the quickstart runs first.
The doctor's cache is pointed at a fresh folder, so every candidate is measured. Writes
benchmarks/results/doctor_candidates-<cpu>-ort<version>.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import cpu_model, quickstart_root, slug, write_results  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path)
    parser.add_argument("--max-accuracy-drop", type=float, default=0.5)
    args = parser.parse_args()
    sections, data = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = quickstart_root(args.source, tmp)
        env = {**os.environ, "EDGEFT_CACHE": str(Path(tmp) / "cache")}
        for backbone in ("efficientnet_lite0", "minilm_l6"):
            out = Path(tmp) / f"{backbone}-auto"
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "edgeft", "export", str(root / "runs" / backbone), "-o", str(out), "-q", "auto",
                            "--max-accuracy-drop", str(args.max_accuracy_drop)], check=True, env=env)
            seconds = time.perf_counter() - began
            report = json.loads((out / "doctor.json").read_text())
            chosen = next(c for c in report["candidates"] if c["chosen"])
            floats = next(c for c in report["candidates"] if c["recipe"] == "none")
            md = (out / "doctor.md").read_text().split("## Candidates", 1)[1].split("## Sensitivity repair", 1)
            sections.append(f"## {backbone}\n\nWhole export with the doctor: {seconds:.0f} s (the doctor itself "
                            f"{report['seconds']:.0f} s). Kept **{chosen['recipe']}**: accuracy drop "
                            f"{chosen['drop_points']:+.2f} pts, {chosen['latency_ms']:.2f} ms vs float "
                            f"{floats['latency_ms']:.2f} ms ({chosen['latency_ms'] / floats['latency_ms']:.2f}x), "
                            f"{chosen['size_bytes'] / 1e6:.1f} MB vs {floats['size_bytes'] / 1e6:.1f} MB.\n{md[0]}"
                            + (f"\n### Sensitivity repair\n\n{md[1].strip()}\n" if len(md) > 1 else ""))
            data[backbone] = {"export_seconds": seconds, **report}
    env_line = (f"{cpu_model()}, {os.cpu_count()} logical cores, onnxruntime {ort.__version__}, Python "
                f"{sys.version.split()[0]}; budget {args.max_accuracy_drop} points; latency p50, batch 1, held-out samples")
    write_results("doctor_candidates", "Quantization doctor: candidates on the sample data", f"ort{slug(ort.__version__)}",
                  env_line, "\n\n".join(sections), data)


if __name__ == "__main__":
    main()
