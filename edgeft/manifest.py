"""The bundle manifest ``edgeft.json``: a dataclass with read, write and validation (stdlib only).

The runtime reads it to load a bundle; export writes it. Its schema is in ``../shared/DESIGN.md``
and in ``Manifest`` below; ``format_version`` changes whenever a reader of an older version
would misread a newer file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeft.errors import UsageError

FORMAT_VERSION = 1
MANIFEST = "edgeft.json"
MODEL = "model.onnx"
TOKENIZER = "tokenizer.json"
GOLDEN = "golden.npz"
TASKS = ("image-classification", "text-classification")
QUANTIZATION_MODES = ("none", "dynamic", "static", "fp16")


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
        return cls(str(data["name"]), str(data["dtype"]), list(data["shape"]))


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
    - ``golden``: file, count, tolerance (max abs diff) for ``edgeft verify``
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
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        problems = []
        if self.task not in TASKS:
            problems.append(f"task {self.task!r} is not one of {', '.join(TASKS)}")
        if not self.labels or not all(isinstance(label, str) for label in self.labels):
            problems.append("labels must be a non-empty list of strings")
        if not self.inputs or not self.outputs:
            problems.append("inputs and outputs must not be empty")
        if self.quantization.get("mode") not in QUANTIZATION_MODES:
            problems.append(f"quantization mode must be one of {', '.join(QUANTIZATION_MODES)}")
        if self.preprocessing.get("kind") != ("image" if self.task == "image-classification" else "text"):
            problems.append("preprocessing kind does not fit the task")
        if not isinstance(self.source.get("model_sha256"), str):
            problems.append("source.model_sha256 is missing")
        if problems:
            raise ManifestError("invalid manifest: " + "; ".join(problems))

    @property
    def model_file(self) -> str:
        return self.files.get("model", MODEL)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {"format_version": data.pop("format_version"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestError(
                f"bundle format_version {version!r} is not one this edgeft reads ({FORMAT_VERSION}); "
                "re-export it, or use a matching edgeft"
            )
        try:
            return cls(
                task=data["task"], labels=list(data["labels"]),
                inputs=[TensorSpec.from_dict(t) for t in data["inputs"]],
                outputs=[TensorSpec.from_dict(t) for t in data["outputs"]],
                preprocessing=dict(data["preprocessing"]), quantization=dict(data["quantization"]),
                verification=dict(data["verification"]), source=dict(data["source"]),
                golden=dict(data.get("golden") or {}), files=dict(data.get("files") or {"model": MODEL}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"invalid manifest: missing or malformed field {exc}") from None


def read_manifest(bundle: str | Path) -> Manifest:
    """Read and validate ``BUNDLE/edgeft.json``."""
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{bundle} is not an edgeft bundle (no {MANIFEST})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
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
