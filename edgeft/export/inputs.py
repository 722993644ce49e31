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

    def feeds(self, items: Sequence[str]) -> Feeds:
        if self.tokenizer is not None:
            return encode_texts(self.tokenizer, items, self.preprocessing)
        return {"pixel_values": normalize(self.crops(items), self.preprocessing)}

    def batches(self, items: Sequence[str], batch_size: int = 8) -> Iterator[Feeds]:
        for start in range(0, len(items), batch_size):
            yield self.feeds(items[start:start + batch_size])
