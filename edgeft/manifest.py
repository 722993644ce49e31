"""The bundle manifest ``edgeft.json``: a dataclass with read, write and validation (stdlib only).

The runtime reads it to load a bundle; export writes it. The format is described in
``docs/bundle-format.md`` and checked by ``Manifest`` below; ``format_version`` changes whenever a
reader of an older version would misread a newer file.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeft import limits
from edgeft.errors import UsageError

FORMAT_VERSION = 1
APP_FORMAT_VERSION = 2  # an app bundle (``--app``): a reader of version 1 would feed its model wrong inputs
MANIFEST = "edgeft.json"
MODEL = "model.onnx"
TOKENIZER = "tokenizer.json"
GOLDEN = "golden.npz"
TASKS = ("image-classification", "text-classification")
QUANTIZATION_MODES = ("none", "dynamic", "static", "fp16")


DTYPES = ("float32", "float16", "int64", "int32", "uint8", "int8", "string")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_IMAGE_KEYS = {"kind", "size", "resize", "interpolation", "mean", "std", "layout", "channel_order"}
_TEXT_KEYS = {"kind", "max_length", "padding", "pad_token", "input_names", "lowercase"}
_TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_APP_OUTPUTS = ["logits", "probabilities", "top_k_scores", "top_k_indices"]
_APP_KEYS = {"input", "steps", "top_k", "custom_ops", "base_model_sha256", "parity", "resize", "golden_sizes"}


def modality_of(task: str) -> str:
    """The one mapping from a task to the kind of input it takes: ``image`` or ``text``."""
    return "image" if task == "image-classification" else "text"


class ManifestError(UsageError):
    """A bundle whose manifest is missing, unreadable, of an unknown version or inconsistent."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: ``shape`` uses ``batch`` and ``sequence`` for dynamic dims."""

    name: str
    dtype: str
    shape: list[int | str]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TensorSpec":
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or data.get("dtype") not in DTYPES:
            raise ManifestError(f"invalid manifest: a tensor needs a name and a dtype of {', '.join(DTYPES)}: {data!r:.80}")
        shape = data.get("shape")
        if not isinstance(shape, list) or not all(_int(d, 1, 2**31) or isinstance(d, str) for d in shape):
            raise ManifestError(f"invalid manifest: tensor {data['name']!r} has a malformed shape {shape!r:.80}")
        return cls(data["name"], data["dtype"], list(shape))


