"""``EdgeModel``: load a bundle, check it, and run it (numpy, onnxruntime, tokenizers, Pillow only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeft import limits
from edgeft.errors import UsageError
from edgeft.manifest import Manifest, ManifestError, checked_golden, read_manifest, sha256_file
from edgeft.runtime.app import app_feeds, custom_ops_library, read_app_golden
from edgeft.runtime.cpu import CpuInfo, cpu_info
from edgeft.runtime.golden import GoldenCheck, judge_golden
from edgeft.runtime.preprocess import (
    ImagePreprocessing,
    TextPreprocessing,
    check_texts,
    crop_image,
    encode_texts,
    load_image,
    load_tokenizer,
    normalize,
    preprocessing_from_dict,
    resized_size,
)
from edgeft.runtime.sessions import open_session, providers_for


class BundleError(ManifestError):
    """A bundle that cannot be run as its manifest says (hash mismatch, missing files, bad graph)."""


class InputError(UsageError):
    """Inputs the bundle's model cannot take (wrong shape or dtype, empty batch)."""


@dataclass(frozen=True)
class Prediction:
    """One input's result: the top label and score (softmax), the top-k, and logits on request."""

    label: str
    score: float
    top_k: list[tuple[str, float]]
    logits: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "score": self.score,
                               "top_k": [{"label": label, "score": score} for label, score in self.top_k]}
        if self.logits is not None:
            out["logits"] = self.logits
        return out


def _unpack_zip(path: Path) -> Path:
    """Extract a packaged zip into a private temporary folder (removed at exit, reaped after a kill)
    once every entry has passed: a plain name (no absolute path, ``..`` or link), a known
    compression, no encryption, and sizes within ``edgeft.limits`` (no zip bombs)."""
    import atexit
    import shutil
    import stat
    import zipfile
    import zlib

    from edgeft.outputs import check_space, scratch_dir

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise BundleError(f"{path} is not a readable zip ({exc})") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.MAX_ZIP_ENTRIES:
            raise BundleError(f"{path} holds {len(entries)} entries; a bundle has a handful (limit {limits.MAX_ZIP_ENTRIES})")
        for info in entries:
            name = info.filename
            if name.startswith(("/", "\\")) or ":" in name or ".." in Path(name).parts or stat.S_ISLNK(info.external_attr >> 16):
                raise BundleError(f"{path} has an unsafe entry {name!r}; refusing to unpack it")
            if info.flag_bits & 0x1:
                raise BundleError(f"{path}: entry {name!r} is encrypted; edgeft unpacks plain zips only")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise BundleError(f"{path}: entry {name!r} uses compression method {info.compress_type}; "
                                  "edgeft unpacks stored or deflated entries only")
            if info.file_size > limits.MAX_ZIP_RATIO * max(info.compress_size, 1) and info.file_size > 2**20:
                raise BundleError(f"{path}: entry {name!r} expands {info.file_size / max(info.compress_size, 1):.0f}-fold "
                                  f"to {info.file_size / 2**20:.0f} MB; refusing a zip bomb")
        total = sum(info.file_size for info in entries)
        if total > limits.MAX_ZIP_BYTES:
            raise BundleError(f"{path} unpacks to {total / 2**30:.1f} GB, over the {limits.MAX_ZIP_BYTES / 2**30:.0f} GB limit")
        folder = scratch_dir("bundle")
        atexit.register(shutil.rmtree, folder, True)
        check_space(folder, total, f"unpacking {path.name}")
        try:
            for info in entries:  # the sizes read back are bounded too: a lying header stops here
                target = folder / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as dst:
                    copied = 0
                    while block := src.read(1 << 20):
                        copied += len(block)
                        if copied > info.file_size:
                            raise zipfile.BadZipFile(f"entry {info.filename!r} is longer than its header says")
                        dst.write(block)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error, ValueError) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise BundleError(f"{path} cannot be unpacked: {str(exc) or type(exc).__name__}") from None
    return folder


def bundle_file(folder: Path, name: str) -> Path:
    """``folder/name`` for a name the manifest gives, refused if it leads out of the bundle."""
    path = folder / name
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise BundleError(f"{name!r} in {folder} leads out of the bundle; refusing to read it")
    if not path.is_file():
        raise BundleError(f"{path} is missing")
    return path


def _providers(requested: Sequence[str] | None) -> list[str]:
    import onnxruntime as ort

    if not requested:
        return providers_for("auto")
    available = ort.get_available_providers()
    missing = [p for p in requested if p not in available]
    if missing:
        raise UsageError(f"execution provider {missing[0]} is not available here; available: {', '.join(available)}")
    return list(requested)


