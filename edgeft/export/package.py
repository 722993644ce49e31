"""``edgeft package``: an app-ready folder or zip: the bundle, a README for app developers, and
optionally the model in ORT format for ORT Mobile with its ``required_operators`` config."""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Callable

from edgeft.errors import UsageError
from edgeft.export.app_bundle import make_app
from edgeft.export.app_readme import app_readme
from edgeft.export.bundle import BundleWriter
from edgeft.export.quiet import quiet
from edgeft.manifest import MANIFEST, Manifest, read_manifest, sha256_file, write_manifest
from edgeft.outputs import Output, check_space, write_errors
from edgeft.runtime.model import EdgeModel, bundle_file

FORMATS = ("onnx", "ort")


def _to_ort(folder: Path, manifest: Manifest, work: Path) -> Manifest:
    """Convert model.onnx to model.ort with onnxruntime's own tool (fixed, 'extended' optimisations:
    CPU-provider fusions that do not depend on this machine's ISA) and write the operator config
    for a reduced-size onnxruntime build."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    onnx_file = folder / manifest.model_file
    tmp = work / "ort"
    tmp.mkdir()
    library = None
    if manifest.app.get("custom_ops"):
        from onnxruntime_extensions import get_library_path

        library = Path(get_library_path())
    os.environ["ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL"] = "extended"
    try:
        with quiet("", "ort_format_model.utils"):  # the converter's tools print and log INFO lines
            convert_onnx_models_to_ort(onnx_file, tmp, [OptimizationStyle.Fixed], custom_op_library_path=library,
                                       target_platform="arm")
    finally:
        os.environ.pop("ORT_CONVERT_ONNX_MODELS_TO_ORT_OPTIMIZATION_LEVEL", None)
    shutil.copyfile(next(tmp.glob("*.ort")), folder / "model.ort")
    shutil.copyfile(next(tmp.glob("*.required_operators*.config")), folder / "required_operators.config")
    onnx_sha = manifest.source["model_sha256"]
    onnx_file.unlink()
    return replace(manifest, files={**manifest.files, "model": "model.ort", "required_operators": "required_operators.config"},
                   source={**manifest.source, "model_sha256": sha256_file(folder / "model.ort"), "onnx_sha256": onnx_sha,
                           "format": "ort"})


def _readme(manifest: Manifest) -> str:
    if manifest.app:
        return app_readme(manifest)
    pre = manifest.preprocessing
    inputs = "\n".join(f"- `{t.name}`: {t.dtype}, shape {t.shape}" for t in manifest.inputs)
    labels = ", ".join(manifest.labels[:20]) + (f", ... ({len(manifest.labels)} in all)" if len(manifest.labels) > 20 else "")
    if pre["kind"] == "image":
        steps = (f"1. Decode to RGB, apply EXIF orientation.\n2. Resize the shorter side to {pre['resize']} px "
                 f"({pre['interpolation']}), center-crop {pre['size']}x{pre['size']}.\n"
                 f"3. `x = (pixel - mean) / std` per channel on the 0..255 scale, mean {pre['mean']}, std {pre['std']}.\n"
                 f"4. Layout {pre['layout']} float32: `[batch, 3, {pre['size']}, {pre['size']}]`.")
        example = 'print(model.predict(["photo.jpg"], top_k=3))'
    else:
        steps = (f"1. Tokenize with `tokenizer.json` (Hugging Face tokenizers format, any binding).\n"
                 f"2. Truncate at {pre['max_length']} tokens; pad with `{pre['pad_token']}` to the longest text of the "
                 f"batch (not to {pre['max_length']}: shorter is faster).\n3. Feed {', '.join(pre['input_names'])} as int64.")
        example = 'print(model.predict(["text to classify"], top_k=3))'
    q = manifest.quantization
    return f"""# {manifest.source.get('backbone', {}).get('name', 'model')}: {manifest.task}

Model file `{manifest.model_file}` ({q.get('name', q['mode'])}); manifest `edgeft.json`; labels (index = class id):
{labels}.

## Inputs
{inputs}

Output `{manifest.outputs[0].name}`: {manifest.outputs[0].dtype}, shape {manifest.outputs[0].shape}
(logits; softmax for scores, argmax for the label).

## Preprocessing
{steps}

## From Python (`pip install edgeft`: the core installs only numpy, onnxruntime, tokenizers, Pillow)
```python
from edgeft.runtime import EdgeModel

model = EdgeModel.load(".")  # checks the format version, the model's sha256 and its inputs
{example}
```
`edgeft verify .` on the target device runs the golden vectors in `{manifest.golden.get('file', 'golden.npz')}`
and fails when the outputs differ beyond the stored tolerance.

## From any onnxruntime binding (C, C++, Java/Kotlin, Objective-C/Swift, C#, JavaScript)
Create a session on `{manifest.model_file}`, preprocess as above, run with the inputs named above,
and read `{manifest.outputs[0].name}`. Everything needed is in `edgeft.json`.
{'''`required_operators.config` lists the operators this model uses: pass it to onnxruntime's
`build.sh --minimal_build --include_ops_by_config required_operators.config` for a reduced-size
ORT Mobile build.''' if manifest.model_file.endswith('.ort') else ''}
"""


def _not_a_package(path: Path) -> str | None:
    """Why the file ``path`` is not a packaged bundle that ``--force`` may replace (None: it is one)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return None if MANIFEST in archive.namelist() else "is a zip without an edgeft bundle"
    except (zipfile.BadZipFile, OSError):
        return "is not an edgeft package zip"


def package_bundle(bundle: str | Path, output: str | Path, fmt: str = "onnx", as_zip: bool = False,
                   force: bool = False, app: bool = False, log: Callable[[str], None] = lambda _: None) -> Path:
    """Write the app-ready folder (or zip) and check it back: it must load and pass its golden check.
    ``app``: the model takes what an app has and does the preprocessing itself (``edgeft.export.app_bundle``)."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}")
    model = EdgeModel.load(bundle)  # refuses a broken bundle before anything is written
    files = [MANIFEST, *dict.fromkeys(model.manifest.files.values())]
    need = 3 * sum((model.path / name).stat().st_size for name in files)  # the copy, an ORT model, the zip
    slot = Output(output, force, "file", _not_a_package) if as_zip else BundleWriter(output, force)
    slot.check()
    check_space(slot.path.parent, need, "the package")
    with slot, write_errors(slot.path, need):
        folder = slot.work / "bundle" if as_zip else slot.result
        folder.mkdir(exist_ok=True)
        for name in files:
            shutil.copyfile(bundle_file(model.path, name), folder / name)
        manifest = read_manifest(folder)
        if app:
            (slot.work / "app").mkdir()
            manifest = make_app(folder, slot.work / "app", log=log)
        if fmt == "ort":
            manifest = _to_ort(folder, manifest, slot.work)
            write_manifest(folder, manifest)
        (folder / "README.md").write_text(_readme(manifest), encoding="utf-8")
        check = EdgeModel.load(folder).check_golden()
        if not check.ok:
            raise UsageError(f"the packaged model fails its golden check (max abs diff {check.max_abs_diff:.3g}, "
                             f"tolerance {check.atol:.3g}); nothing written")
        if as_zip:
            with zipfile.ZipFile(slot.result, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(folder.iterdir()):
                    archive.write(path, path.name)
    return slot.path