@dataclass(frozen=True)
class Manifest:
    """What an app needs to run a bundle's model without edgeft, and where it came from.

    - ``preprocessing``: ``edgeft.runtime.preprocess`` spec as a dict (``kind`` image or text)
    - ``quantization``: ``mode`` (none | dynamic | static | fp16), weight/activation types,
      per_channel, reduce_range, calibration method and sample count, ``nodes_excluded``,
      ``recipe`` (the one kept), ``attempts`` (each candidate built: its figures, ``within_budget``,
      ``chosen``) and ``selection`` (strategy: fallbacks | fastest, the repair ladder's probes)
    - ``verification``: parity with PyTorch on held-out samples (max abs diff, top-1 agreement)
      and accuracy of the float and exported models on the validation split where labelled
    - ``source``: backbone, run config, edgeft version, opset, ``model_sha256``
    - ``golden``: file, its sha256, count, tolerance (max abs diff) for ``edgeft verify``
    - ``app``: present in app bundles only (``edgeft package --app``): the model takes ``pixels``
      (uint8 RGB HWC, any size) or ``text`` and outputs logits, probabilities and the top-k; the
      steps inside the graph and its measured parity with the Python runtime
    """

    task: str
    labels: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    preprocessing: dict[str, Any]
    quantization: dict[str, Any]
    verification: dict[str, Any]
    source: dict[str, Any]
    golden: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=lambda: {"model": MODEL})
    app: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ManifestError("invalid manifest: " + "; ".join(problems))

    @property
    def modality(self) -> str:
        """``image`` or ``text``: the kind of input the task takes."""
        return modality_of(self.task)

    @property
    def model_file(self) -> str:
        return self.files.get("model", MODEL)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("format_version")
        if not data["app"]:
            data.pop("app")
        return {"format_version": APP_FORMAT_VERSION if self.app else FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        version = data.get("format_version")
        if version not in (FORMAT_VERSION, APP_FORMAT_VERSION) or isinstance(version, bool):
            raise ManifestError(
                f"bundle format_version {version!r} is not one this edgeft reads ({FORMAT_VERSION}, or "
                f"{APP_FORMAT_VERSION} for app bundles); re-export it, or use a matching edgeft"
            )
        if (version == APP_FORMAT_VERSION) != bool(data.get("app")):
            raise ManifestError(f"invalid manifest: format_version {APP_FORMAT_VERSION} goes with an app entry, and only it")
        missing = [k for k in ("task", "labels", "inputs", "outputs", "preprocessing", "quantization",
                               "verification", "source") if k not in data]
        if missing:
            raise ManifestError(f"invalid manifest: missing field {', '.join(missing)}")
        kinds = {"labels": list, "inputs": list, "outputs": list, "preprocessing": dict, "quantization": dict,
                 "verification": dict, "source": dict, "golden": dict, "files": dict, "app": dict}
        wrong = [k for k, kind in kinds.items() if k in data and not isinstance(data[k], kind)]
        if wrong:
            raise ManifestError(f"invalid manifest: {wrong[0]} must be a JSON {'list' if kinds[wrong[0]] is list else 'object'}")
        return cls(
            task=data["task"], labels=list(data["labels"]),
            inputs=[TensorSpec.from_dict(t) for t in data["inputs"]],
            outputs=[TensorSpec.from_dict(t) for t in data["outputs"]],
            preprocessing=dict(data["preprocessing"]), quantization=dict(data["quantization"]),
            verification=dict(data["verification"]), source=dict(data["source"]),
            golden=dict(data.get("golden") or {}), files=dict(data.get("files") or {"model": MODEL}),
            app=dict(data.get("app") or {}),
        )


def read_manifest(bundle: str | Path) -> Manifest:
    """Read and validate ``BUNDLE/edgeft.json``."""
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{bundle} is not an edgeft bundle (no {MANIFEST})")
    if path.stat().st_size > limits.MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path} is larger than {limits.MAX_MANIFEST_BYTES // 2**20} MB; not a manifest edgeft wrote")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path} is not a JSON object")
    return Manifest.from_dict(data)


def write_manifest(bundle: str | Path, manifest: Manifest) -> None:
    (Path(bundle) / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checked_golden(folder: str | Path, manifest: Manifest) -> Path:
    """The bundle's golden file, refused unless its sha256 is the one recorded when it was written
    (any changed byte: one line, before anything runs on it)."""
    path = Path(folder) / manifest.golden["file"]
    if not path.is_file():
        raise ManifestError(f"{folder} has no golden vectors ({manifest.golden['file']} is missing)")
    if sha256_file(path) != manifest.golden["sha256"]:
        raise ManifestError(f"{path} does not match the manifest's golden.sha256 (edited or corrupted); re-export it")
    return path


# -- validation: every field a reader relies on, one message per problem --------------------------
def _int(value: Any, lo: int, hi: int) -> bool:
    return type(value) is int and lo <= value <= hi


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_plain_name(name: Any) -> bool:
    """A file name inside the bundle: no folders, no ``..``, not absolute, not hidden."""
    return (isinstance(name, str) and 0 < len(name) <= 255 and "/" not in name and "\\" not in name
            and "\0" not in name and not name.startswith(".") and ":" not in name)


def _image_problems(p: dict[str, Any], inputs: list[TensorSpec], app: bool) -> list[str]:
    problems = []
    size, resize = p.get("size"), p.get("resize")
    if not _int(size, 1, limits.MAX_CROP):
        problems.append(f"preprocessing.size must be a whole number from 1 to {limits.MAX_CROP}, got {size!r:.40}")
    elif not _int(resize, size, limits.MAX_RESIZE):
        problems.append(f"preprocessing.resize must be a whole number from size ({size}) to {limits.MAX_RESIZE}, "
                        f"got {resize!r:.40}")
    if p.get("interpolation", "bicubic") not in ("bicubic", "bilinear", "nearest"):
        problems.append(f"preprocessing.interpolation must be bicubic, bilinear or nearest, got {p['interpolation']!r:.40}")
    for key, positive in (("mean", False), ("std", True)):
        value = p.get(key)
        if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(_number(v) and (v > 0 or not positive) for v in value)):
            problems.append(f"preprocessing.{key} must be 3 {'positive ' if positive else ''}numbers (RGB, 0..255 scale), "
                            f"got {value!r:.60}")
    if p.get("layout", "NCHW") != "NCHW" or p.get("channel_order", "RGB") != "RGB":
        problems.append("preprocessing.layout must be NCHW and channel_order RGB")
    if not app and (len(inputs) != 1 or (isinstance(size, int) and inputs[0].shape[1:] not in ([3, size, size], [3, "height", "width"]))):
        problems.append(f"an image bundle has one input of shape [batch, 3, size, size] (size {size!r:.20})")
    return problems


def _text_problems(p: dict[str, Any], inputs: list[TensorSpec], source: dict[str, Any], app: bool) -> list[str]:
    problems = []
    positions = source.get("max_positions")
    top = min(limits.MAX_SEQUENCE, positions) if _int(positions, 1, 2**31) else limits.MAX_SEQUENCE
    if not _int(p.get("max_length"), 1, top):
        problems.append(f"preprocessing.max_length must be a whole number from 1 to {top} "
                        f"({'the model' + chr(39) + 's positions' if top != limits.MAX_SEQUENCE else 'the limit'}), "
                        f"got {p.get('max_length')!r:.40}")
    if p.get("padding", "longest") != "longest":
        problems.append("preprocessing.padding must be longest")
    if not isinstance(p.get("pad_token"), str) or not p["pad_token"]:
        problems.append("preprocessing.pad_token must be a non-empty string")
    if not isinstance(p.get("lowercase", True), bool):
        problems.append("preprocessing.lowercase must be true or false")
    names = p.get("input_names")
    if not (isinstance(names, (list, tuple)) and names and all(n in _TEXT_INPUTS for n in names)
            and len(set(names)) == len(names)):
        problems.append(f"preprocessing.input_names must list some of {', '.join(_TEXT_INPUTS)}, got {names!r:.80}")
    elif not app and list(names) != [t.name for t in inputs]:
        problems.append(f"preprocessing.input_names {list(names)} are not the model's inputs {[t.name for t in inputs]}")
    return problems


def _golden_problems(golden: dict[str, Any], labels: int) -> list[str]:
    if not golden:
        return []
    problems = []
    if not is_plain_name(golden.get("file")):
        problems.append(f"golden.file must be a file name inside the bundle, got {golden.get('file')!r:.80}")
    atol = golden.get("atol")
    if not (_number(atol) and atol >= 0):
        problems.append(f"golden.atol must be a number of at least 0, got {atol!r:.40}")
    if not isinstance(golden.get("sha256"), str) or not _SHA256.fullmatch(golden["sha256"]):
        problems.append("golden.sha256 must be the golden file's sha256 in hex")
    count, top1 = golden.get("count"), golden.get("top1")
    if not _int(count, 1, 100_000):
        problems.append(f"golden.count must be a whole number of at least 1, got {count!r:.40}")
    elif not (isinstance(top1, list) and len(top1) == count and all(_int(t, 0, labels - 1) for t in top1)):
        problems.append(f"golden.top1 must hold {count} class indices below {labels}")
    return problems


def _app_problems(m: Manifest) -> list[str]:
    """An app bundle's model: one ``pixels`` or ``text`` input, the four app outputs."""
    app, problems = m.app, []
    unknown = sorted(set(app) - _APP_KEYS)
    if unknown:
        problems.append(f"app has unknown field {unknown[0]!r:.40} (a newer edgeft's bundle?)")
    image = m.task == "image-classification"
    want = (TensorSpec("pixels", "uint8", ["height", "width", 3]) if image else TensorSpec("text", "string", [1]))
    if m.inputs != [want] or app.get("input") != want.name:
        problems.append(f"an app bundle for {m.task} has one input {want.name!r} ({want.dtype}, shape {want.shape})")
    if [t.name for t in m.outputs] != _APP_OUTPUTS:
        problems.append(f"an app bundle's outputs are {', '.join(_APP_OUTPUTS)}")
    if not _int(app.get("top_k"), 1, max(1, len(m.labels))):
        problems.append(f"app.top_k must be a whole number from 1 to the number of labels, got {app.get('top_k')!r:.40}")
    if app.get("custom_ops") not in (None, "onnxruntime-extensions"):
        problems.append(f"app.custom_ops must be null or onnxruntime-extensions, got {app.get('custom_ops')!r:.60}")
    return problems


def _problems(m: Manifest) -> list[str]:
    """Everything wrong with a manifest, each as one clause naming its field."""
    problems = []
    if m.task not in TASKS:
        problems.append(f"task {m.task!r:.40} is not one of {', '.join(TASKS)}")
    if not m.labels or not all(isinstance(label, str) for label in m.labels) or len(m.labels) > limits.MAX_LABELS:
        problems.append(f"labels must be a non-empty list of at most {limits.MAX_LABELS} strings")
    if m.app:
        problems += _app_problems(m)
    elif not m.inputs or len(m.outputs) != 1:
        problems.append("inputs must not be empty and there must be one output")
    elif isinstance(m.outputs[0].shape[-1:] and m.outputs[0].shape[-1], int) and m.outputs[0].shape[-1] != len(m.labels):
        problems.append(f"the output has {m.outputs[0].shape[-1]} classes but labels lists {len(m.labels)}")
    if m.quantization.get("mode") not in QUANTIZATION_MODES:
        problems.append(f"quantization mode must be one of {', '.join(QUANTIZATION_MODES)}")
    if not isinstance(m.source.get("model_sha256"), str) or not _SHA256.fullmatch(m.source["model_sha256"]):
        problems.append("source.model_sha256 must be the model's sha256 in hex")
    if not isinstance(m.files, dict) or not is_plain_name(m.files.get("model")):
        problems.append(f"files.model must be a file name inside the bundle, got {m.files.get('model')!r:.80}")
    bad = [f"files.{k}" for k, v in m.files.items() if not is_plain_name(v)]
    if bad:
        problems.append(f"{bad[0]} must be a file name inside the bundle, got {m.files[bad[0][6:]]!r:.80}")
    pre, kind = m.preprocessing, modality_of(m.task)
    if pre.get("kind") != kind:
        problems.append(f"preprocessing.kind must be {kind} for {m.task}")
    else:
        unknown = sorted(set(pre) - (_IMAGE_KEYS if kind == "image" else _TEXT_KEYS))
        if unknown:
            problems.append(f"preprocessing has unknown field {unknown[0]!r:.40} (a newer edgeft's bundle?)")
        problems += (_image_problems(pre, m.inputs, bool(m.app)) if kind == "image"
                     else _text_problems(pre, m.inputs, m.source, bool(m.app)))
    problems += _golden_problems(m.golden, len(m.labels) if isinstance(m.labels, list) else 0)
    return problems
