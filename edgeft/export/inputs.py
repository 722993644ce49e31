"""Samples (image paths or texts) to the numpy arrays the exported graph takes, in batches.

The same preprocessing code as training and the runtime: ``edgeft.runtime.preprocess``.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from edgeft.runtime.preprocess import (
    ImagePreprocessing,
    TextPreprocessing,
    configure_tokenizer,
    crop_image,
    encode_texts,
    load_image,
    normalize,
)

Feeds = dict[str, np.ndarray]


class InputMaker:
    """Makes graph feeds from samples as the manifest's preprocessing says."""

    def __init__(self, preprocessing: ImagePreprocessing | TextPreprocessing, tokenizer_json: str | None = None) -> None:
        self.preprocessing = preprocessing
        self.tokenizer = None
        if isinstance(preprocessing, TextPreprocessing):
            from tokenizers import Tokenizer

            self.tokenizer = configure_tokenizer(Tokenizer.from_str(tokenizer_json or ""), preprocessing)

    def crops(self, paths: Sequence[str]) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 crops of image files (before normalisation)."""
        return np.stack([crop_image(load_image(p), self.preprocessing) for p in paths])

    def feeds(self, items: Sequence[str], pad_to: int | None = None) -> Feeds:
        if self.tokenizer is not None:
            return encode_texts(self.tokenizer, items, self.preprocessing, pad_to=pad_to)
        return {"pixel_values": normalize(self.crops(items), self.preprocessing)}

    def batches(self, items: Sequence[str], batch_size: int = 8, same_shape: bool = False) -> Iterator[Feeds]:
        """Feeds of ``batch_size`` items. ``same_shape`` gives every batch one shape (calibrators that
        stack activations across batches, entropy and percentile, need it): text is padded to the
        longest item of all, and a set that does not fill equal batches goes one item at a time."""
        pad_to = None
        if same_shape and self.tokenizer is not None and items:
            pad_to = max(len(e.ids) for e in self.tokenizer.encode_batch(list(items)))
        if same_shape and len(items) % batch_size:
            batch_size = 1
        for start in range(0, len(items), batch_size):
            yield self.feeds(items[start:start + batch_size], pad_to)
