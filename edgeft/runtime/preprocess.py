"""Pre-processing that training and serving share, in numpy and Pillow only.

One implementation for both sides is what keeps train/serve parity: the spec dataclasses
below are copied into a run's config and a bundle's manifest, and these functions apply them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgeft import limits
from edgeft.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


@dataclass(frozen=True)
class ImagePreprocessing:
    """Resize the shorter side to ``resize``, center-crop ``size``, then ``(x - mean) / std``.

    ``mean`` and ``std`` are on the 0..255 scale, per RGB channel; the output is NCHW float32.
    """

    size: int = 224
    resize: int = 256
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    layout: str = "NCHW"
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if self.size <= 0 or self.resize < self.size:
            raise ValueError(f"need 0 < size <= resize, got size={self.size} resize={self.resize}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}")

    def with_size(self, size: int) -> "ImagePreprocessing":
        """The same recipe at another crop size, keeping the resize/crop ratio."""
        return replace(self, size=size, resize=max(size, round(size * self.resize / self.size)))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "image", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImagePreprocessing":
        d = {k: v for k, v in data.items() if k != "kind"}
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        return cls(**d)


@dataclass(frozen=True)
class TextPreprocessing:
    """Tokenize with the bundled tokenizer.json, truncate at ``max_length``, pad to the longest."""

    max_length: int = 128
    padding: str = "longest"
    pad_token: str = "[PAD]"
    input_names: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    lowercase: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "text", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TextPreprocessing":
        d = {k: v for k, v in data.items() if k != "kind"}
        d["input_names"] = tuple(d["input_names"])
        return cls(**d)


def preprocessing_from_dict(data: dict[str, Any]) -> ImagePreprocessing | TextPreprocessing:
    """Read either spec back from its ``to_dict`` form."""
    kind = data.get("kind")
    if kind == "image":
        return ImagePreprocessing.from_dict(data)
    if kind == "text":
        return TextPreprocessing.from_dict(data)
    raise DataError(f"unknown preprocessing kind {kind!r}")


def decode_utf8(raw: bytes, where: str) -> str:
    """Bytes to text, or one clear error naming ``where`` (an argument, stdin, a file)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None


def check_texts(texts: Sequence[str]) -> None:
    """Refuse texts that no tokenizer should see: not UTF-8 (lone surrogates) or beyond the size limit."""
    for i, text in enumerate(texts, 1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DataError(f"text {i} is not valid UTF-8 (at character {exc.start})") from None
        if len(text) > limits.MAX_TEXT_CHARS:
            raise DataError(f"text {i} has {len(text):,} characters, over the limit of {limits.MAX_TEXT_CHARS:,}")


_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def _to_rgb(im: "Image.Image") -> "Image.Image":  # noqa: F821
    """RGB at 8 bits per channel; 16-bit and 32-bit grey images are scaled, not clipped to white."""
    from PIL import Image

    if im.mode in _SIXTEEN_BIT or im.mode in ("I", "F"):
        values = np.asarray(im, dtype=np.float64)
        top = values.max(initial=0)
        if im.mode in _SIXTEEN_BIT or (im.mode == "I" and top > 255):
            values = values / 257.0  # 0..65535 onto 0..255
        elif im.mode == "F" and top <= 1.0:
            values = values * 255.0  # 0..1 floats
        im = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    return im.convert("RGB")


def load_image(path: str | Path) -> "Image.Image":  # noqa: F821 - Pillow imported lazily
    """Open an image file as 8-bit RGB with its EXIF orientation applied; images over
    ``limits.MAX_IMAGE_PIXELS`` are refused before they are decoded."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = limits.MAX_IMAGE_PIXELS
    try:
        with Image.open(path) as im:
            if im.width * im.height > limits.MAX_IMAGE_PIXELS:
                raise DataError(f"image {path} is {im.width}x{im.height}, over the limit of "
                                f"{limits.MAX_IMAGE_PIXELS // 2**20}M pixels")
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except Image.DecompressionBombError:
        raise DataError(f"image {path} is over the limit of {limits.MAX_IMAGE_PIXELS // 2**20}M pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from None


def resized_size(w: int, h: int, spec: ImagePreprocessing) -> tuple[int, int]:
    """The size an image is resized to before the center crop (the app model's graph computes the
    same), refused beyond ``limits.MAX_RESIZED_PIXELS``: an extreme aspect ratio."""
    scale = spec.resize / min(w, h)
    nw, nh = max(spec.size, round(w * scale)), max(spec.size, round(h * scale))
    if nw * nh > limits.MAX_RESIZED_PIXELS:
        raise DataError(f"a {w}x{h} image resized to {nw}x{nh} is over the limit of "
                        f"{limits.MAX_RESIZED_PIXELS // 2**20}M pixels (its aspect ratio is too extreme)")
    return nw, nh


def crop_image(image: "Image.Image", spec: ImagePreprocessing) -> np.ndarray:  # noqa: F821
    """Resize and center-crop an RGB image to a ``(size, size, 3)`` uint8 array."""
    from PIL import Image

    resample = {
        "bicubic": Image.Resampling.BICUBIC,
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
    }[spec.interpolation]
    nw, nh = resized_size(*image.size, spec)
    image = image.resize((nw, nh), resample)
    left, top = (nw - spec.size) // 2, (nh - spec.size) // 2
    return np.asarray(image.crop((left, top, left + spec.size, top + spec.size)), dtype=np.uint8)


def normalize(crops: np.ndarray, spec: ImagePreprocessing) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 crops to normalised ``(N, 3, H, W)`` float32."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    inv_std = 1.0 / np.asarray(spec.std, dtype=np.float32)
    x = (crops.astype(np.float32) - mean) * inv_std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def load_tokenizer(path: str | Path, spec: TextPreprocessing) -> "Tokenizer":  # noqa: F821
    """A ``tokenizers.Tokenizer`` from a tokenizer.json file, configured by ``spec``."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises its own Exception subclass
        raise DataError(f"cannot read tokenizer {path}: {exc}") from None
    return configure_tokenizer(tok, spec)


def configure_tokenizer(tok: "Tokenizer", spec: TextPreprocessing) -> "Tokenizer":  # noqa: F821
    """Truncate at ``spec.max_length`` and pad to the longest item of a batch."""
    pad_id = tok.token_to_id(spec.pad_token)
    if pad_id is None:
        raise DataError(f"the tokenizer has no pad token {spec.pad_token!r}")
    tok.enable_truncation(max_length=spec.max_length)
    tok.enable_padding(pad_id=pad_id, pad_token=spec.pad_token)
    return tok


def encode_texts(
    tokenizer: "Tokenizer", texts: Sequence[str], spec: TextPreprocessing, pad_to: int | None = None  # noqa: F821
) -> dict[str, np.ndarray]:
    """Tokenize a batch: int64 arrays named as ``spec.input_names``, padded to the longest item
    (or to ``pad_to``)."""
    if pad_to is not None:
        tokenizer.enable_padding(
            pad_id=tokenizer.token_to_id(spec.pad_token), pad_token=spec.pad_token, length=pad_to
        )
    try:
        encodings = tokenizer.encode_batch(list(texts))
    finally:
        if pad_to is not None:
            tokenizer.enable_padding(pad_id=tokenizer.token_to_id(spec.pad_token), pad_token=spec.pad_token)
    arrays = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    return {name: arrays[name] for name in spec.input_names}
