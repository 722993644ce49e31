"""Validation accuracy of edgeft's fine-tuning choices against a logistic regression on the same
frozen features, side by side in one run.

    .venv/bin/python benchmarks/finetune_quality.py [--images 600] [--quick]

Data sets:
- ``digits``: scikit-learn's handwritten digits (UCI, 10 classes; real scans that no one here
  wrote, shipped inside the scikit-learn wheel), ``--images`` of them, class-balanced, written as
  PNG files and read like any user's image folder (8x8 pixels, upscaled by the backbone's own
  preprocessing);
- ``shapes`` and ``topics``: the bundled sample data (too easy: every recipe scores 100%).

Rows for each set, all on the same stratified split:
- ``edgeft default``: ``--freeze all --epochs auto``, the head fitted to convergence (L-BFGS);
- ``--epochs 8``: 8 AdamW epochs of the head, from the fitted head (now) and from a fresh one (before);
- ``logistic regression``: scikit-learn's ``LogisticRegression`` (C=1, standardized) on the very
  features that edgeft cached;
- ``--freeze N``: the last one and the last two backbone groups train too (10 AdamW epochs).

Needs scikit-learn (benchmark-only: ``pip install scikit-learn``). Prints a table and writes
benchmarks/results/finetune_quality-<cpu>-pt<torch>.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import cpu_model, slug, write_results  # noqa: E402

from edgeft.backbones import backbone_spec, load_backbone  # noqa: E402
from edgeft.data import sample_data_path  # noqa: E402
from edgeft.finetune import FinetuneConfig, finetune  # noqa: E402
from edgeft.finetune import trainer as trainer_module  # noqa: E402


def write_digits(root: Path, count: int, seed: int = 0) -> Path:
    """``count`` of scikit-learn's digits, class-balanced, as PNG files in one folder per class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    per_class = count // 10
    for label in range(10):
        folder = root / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        chosen = rng.choice(np.flatnonzero(digits.target == label), per_class, replace=False)
        for index in chosen:
            pixels = (digits.images[index] * (255 / 16)).round().astype(np.uint8)
            Image.fromarray(pixels, mode="L").convert("RGB").save(folder / f"{index:04d}.png")
    return root


class FeatureTap:
    """Keeps the cached pooled features of the last head fit (train and val), as edgeft saw them."""

    def __init__(self) -> None:
        self.train: tuple[np.ndarray, np.ndarray] | None = None
        self.val: tuple[np.ndarray, np.ndarray] | None = None
        self._original = trainer_module.Trainer._fit_head

    def __enter__(self) -> "FeatureTap":
        tap, original = self, self._original

        def fit_head(trainer):  # noqa: ANN001, ANN202
            tap.train = (trainer.plan.train.tensors[0].numpy().copy(), trainer.plan.train.labels.numpy().copy())
            tap.val = (trainer.plan.val.tensors[0].numpy().copy(), trainer.plan.val.labels.numpy().copy())
            return original(trainer)

        trainer_module.Trainer._fit_head = fit_head
        return self

    def __exit__(self, *_: object) -> None:
        trainer_module.Trainer._fit_head = self._original


class FreshHead:
    """``--epochs N`` as it was before the head started from the fit: AdamW from a fresh head."""

    def __init__(self) -> None:
        self._original = trainer_module.Trainer.__init__

    def __enter__(self) -> "FreshHead":
        original = self._original

        def init(trainer, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            original(trainer, *args, **kwargs)
            trainer.warm_start = False

        trainer_module.Trainer.__init__ = init
        return self

    def __exit__(self, *_: object) -> None:
        trainer_module.Trainer.__init__ = self._original


def logistic_regression(tap: FeatureTap) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    assert tap.train is not None and tap.val is not None
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    model.fit(*tap.train)
    return float(model.score(*tap.val))


def run(backbone: str, data: Path, out: Path, **options) -> tuple[float, float, int]:
    start = time.perf_counter()
    result = finetune(FinetuneConfig(backbone=backbone, data=str(data), output=str(out), seed=0, **options))
    return result.best_val_accuracy, time.perf_counter() - start, result.epochs_run


def bench_set(name: str, backbone: str, data: Path, tmp: Path) -> list[dict]:
    groups = len(load_backbone(backbone, num_classes=2).groups())
    rows = []

    def add(recipe: str, accuracy: float, seconds: float | None, epochs: int | None) -> None:
        rows.append({"set": name, "backbone": backbone, "recipe": recipe, "val_accuracy": accuracy,
                     "seconds": seconds, "epochs": epochs})

    with FeatureTap() as tap:
        accuracy, seconds, epochs = run(backbone, data, tmp / f"{name}-default")
    add("edgeft default (--freeze all, head fitted)", accuracy, seconds, epochs)
    start = time.perf_counter()
    add("logistic regression on the same features", logistic_regression(tap), time.perf_counter() - start, None)
    add("--epochs 8 (AdamW head from the fitted head)", *run(backbone, data, tmp / f"{name}-e8", epochs=8))
    with FreshHead():
        add("--epochs 8 from a fresh head (before)", *run(backbone, data, tmp / f"{name}-e8-fresh", epochs=8))
    for trained in (1, 2):
        freeze = groups - trained
        add(f"--freeze {freeze} (last {trained} group{'s' if trained > 1 else ''} train)",
            *run(backbone, data, tmp / f"{name}-f{freeze}", freeze=str(freeze)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600, help="Digits to use (class-balanced).")
    parser.add_argument("--quick", action="store_true", help="Only the digits set.")
    args = parser.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        digits = write_digits(tmp / "digits", args.images)
        rows += bench_set("digits (real, 10 classes)", "efficientnet_lite0", digits, tmp)
        if not args.quick:
            rows += bench_set("shapes (bundled sample)", "efficientnet_lite0", sample_data_path("image"), tmp)
            rows += bench_set("topics (bundled sample)", "minilm_l6", sample_data_path("text"), tmp)
    lines = ["| set | backbone | recipe | val accuracy | vs logistic regression | epochs | seconds |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        reference = next(r["val_accuracy"] for r in rows if r["set"] == row["set"] and r["recipe"].startswith("logistic"))
        row["points_vs_logistic_regression"] = 100 * (row["val_accuracy"] - reference)
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        lines.append(f"| {row['set']} | {row['backbone']} | {row['recipe']} | {row['val_accuracy']:.1%} | "
                     f"{row['points_vs_logistic_regression']:+.1f} pts | {row['epochs'] or ''} | {seconds} |")
    env = (f"CPU: {cpu_model()}, {torch.get_num_threads()} threads; torch {torch.__version__}; "
           f"{backbone_spec('efficientnet_lite0').name} and {backbone_spec('minilm_l6').name}; seed 0, "
           f"{args.images} digits, validation split 0.2 (stratified)")
    write_results("finetune_quality", "Fine-tuning quality: edgeft's defaults against a logistic regression",
                  f"pt{slug(torch.__version__)}", env, "\n".join(lines), {"rows": rows})


if __name__ == "__main__":
    main()