class EdgeModel:
    """A loaded bundle: ``EdgeModel.load("bundle/").logits(feeds)``; ``check_golden()`` for ``edgeft verify``."""

    def __init__(self, path: Path, manifest: Manifest, session: Any) -> None:
        self.path = path
        self.manifest = manifest
        self.session = session
        self.preprocessing: ImagePreprocessing | TextPreprocessing = preprocessing_from_dict(manifest.preprocessing)
        self.tokenizer = None
        if isinstance(self.preprocessing, TextPreprocessing) and not manifest.app:
            tokenizer = path / manifest.files.get("tokenizer", "tokenizer.json")
            if not tokenizer.is_file():
                raise BundleError(f"{path} is a text bundle without its tokenizer ({tokenizer.name} is missing)")
            self.tokenizer = load_tokenizer(bundle_file(path, tokenizer.name), self.preprocessing)

    @property
    def provider(self) -> str:
        return self.session.get_providers()[0]

    @classmethod
    def load(cls, bundle: str | Path, providers: Sequence[str] | None = None, threads: int = 0) -> "EdgeModel":
        """Check the manifest's version, the model's sha256 and its inputs/outputs, then open a session."""

        path = Path(bundle)
        if path.is_file() and path.suffix == ".zip":
            path = _unpack_zip(path)
        manifest = read_manifest(path)
        model_file = bundle_file(path, manifest.model_file)
        if sha256_file(model_file) != manifest.source["model_sha256"]:
            raise BundleError(f"{model_file} does not match the manifest's sha256 (edited or corrupted); re-export it")
        library = custom_ops_library(manifest.app.get("custom_ops"))
        try:
            session = open_session(model_file, threads, _providers(providers), custom_ops_library=library)
        except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
            raise BundleError(f"onnxruntime cannot load {model_file}: {str(exc).splitlines()[0]}") from None
        graph = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
        declared = ([t.name for t in manifest.inputs], [t.name for t in manifest.outputs])
        if graph != declared:
            raise BundleError(f"{model_file} has inputs/outputs {graph}, the manifest declares {declared}")
        width = session.get_outputs()[0].shape[-1] if session.get_outputs()[0].shape else None
        if isinstance(width, int) and width != len(manifest.labels):
            raise BundleError(f"{model_file} outputs {width} classes but the manifest lists {len(manifest.labels)} labels")
        return cls(path, manifest, session)

    def _check_feeds(self, feeds: dict[str, np.ndarray]) -> None:
        for spec in self.manifest.inputs:
            value = feeds.get(spec.name)
            if value is None:
                raise InputError(f"input {spec.name!r} is missing")
            dtype = "string" if value.dtype.kind in "UO" else str(value.dtype)
            if dtype != spec.dtype or value.ndim != len(spec.shape):
                raise InputError(f"input {spec.name!r} must be {spec.dtype} with shape {spec.shape}, "
                                 f"got {value.dtype} {list(value.shape)}")
            for got, want in zip(value.shape, spec.shape, strict=True):
                if isinstance(want, int) and got != want:
                    raise InputError(f"input {spec.name!r} must have shape {spec.shape}, got {list(value.shape)}")
            if value.size == 0:
                raise InputError(f"input {spec.name!r} is empty: {list(value.shape)}" if self.manifest.app else "empty batch")

    def logits(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The model's output for ready-made tensors, checked against the manifest first."""
        self._check_feeds(feeds)
        try:
            return self.session.run(None, feeds)[0]
        except Exception as exc:  # onnxruntime's own exception types: a graph the inputs break
            raise BundleError(f"onnxruntime failed to run {self.manifest.model_file}: "
                              f"{str(exc).splitlines()[0][:300]}") from None

    def _image_crops(self, images: Sequence[Any]) -> np.ndarray:
        from PIL import Image

        crops = []
        for item in images:
            if isinstance(item, np.ndarray):
                if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
                    raise InputError(f"an image array must be uint8 HWC RGB, got {item.dtype} {list(item.shape)}")
                item = Image.fromarray(item)
            elif isinstance(item, (str, Path)):
                item = load_image(item)
            elif isinstance(item, Image.Image):
                item = item.convert("RGB")
            else:
                raise InputError(f"cannot read an image from {type(item).__name__}")
            crops.append(crop_image(item, self.preprocessing))
        return np.stack(crops)

    def preprocess(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        """Images (paths, PIL images, uint8 HWC arrays) or texts to the graph's input tensors.
        Text is padded to the longest item of this batch, truncated at max_length. An app bundle's
        model takes one item at a time, as it is (``edgeft.runtime.app``)."""
        if len(items) == 0:
            raise InputError("no inputs given")
        if self.manifest.app:
            if len(items) != 1:
                raise InputError("an app bundle's model takes one image or text at a time")
            feeds = app_feeds(self.manifest.task, items[0])
            if "pixels" in feeds:
                resized_size(feeds["pixels"].shape[1], feeds["pixels"].shape[0], self.preprocessing)
            return feeds
        if self.tokenizer is not None:
            if not all(isinstance(t, str) for t in items):
                raise InputError("a text bundle takes strings")
            check_texts(items)
            return encode_texts(self.tokenizer, list(items), self.preprocessing)
        return {"pixel_values": normalize(self._image_crops(items), self.preprocessing)}

    def predict(self, items: Sequence[Any], top_k: int = 1, batch_size: int = 32,
                return_logits: bool = False) -> list[Prediction]:
        """Label, score and top-k for each item, run in chunks of ``batch_size``."""
        if isinstance(items, (str, bytes, np.ndarray)) and not (isinstance(items, np.ndarray) and items.ndim == 4):
            items = [items]
        if len(items) == 0:
            raise InputError("no inputs given")
        labels = self.manifest.labels
        k = max(1, min(top_k, len(labels)))
        out: list[Prediction] = []
        if self.manifest.app:
            batch_size = 1
        for start in range(0, len(items), batch_size):
            logits = self.logits(self.preprocess(items[start:start + batch_size])).astype(np.float64)
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            for row, p in zip(logits, probs, strict=True):
                order = np.argsort(-p, kind="stable")[:k]
                top = [(labels[i], float(p[i])) for i in order]
                out.append(Prediction(top[0][0], top[0][1], top, row.tolist() if return_logits else None))
        return out

    def kernel_mismatch(self) -> str | None:
        """Why this machine's kernels cannot reproduce the outputs of the target the bundle was made
        for (an INT8 bundle with 8-bit weights for an exact-arithmetic target, run on an x86 CPU
        whose u8s8 kernels saturate), or None when they can."""
        q = self.manifest.quantization
        target = q.get("target") or {}
        profile = target.get("cpu") or {}
        if q.get("mode") not in ("static", "dynamic") or q.get("reduce_range", True) or not profile:
            return None
        target_cpu = CpuInfo(profile.get("arch", ""), profile.get("model", ""), 1, tuple(profile.get("features", ())))
        host = cpu_info()
        if target_cpu.u8s8_saturates or not host.u8s8_saturates:
            return None
        return (f"made for {target.get('name', 'another target')} (exact int8 arithmetic, 8-bit weights); this "
                f"{host.arch} CPU without VNNI saturates u8s8, so its kernels differ from the target's")

    def check_golden(self) -> GoldenCheck:
        """Run the bundle's golden inputs here and compare with the outputs stored at export."""
        golden = self.manifest.golden
        if not golden:
            raise BundleError(f"{self.path} has no golden vectors (its manifest has no golden entry)")
        bundle_file(self.path, golden["file"])  # not a name that leads out of the bundle
        inputs, expected = read_golden(checked_golden(self.path, self.manifest), self.manifest)
        if self.manifest.app:  # what an app passes, one at a time; the reference is the Python runtime's
            logits = np.concatenate([self.logits(self.preprocess([item])) for item in inputs])
            return judge_golden(logits, expected, golden["atol"], golden["top1"], self.provider)
        if isinstance(self.preprocessing, ImagePreprocessing):
            feeds = {"pixel_values": normalize(inputs, self.preprocessing)}
        else:  # re-tokenized here: the check covers the bundled tokenizer too
            feeds = encode_texts(self.tokenizer, [str(t) for t in inputs], self.preprocessing)
        logits = self.logits(feeds)
        return judge_golden(logits, expected, golden["atol"], golden["top1"], self.provider)


def read_golden(file: Path, manifest: Manifest) -> tuple[Any, np.ndarray]:
    """The golden inputs (uint8 crops or texts; for an app bundle, a list of what an app passes)
    and logits, refused unless they are exactly what export writes: a plain npz (no pickles)
    within ``limits.MAX_GOLDEN_BYTES``, of the shapes the manifest implies."""
    import zipfile
    import zlib

    count, classes = manifest.golden["count"], len(manifest.labels)
    key = "app" if manifest.app else "crops" if manifest.task == "image-classification" else "texts"
    try:
        with zipfile.ZipFile(file) as archive:
            if sum(i.file_size for i in archive.infolist()) > limits.MAX_GOLDEN_BYTES:
                raise BundleError(f"{file} is larger than {limits.MAX_GOLDEN_BYTES // 2**20} MB unpacked")
        with np.load(file, allow_pickle=False) as data:
            logits = data["logits"]
            inputs = read_app_golden(data, count, manifest.task) if key == "app" else data[key]
    except BundleError:
        raise
    except UsageError as exc:  # an app golden input that is not what an app passes
        raise BundleError(f"{file}: {exc}") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, RuntimeError,
            NotImplementedError) as exc:
        raise BundleError(f"{file} is not golden vectors edgeft can read ({str(exc).splitlines()[0][:200]})") from None
    size = manifest.preprocessing.get("size")
    want_inputs = (count, size, size, 3) if key == "crops" else (count,)
    if key != "app" and (inputs.shape != want_inputs or (key == "crops" and inputs.dtype != np.uint8) or (
            key == "texts" and inputs.dtype.kind != "U")):
        raise BundleError(f"{file}: {key} must be {'uint8 ' if key == 'crops' else 'strings '}of shape "
                          f"{list(want_inputs)}, got {inputs.dtype} {list(inputs.shape)}")
    if logits.shape != (count, classes) or logits.dtype.kind != "f":
        raise BundleError(f"{file}: logits must be floats of shape [{count}, {classes}], got {logits.dtype} "
                          f"{list(logits.shape)}")
    return inputs, logits
