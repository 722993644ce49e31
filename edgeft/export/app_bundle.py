"""``--app``: turn a bundle folder into an app bundle in place. Its model takes what an app has
(``edgeft.export.app_graph``), its golden inputs are what an app has too, and it is checked
against the Python runtime before anything is kept: on every golden input the app model's
top-1 must match ``EdgeModel.predict``'s and its logits must lie within the bundle's tolerance.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeft.errors import UsageError
from edgeft.export.app_graph import _RESIZE, OUTPUTS, add_app_graph
from edgeft.export.golden import pick
from edgeft.export.verify import ParityError, compare, session
from edgeft.manifest import (
    GOLDEN,
    TOKENIZER,
    Manifest,
    TensorSpec,
    checked_golden,
    read_manifest,
    sha256_file,
    write_manifest,
)
from edgeft.runtime.app import GOLDEN_IMAGE, app_feeds
from edgeft.runtime.preprocess import (
    ImagePreprocessing,
    crop_image,
    encode_texts,
    load_tokenizer,
    normalize,
    preprocessing_from_dict,
)

TOP_K = 5
# onnxruntime's uint8 resize and Pillow's differ by 1 level in 0.001%..0.03% of values (their
# fixed-point coefficients round ties differently; measured on real photos by
# benchmarks/app_model.py). That moves a float model's logits by up to ~4e-5 of their scale at
# 224 px and ~2e-4 at 64 px: more than a float bundle's own tolerance (1e-4, for kernel
# differences alone), so an image app model is held to at least this, relative to the logits' scale.
RESIZE_ROUNDING = 1e-3
# The golden crops are re-drawn at these sizes (width, height): two downscales (the antialiased
# path), an upscale and the exact resize size, in both orientations.
GOLDEN_SIZES = ((448, 336), (336, 448), (300, 225), (256, 256))


def golden_images(crops: np.ndarray) -> list[np.ndarray]:
    """Photos an app could pass: each golden crop re-drawn (Pillow, bicubic) at each golden size."""
    from PIL import Image

    return [np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BICUBIC))
            for crop in crops for size in GOLDEN_SIZES]


def _reference(model_file: Path, folder: Path, manifest: Manifest, items: list[Any], numerics: str) -> np.ndarray:
    """The Python runtime's logits for each item alone: its own preprocessing (Pillow resize,
    tokenizers), then the bundle's model under the golden vectors' numerics."""
    from PIL import Image

    spec = preprocessing_from_dict(manifest.preprocessing)
    sess = session(model_file, numerics=numerics)
    names = [i.name for i in sess.get_inputs()]
    tokenizer = (None if isinstance(spec, ImagePreprocessing)
                 else load_tokenizer(folder / manifest.files.get("tokenizer", TOKENIZER), spec))
    rows = []
    for item in items:
        if tokenizer is None:
            feeds = {names[0]: normalize(crop_image(Image.fromarray(item), spec)[None], spec)}
        else:
            feeds = encode_texts(tokenizer, [item], spec)
        rows.append(sess.run(None, feeds)[0])
    return np.concatenate(rows)


def _app_logits(model_file: Path, manifest: Manifest, items: list[Any], numerics: str, custom_ops: str | None) -> np.ndarray:
    sess = session(model_file, numerics=numerics, custom_ops=custom_ops)
    try:
        return np.concatenate([sess.run(["logits"], app_feeds(manifest.task, item))[0] for item in items])
    except Exception as exc:  # onnxruntime's own exception types: a bug in the app graph
        raise ParityError(f"onnxruntime cannot run the app model: {str(exc).splitlines()[0][:300]}") from None


def make_app(folder: Path, work: Path, top_k: int = TOP_K, log: Callable[[str], None] = lambda _: None) -> Manifest:
    """Replace the bundle in ``folder`` by its app form (``work``: a scratch folder); raises before
    touching ``folder`` when the app model and the Python runtime disagree."""
    import onnx

    manifest = read_manifest(folder)
    if manifest.app:
        raise UsageError(f"{folder} is already an app bundle")
    if not manifest.model_file.endswith(".onnx"):
        raise UsageError("--app needs the bundle's ONNX model; package the exported bundle, not an ORT-format one")
    if not manifest.golden:
        raise UsageError("--app checks the app model on the bundle's golden inputs, and this bundle has none")
    model_file = folder / manifest.model_file
    tokenizer = folder / manifest.files.get("tokenizer", TOKENIZER)
    spec = preprocessing_from_dict(manifest.preprocessing)
    model = onnx.load(str(model_file))
    graph = add_app_graph(model, spec, len(manifest.labels), top_k,
                          tokenizer.read_text(encoding="utf-8") if tokenizer.is_file() else None)
    app_file = work / "app.onnx"
    onnx.save(model, str(app_file))

    with np.load(checked_golden(folder, manifest), allow_pickle=False) as golden:
        inputs = golden["crops"] if isinstance(spec, ImagePreprocessing) else golden["texts"]
    numerics = manifest.golden.get("numerics", "host")
    if isinstance(spec, ImagePreprocessing):
        items: list[Any] = golden_images(inputs)
    else:
        items = [str(t) for t in inputs]
        stored = {"texts": np.array(items)}
    log(f"checking the app model against the Python runtime on {len(items)} inputs ({numerics} numerics)")
    reference = _reference(model_file, folder, manifest, items, numerics)
    app = _app_logits(app_file, manifest, items, numerics, graph.custom_ops)
    measured = compare(reference, app)  # on every candidate, near ties included: recorded as measured
    if isinstance(spec, ImagePreprocessing):  # the golden inputs: the widest top-1 margins, as export's
        picked = pick(reference, len(inputs))
        items, reference, app = [items[i] for i in picked], reference[picked], app[picked]
        stored = {GOLDEN_IMAGE.format(i): image for i, image in enumerate(items)}
    parity = compare(reference, app)
    bundle_atol = float(manifest.golden["atol"])
    atol = bundle_atol
    if isinstance(spec, ImagePreprocessing):  # onnxruntime's resize rounds a few values the other way
        atol = max(bundle_atol, RESIZE_ROUNDING * max(1.0, float(np.abs(reference).max())))
    if not parity.max_abs_diff <= atol or parity.top1_agreement < 1.0:
        raise ParityError(f"the app model differs from the Python runtime: logits max abs diff {parity.max_abs_diff:.3g} "
                          f"(tolerance {atol:.3g}), top-1 agreement {parity.top1_agreement:.0%} on {parity.samples} inputs")

    np.savez_compressed(work / GOLDEN, **stored, logits=reference.astype(np.float32))
    old_sha = manifest.source["model_sha256"]
    model_file.unlink()
    (work / GOLDEN).replace(folder / GOLDEN)
    app_file.replace(folder / "model.onnx")
    files = {"model": "model.onnx", "golden": GOLDEN}
    if graph.custom_ops:
        tokenizer.unlink(missing_ok=True)  # the vocabulary is inside the graph now
    elif "tokenizer" in manifest.files:
        files["tokenizer"] = manifest.files["tokenizer"]
    k = max(1, min(top_k, len(manifest.labels)))
    classes = len(manifest.labels)
    inputs = ([TensorSpec("pixels", "uint8", ["height", "width", 3])] if graph.input_name == "pixels"
              else [TensorSpec("text", "string", [1])])
    outputs = [TensorSpec(OUTPUTS[0], manifest.outputs[0].dtype, [1, classes]), TensorSpec(OUTPUTS[1], "float32", [1, classes]),
               TensorSpec(OUTPUTS[2], "float32", [1, k]), TensorSpec(OUTPUTS[3], "int64", [1, k])]
    app_info = {"input": graph.input_name, "steps": list(graph.steps), "top_k": k, "custom_ops": graph.custom_ops,
                "base_model_sha256": old_sha,
                "parity": {**parity.to_dict(), "atol": atol, "bundle_atol": bundle_atol, "numerics": numerics,
                           "all_candidates": measured.to_dict(),
                           "reference": "edgeft.runtime: " + ("Pillow resize and crop, numpy normalisation"
                                                               if graph.input_name == "pixels" else "tokenizers")
                           + ", then the bundle's model"}}
    if isinstance(spec, ImagePreprocessing):
        app_info["resize"] = {**_RESIZE[spec.interpolation], "coordinate_transformation_mode": "half_pixel"}
        app_info["golden_sizes"] = [list(image.shape[1::-1]) for image in items]
    manifest = replace(
        manifest, inputs=inputs, outputs=outputs, app=app_info, files=files,
        golden={**{k: v for k, v in manifest.golden.items() if k != "device"}, "file": GOLDEN, "sha256": sha256_file(folder / GOLDEN),
                "count": len(items), "inputs": list(stored), "atol": atol,
                "top1": reference.argmax(-1).tolist()},
        source={**manifest.source, "model_sha256": sha256_file(folder / "model.onnx")})
    write_manifest(folder, manifest)
    log(f"app model: {graph.input_name} in, {', '.join(OUTPUTS)} out; matches the Python runtime on "
        f"{parity.samples} inputs (max abs logit diff {parity.max_abs_diff:.2g}, tolerance {atol:.2g})")
    return manifest
