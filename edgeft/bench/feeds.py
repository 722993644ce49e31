"""Input tensors for timing, made on the host and shipped to the runner as one ``.npz``:
synthetic ones shaped by the manifest (realistic token ids, images of the bundle's size), or
real samples (``--inputs``) preprocessed as the runtime would.

Keys are ``<point>/<set>/<input name>``: ``b8_s128/0/input_ids``. A point with several sets
(real samples) cycles through them, so timing covers more than one input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeft.manifest import TOKENIZER, Manifest
from edgeft.runtime.preprocess import (
    ImagePreprocessing,
    TextPreprocessing,
    crop_image,
    encode_texts,
    load_image,
    load_tokenizer,
    normalize,
)

MAX_SETS = 16  # real-input batches per point
APP_PHOTO = (960, 1280)  # height, width of the synthetic photo an app bundle is timed on


def point_key(batch: int, seq: int | None) -> str:
    return f"b{batch}" if seq is None else f"b{batch}_s{seq}"


def _special_ids(tokenizer_file: Path) -> tuple[int, int, int]:
    """Vocabulary size and the [CLS]/[SEP] ids (or their closest stand-ins)."""
    vocab = json.loads(tokenizer_file.read_text(encoding="utf-8")).get("model", {}).get("vocab", {})
    size = len(vocab) if isinstance(vocab, (dict, list)) else 0
    lookup = vocab if isinstance(vocab, dict) else {}
    return size or 30522, lookup.get("[CLS]", 101), lookup.get("[SEP]", 102)


def synthetic_text(manifest: Manifest, bundle: Path, batch: int, seq: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``batch`` rows of ``seq`` tokens: [CLS], ids drawn from the ordinary vocabulary, [SEP]."""
    vocab, cls_id, sep_id = _special_ids(bundle / TOKENIZER)
    ids = rng.integers(min(1000, vocab - 1), vocab, size=(batch, seq), dtype=np.int64)
    ids[:, 0] = cls_id
    ids[:, -1] = sep_id
    arrays = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {t.name: arrays[t.name] for t in manifest.inputs}


def synthetic_image(manifest: Manifest, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    spec = ImagePreprocessing.from_dict(manifest.preprocessing)
    crops = rng.integers(0, 256, size=(batch, spec.size, spec.size, 3), dtype=np.uint8)
    return {manifest.inputs[0].name: normalize(crops, spec)}


def app_sets(items: Sequence[str], rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """An app bundle's feeds: the photos as decoded RGB (no preprocessing: the graph does it), or
    one synthetic photo of ``APP_PHOTO`` size."""
    if items:
        return [{"pixels": np.asarray(load_image(path))} for path in items[:MAX_SETS]]
    height, width = APP_PHOTO
    return [{"pixels": rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)}]


def real_sets(manifest: Manifest, bundle: Path, items: Sequence[str], batch: int) -> list[dict[str, np.ndarray]]:
    """Consecutive batches of the given samples (wrapping around), preprocessed as the runtime does:
    text padded to the longest item of each batch."""
    sets = []
    count = min(MAX_SETS, max(1, len(items) // batch))
    for i in range(count):
        chunk = [items[(i * batch + j) % len(items)] for j in range(batch)]
        if manifest.task == "text-classification":
            spec = TextPreprocessing.from_dict(manifest.preprocessing)
            sets.append(encode_texts(load_tokenizer(bundle / TOKENIZER, spec), chunk, spec))
        else:
            spec = ImagePreprocessing.from_dict(manifest.preprocessing)
            crops = np.stack([crop_image(load_image(path), spec) for path in chunk])
            sets.append({manifest.inputs[0].name: normalize(crops, spec)})
    return sets


def write_feeds(path: Path, points: dict[str, list[dict[str, np.ndarray]]]) -> None:
    arrays = {f"{key}/{i}/{name}": value for key, sets in points.items()
              for i, feeds in enumerate(sets) for name, value in feeds.items()}
    np.savez(path, **arrays)
