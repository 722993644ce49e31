"""App bundles (``edgeft package --app``): their model takes what an app has (uint8 RGB pixels of
any size, or one string) and does the preprocessing inside the graph. Here: the inputs checked
before they reach it, the custom operator library text models need, and their golden inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeft import limits
from edgeft.errors import MissingDependencyError, UsageError
from edgeft.runtime.preprocess import check_texts, load_image

EXTENSIONS = "onnxruntime-extensions"
GOLDEN_IMAGE = "image_{}"  # golden.npz keys of an image app bundle: image_0, image_1, ...


def custom_ops_library(package: str | None) -> str | None:
    """The shared library of the custom operators an app model names (text: the tokenizer), for
    ``open_session``; None when it names none."""
    if not package:
        return None
    if package != EXTENSIONS:
        raise UsageError(f"the bundle needs custom operators from {package!r}, which edgeft does not know")
    try:
        from onnxruntime_extensions import get_library_path
    except ImportError:
        raise MissingDependencyError(f"this app bundle tokenizes inside its graph with {EXTENSIONS}'s operators: "
                                     f"pip install {EXTENSIONS}") from None
    return str(get_library_path())


def app_pixels(item: Any) -> np.ndarray:
    """One image as the app model's input: uint8 RGB, HWC, of any non-zero size. Files and PIL
    images are decoded as ``edgeft predict`` decodes them; arrays must already be RGB."""
    from PIL import Image

    if isinstance(item, (str, Path)):
        item = np.asarray(load_image(item))
    elif isinstance(item, Image.Image):
        item = np.asarray(item.convert("RGB"))
    if not isinstance(item, np.ndarray):
        raise UsageError(f"cannot read an image from {type(item).__name__}")
    if item.dtype != np.uint8:
        raise UsageError(f"an image array must be uint8 (0..255), got {item.dtype}")
    if item.ndim == 2 or (item.ndim == 3 and item.shape[2] == 1):
        raise UsageError(f"the image is grayscale ({'x'.join(map(str, item.shape))}); the app model takes RGB "
                         "(height, width, 3): repeat the channel three times")
    if item.ndim != 3 or item.shape[2] != 3:
        raise UsageError(f"the app model takes RGB pixels (height, width, 3), got shape {list(item.shape)}"
                         + ("; drop the alpha channel" if item.ndim == 3 and item.shape[2] == 4 else ""))
    if item.shape[0] == 0 or item.shape[1] == 0:
        raise UsageError(f"the image is empty ({item.shape[1]}x{item.shape[0]} pixels)")
    if item.shape[0] * item.shape[1] > limits.MAX_IMAGE_PIXELS:
        raise UsageError(f"the image is {item.shape[1]}x{item.shape[0]}, over the limit of "
                         f"{limits.MAX_IMAGE_PIXELS // 2**20}M pixels")
    return np.ascontiguousarray(item)


def app_feeds(task: str, item: Any) -> dict[str, np.ndarray]:
    """The app model's feed for one image or one text."""
    if task == "text-classification":
        if not isinstance(item, str):
            raise UsageError("a text bundle takes strings")
        check_texts([item])
        return {"text": np.array([item], dtype=object)}
    return {"pixels": app_pixels(item)}


def read_app_golden(data: Any, count: int, task: str) -> list[Any]:
    """The golden inputs of an app bundle from its opened npz: ``count`` uint8 RGB images
    (``image_0``...) or texts, each checked as an app input."""
    if task == "text-classification":
        texts = data["texts"]
        if texts.shape != (count,) or texts.dtype.kind != "U":
            raise UsageError(f"texts must be {count} strings, got {texts.dtype} {list(texts.shape)}")
        return [str(t) for t in texts]
    return [app_pixels(data[GOLDEN_IMAGE.format(i)]) for i in range(count)]
