"""Golden vectors: a few inputs and the exported model's outputs, stored in the bundle so a
target can check itself later (``edgeft verify``, or plain onnxruntime and the manifest).

``golden.npz`` holds ``logits`` and, for images, ``crops`` (uint8 NHWC after resize and crop;
normalise them as the manifest's preprocessing says), for text ``texts`` and the token arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeft.export.inputs import InputMaker
from edgeft.export.verify import onnx_logits
from edgeft.manifest import GOLDEN, sha256_file

COUNT = 4
RELATIVE_TOLERANCE = {"none": 1e-4, "fp16": 1e-2, "dynamic": 5e-2, "static": 5e-2}


def pick(logits: np.ndarray, count: int = COUNT) -> list[int]:
    """The samples whose top-1 wins by the widest margin: a check on another machine should not
    hinge on a near tie."""
    top2 = np.sort(logits, axis=-1)[:, -2:]  # classification has at least 2 classes
    margin = top2[:, 1] - top2[:, 0]
    return sorted(np.argsort(-margin, kind="stable")[:count].tolist())


def write_golden(bundle: Path, model_file: Path, maker: InputMaker, items: Sequence[str], mode: str,
                 numerics: str = "host") -> dict[str, Any]:
    """Run the bundle's model on ``items`` with the target's ``numerics`` and store inputs and
    outputs; the manifest's entry."""
    arrays: dict[str, np.ndarray] = {}
    if maker.tokenizer is None:
        arrays["crops"] = maker.crops(items)
    else:
        arrays["texts"] = np.array(list(items))
    feeds = maker.feeds(items)
    if maker.tokenizer is not None:
        arrays.update(feeds)
    logits = onnx_logits(model_file, [feeds], numerics)
    arrays["logits"] = logits.astype(np.float32)
    np.savez_compressed(bundle / GOLDEN, **arrays)
    scale = max(1.0, float(np.abs(logits).max()))
    return {
        "file": GOLDEN, "sha256": sha256_file(bundle / GOLDEN), "count": len(items), "output": "logits",
        "inputs": ["crops"] if maker.tokenizer is None else ["texts", *feeds],
        "atol": RELATIVE_TOLERANCE[mode] * scale, "top1": logits.argmax(-1).tolist(), "numerics": numerics,
    }
