"""Datasets as torch tensors: images decoded and cropped per item, texts tokenized up front."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from edgeft.data import Dataset
from edgeft.runtime.preprocess import (
    ImagePreprocessing,
    TextPreprocessing,
    crop_image,
    encode_texts,
    load_image,
    normalize,
)


class ImageItems(TorchDataset):
    """``({"pixel_values": (3, H, W)}, label)``; with ``augment``: random scale, crop and flip,
    drawn from ``(seed, epoch, index)`` so a run is reproducible."""

    def __init__(self, data: Dataset, spec: ImagePreprocessing, augment: bool = False, seed: int = 0) -> None:
        self.data, self.spec, self.augment, self.seed = data, spec, augment, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.data)

    def _augmented_crop(self, index: int) -> np.ndarray:
        from PIL import Image

        rng = np.random.default_rng((self.seed, self.epoch, index))
        image = load_image(self.data.items[index])
        w, h = image.size
        side = int(rng.integers(self.spec.size, max(self.spec.size, round(self.spec.resize * 1.15)) + 1))
        scale = side / min(w, h)
        image = image.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.Resampling.BILINEAR)
        left = int(rng.integers(0, image.size[0] - self.spec.size + 1))
        top = int(rng.integers(0, image.size[1] - self.spec.size + 1))
        crop = np.asarray(image.crop((left, top, left + self.spec.size, top + self.spec.size)), dtype=np.uint8)
        return crop[:, ::-1] if rng.random() < 0.5 else crop

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        if self.augment:
            crop = self._augmented_crop(index)
        else:
            crop = crop_image(load_image(self.data.items[index]), self.spec)
        pixels = normalize(np.ascontiguousarray(crop)[None], self.spec)[0]
        return {"pixel_values": torch.from_numpy(pixels)}, self.data.labels[index]


class TextItems(TorchDataset):
    """Token arrays for every text, padded to the longest text in the dataset (≤ max_length)."""

    def __init__(self, data: Dataset, spec: TextPreprocessing, tokenizer) -> None:
        self.data = data
        arrays = encode_texts(tokenizer, data.items, spec)
        self.arrays = {k: torch.from_numpy(v) for k, v in arrays.items()}

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        return {k: v[index] for k, v in self.arrays.items()}, self.data.labels[index]
