"""edgeft: fine-tune a compact backbone, export it to ONNX, ship it with a lean runtime."""

__version__ = "0.1.0"
