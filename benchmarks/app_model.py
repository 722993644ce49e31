"""What an app model's in-graph preprocessing costs and how close it comes to the Python runtime.

Lite0 with its ImageNet head, float and static INT8 (calibrated on scikit-image's photos), each
packaged with ``edgeft package --app``. Measured side by side in one run:

1. The resize residual on real photos (scikit-image's, at their own size and at 1280x960): the
   graph's preprocessing against Pillow's, per interpolation, on the center crop the model sees.
2. The logit residual: the app model against ``EdgeModel.predict`` of the bundle it came from, on
   the same decoded pixels.
3. Latency, raw 1280x960 photo (a crop of retina.jpg, real pixels) to the top-5: the app model's one
   ``session.run`` against the bare model plus edgeft's preprocessing (``EdgeModel.predict`` on the
   array: Pillow resize and crop, numpy normalisation, onnxruntime, softmax and top-k), at 1 and 2
   threads. Alternating blocks of calls, medians of the block means (onnxruntime's threads spin
   after a run: never time single calls back to back across sessions).
4. Size, and the operators the preprocessing adds to ``required_operators.config``.

    .venv/bin/python benchmarks/app_model.py          # needs scikit-image (the test extra)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import cpu_model, slug, write_results  # noqa: E402

from edgeft.runtime import EdgeModel  # noqa: E402
from edgeft.runtime.preprocess import ImagePreprocessing, crop_image  # noqa: E402

PHOTOS = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "motorcycle_left.png", "retina.jpg",
          "ihc.png", "hubble_deep_field.jpg"]
BLOCK, BLOCKS = 10, 9


def photo_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).parent


def edgeft(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "edgeft", *args], check=True, capture_output=True)


def resize_residual() -> list[dict]:
    """The graph's preprocessing against Pillow's on every photo, per interpolation."""
    from PIL import Image

    from edgeft.export.app_graph import preprocessing_model

    rows = []
    for interpolation in ("bicubic", "bilinear", "nearest"):
        spec = ImagePreprocessing(interpolation=interpolation)
        session = onnxruntime.InferenceSession(preprocessing_model(spec).SerializeToString(),
                                               providers=["CPUExecutionProvider"])
        worst, fractions = 0.0, []
        for name in PHOTOS:
            image = Image.open(photo_dir() / name).convert("RGB")
            for version in (image, image.resize((1280, 960), Image.Resampling.LANCZOS)):
                want = crop_image(version, spec).astype(np.float32)
                got = session.run(None, {"pixels": np.asarray(version)})[0][0].transpose(1, 2, 0) * np.float32(128) + 127
                diff = np.abs(np.rint(got) - want)
                worst = max(worst, float(diff.max()))
                fractions.append(float((diff > 0).mean()))
        rows.append({"interpolation": interpolation, "images": len(fractions), "max_levels": worst,
                     "mean_fraction_differing": float(np.mean(fractions)), "max_fraction_differing": max(fractions)})
    return rows


def logit_residual(bare: EdgeModel, app: EdgeModel) -> dict:
    from edgeft.runtime.preprocess import load_image

    diffs, agree = [], []
    for name in PHOTOS:
        pixels = np.asarray(load_image(photo_dir() / name))
        want = np.asarray(bare.predict([pixels], return_logits=True)[0].logits)
        got = app.session.run(["logits"], {"pixels": pixels})[0][0]
        diffs.append(float(np.abs(got - want).max()))
        agree.append(bool(got.argmax() == want.argmax()))
    return {"photos": len(PHOTOS), "max_abs_logit_diff": max(diffs), "top1_agreement": float(np.mean(agree))}


def block_median(calls: dict[str, callable]) -> dict[str, float]:
    """Median over BLOCKS of the mean ms per call in a block of BLOCK calls, the contenders alternating."""
    for call in calls.values():
        for _ in range(3):
            call()
    blocks: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(BLOCKS):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(BLOCK):
                call()
            blocks[name].append((time.perf_counter() - start) / BLOCK * 1000)
    return {name: float(np.median(values)) for name, values in blocks.items()}


def operators(config: Path) -> set[str]:
    return {f"{line.split(';')[0]}:{op}" for line in config.read_text().splitlines() if line and not line.startswith("#")
            for op in line.split(";")[2].split(",")}


def main() -> None:
    from PIL import Image

    rows, data = [], {"resize": resize_residual(), "variants": {}}
    big = np.ascontiguousarray(np.asarray(Image.open(photo_dir() / "retina.jpg").convert("RGB"))[200:1160, 60:1340])
    assert big.shape == (960, 1280, 3)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "photos").mkdir()
        for name in PHOTOS:
            (root / "photos" / name).write_bytes((photo_dir() / name).read_bytes())
        edgeft("export", "efficientnet_lite0", "-o", str(root / "float"), "--eval-samples", "8")
        edgeft("export", "efficientnet_lite0", "-o", str(root / "int8"), "--quantize", "static", "--per-channel",
               "--calibration-data", str(root / "photos"), "--eval-samples", "8")
        for variant in ("float", "int8"):
            bundle = root / variant
            edgeft("package", str(bundle), "-o", str(root / f"{variant}-app"), "--app")
            edgeft("package", str(bundle), "-o", str(root / f"{variant}-ort"), "--format", "ort")
            edgeft("package", str(bundle), "-o", str(root / f"{variant}-app-ort"), "--app", "--format", "ort")
            added = sorted(operators(root / f"{variant}-app-ort" / "required_operators.config")
                           - operators(root / f"{variant}-ort" / "required_operators.config"))
            info = {"residual": logit_residual(EdgeModel.load(bundle), EdgeModel.load(root / f"{variant}-app")),
                    "size_bytes": {"bare_onnx": (bundle / "model.onnx").stat().st_size,
                                   "app_onnx": (root / f"{variant}-app" / "model.onnx").stat().st_size,
                                   "bare_ort": (root / f"{variant}-ort" / "model.ort").stat().st_size,
                                   "app_ort": (root / f"{variant}-app-ort" / "model.ort").stat().st_size},
                    "added_operators": added, "latency_ms": {}}
            for threads in (1, 2):
                bare = EdgeModel.load(bundle, threads=threads)
                app = EdgeModel.load(root / f"{variant}-app", threads=threads)
                ms = block_median({"bare": lambda bare=bare: bare.predict([big], top_k=5),
                                   "app": lambda app=app: app.session.run(["top_k_scores", "top_k_indices"],
                                                                          {"pixels": big})})
                info["latency_ms"][threads] = ms
                rows.append(f"| {variant} | {threads} | {ms['bare']:.2f} | {ms['app']:.2f} | {ms['app'] / ms['bare']:.2f}x |")
            data["variants"][variant] = info
    env = (f"CPU: {cpu_model()}; onnxruntime {onnxruntime.__version__}; photo 1280x960 (retina.jpg crop); "
           f"{BLOCKS} alternating blocks of {BLOCK} calls, median of block means")
    resize = "\n".join(f"| {r['interpolation']} | {r['images']} | {r['max_levels']:.0f} | {r['mean_fraction_differing']:.5%} | "
                       f"{r['max_fraction_differing']:.4%} |" for r in data["resize"])
    variants = data["variants"]
    detail = "\n".join(
        f"| {v} | {i['residual']['max_abs_logit_diff']:.3g} | {i['residual']['top1_agreement']:.0%} | "
        f"{i['size_bytes']['bare_onnx'] / 1e6:.2f} -> {i['size_bytes']['app_onnx'] / 1e6:.2f} | "
        f"{i['size_bytes']['bare_ort'] / 1e6:.2f} -> {i['size_bytes']['app_ort'] / 1e6:.2f} | {', '.join(i['added_operators'])} |"
        for v, i in variants.items())
    table = (
        "Latency, raw 1280x960 photo to top-5 (ms)\n\n| model | threads | bare + edgeft preprocessing | app model | ratio |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows)
        + "\n\nResize inside the graph vs Pillow, on the 224x224 crop the model sees (levels 0..255)\n\n"
          "| interpolation | images | max diff | values differing (mean) | (worst image) |\n|---|---|---|---|---|\n" + resize
        + f"\n\nApp model vs EdgeModel.predict on the same pixels ({len(PHOTOS)} photos), size and operators\n\n"
          "| model | max abs logit diff | top-1 agreement | .onnx MB | .ort MB | operators added |\n|---|---|---|---|---|---|\n"
        + detail)
    write_results("app_model", "App model: in-graph preprocessing", slug(f"ort{onnxruntime.__version__}"), env, table,
                  json.loads(json.dumps(data)))


if __name__ == "__main__":
    main()
