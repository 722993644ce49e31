"""A bundle's accuracy on its run's validation split with three numerics, side by side: this CPU's
kernels, exact int8 simulated here (the QDQ graph run unfused), and onnxruntime's real aarch64
kernels under user-mode QEMU (plain onnxruntime and numpy there, nothing of edgeft).

    .venv/bin/python benchmarks/arm64_confirm.py BUNDLE RUN_DIR [--samples 120] [--qemu-cpu neoverse-n1]

Needs the emulated environment of scripts/setup_arm64.sh. Emulation is 40-300x slower than native:
120 Lite0 images take a few minutes. Prints one table; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgeft.bench import TargetOptions
from edgeft.bench.targets import arm64_root
from edgeft.data import load_dataset
from edgeft.export.inputs import InputMaker
from edgeft.export.verify import onnx_logits
from edgeft.manifest import read_manifest
from edgeft.runtime.preprocess import preprocessing_from_dict

GUEST = """
import sys, numpy as np, onnxruntime as ort
feeds = dict(np.load(sys.argv[2]))
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
np.save(sys.argv[3], np.concatenate([session.run(None, {k: v[i:i + 1] for k, v in feeds.items()})[0]
                                     for i in range(len(next(iter(feeds.values()))))]))
"""


def emulated_logits(model: Path, feeds: dict[str, np.ndarray], qemu_cpu: str) -> np.ndarray:
    root = arm64_root(TargetOptions())
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "feeds.npz", **feeds)
        (Path(tmp) / "guest.py").write_text(GUEST)
        env = {**os.environ, "PYTHONPATH": str(root / "site"), "QEMU_CPU": qemu_cpu}
        subprocess.run(["qemu-aarch64", "-L", str(root / "sysroot"), str(root / "sysroot/usr/bin/python3.11"),
                        str(Path(tmp) / "guest.py"), str(model), str(Path(tmp) / "feeds.npz"),
                        str(Path(tmp) / "logits.npy")], check=True, env=env)
        return np.load(Path(tmp) / "logits.npy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument("--samples", type=int, default=120)
    parser.add_argument("--qemu-cpu", default="neoverse-n1")
    args = parser.parse_args()
    manifest = read_manifest(args.bundle)
    ft = json.loads((args.run / "config.json").read_text())["finetune_config"]
    splits = load_dataset(ft["data"], val_split=ft["val_split"], seed=ft["seed"], val_path=ft.get("val_data"))
    items, labels = splits.val.items[:args.samples], np.asarray(splits.val.labels[:args.samples])
    maker = InputMaker(preprocessing_from_dict(manifest.preprocessing))
    feeds = maker.feeds(items)
    model = args.bundle / manifest.model_file
    rows = {"this CPU's kernels": onnx_logits(model, [feeds]),
            "exact int8, simulated here": onnx_logits(model, [feeds], "simulated"),
            f"aarch64 onnxruntime under QEMU ({args.qemu_cpu})": emulated_logits(model, feeds, args.qemu_cpu)}
    reference = rows[f"aarch64 onnxruntime under QEMU ({args.qemu_cpu})"]
    q = manifest.quantization
    print(f"{args.bundle.name}: {q['name']}, target {q.get('target', {}).get('name')}, {len(items)} validation samples")
    print("| numerics | accuracy | top-1 agreement with QEMU | max abs diff to QEMU |")
    print("|---|---|---|---|")
    for name, logits in rows.items():
        print(f"| {name} | {np.mean(logits.argmax(-1) == labels):.1%} | "
              f"{np.mean(logits.argmax(-1) == reference.argmax(-1)):.1%} | {np.abs(logits - reference).max():.3g} |")


if __name__ == "__main__":
    sys.exit(main())
