"""The part of edgeft that ships inside apps: numpy, onnxruntime, tokenizers and Pillow only.

Never import torch, transformers, onnx or optimum from this package.
"""

from typing import Any

__all__ = ["EdgeModel", "GoldenCheck", "Prediction"]


def __getattr__(name: str) -> Any:  # onnxruntime is imported only when a model is used
    if name in __all__:
        from edgeft.runtime import model

        return getattr(model, name)
    raise AttributeError(name)
