"""A content-addressed cache for the doctor's slow measurements: a candidate's quantized graph,
its logits and metrics, keyed by the float graph, the recipe and the data that produced them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

CACHE_ENV = "EDGEFT_CACHE"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "edgeft") / "doctor"


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def arrays_digest(batches: Iterable[dict[str, np.ndarray]] | None) -> str:
    h = hashlib.sha256()
    for batch in batches or []:
        for name in sorted(batch):
            h.update(name.encode())
            h.update(np.ascontiguousarray(batch[name]).tobytes())
    return h.hexdigest()


class Cache:
    """``get``/``put`` entries of a model file (optional), a logits array (optional) and a JSON dict."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_root()

    def get(self, key: str) -> tuple[Path | None, np.ndarray | None, dict[str, Any]] | None:
        folder = self.root / key
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        model = folder / "model.onnx"
        logits = np.load(folder / "logits.npy") if (folder / "logits.npy").is_file() else None
        return (model if model.is_file() else None), logits, meta

    def put(self, key: str, meta: dict[str, Any], model: Path | None = None, logits: np.ndarray | None = None) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.root))
            if model is not None:
                shutil.copyfile(model, tmp / "model.onnx")
            if logits is not None:
                np.save(tmp / "logits.npy", logits)
            (tmp / "meta.json").write_text(json.dumps(meta))
            target = self.root / key
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
        except OSError:
            pass  # a cache that cannot be written only costs time
