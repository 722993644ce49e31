"""The part of edgeft that ships inside apps: numpy, onnxruntime, tokenizers and Pillow only.

Never import torch, transformers, onnx or optimum from this package.
"""
