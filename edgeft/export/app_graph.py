"""The app model's graph: the bundle's own preprocessing in front of its model, softmax and top-k
behind it, so that an app calls it with what it already has.

- Images: ``pixels``, uint8 RGB HWC at any height and width, resized (shorter side), center-cropped,
  normalised and laid out NCHW in standard ONNX operators (opset 18 ``Resize`` with antialias):
  the ORT Mobile reduced build and every binding run it without custom operators. The settings
  reproduce Pillow's resize (its filters, antialias support, edge handling and uint8 rounding):
  ``benchmarks/app_model.py`` measures what is left on real photos.
- Text: ``text``, one UTF-8 string, tokenized by onnxruntime-extensions' ``BertTokenizer``.

The model part is copied as it is (a quantized model stays quantized); the added part is float.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from edgeft.errors import UsageError
from edgeft.runtime.preprocess import ImagePreprocessing, TextPreprocessing

MIN_OPSET = 18  # Resize's antialias attribute
PREFIX = "edgeft_app/"
CONTRIB = "ai.onnx.contrib"  # onnxruntime-extensions' operator domain
OUTPUTS = ("logits", "probabilities", "top_k_scores", "top_k_indices")
# Pillow's filters as ONNX Resize attributes: Pillow widens a filter by the downscale factor
# (antialias), renormalises weights at the edges (exclude_outside) and rounds uint8 per pass,
# as onnxruntime's uint8 antialias kernels do.
_RESIZE = {
    "bicubic": {"mode": "cubic", "cubic_coeff_a": -0.5, "antialias": 1, "exclude_outside": 1},
    "bilinear": {"mode": "linear", "antialias": 1, "exclude_outside": 1},
    "nearest": {"mode": "nearest", "nearest_mode": "round_prefer_ceil"},
}


@dataclass(frozen=True)
class AppGraph:
    """What was added around the model: its input, the steps inside the graph, the custom operator
    library the app needs (None: standard operators only)."""

    input_name: str
    steps: tuple[str, ...]
    custom_ops: str | None


class _Nodes:
    """A small builder: named constants and nodes, every name under ``PREFIX``."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        full = PREFIX + name
        self.initializers.append(self.numpy_helper.from_array(value, full))
        return full

    def add(self, op: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "", **attrs) -> list[str]:
        self.count += 1
        names = outputs if isinstance(outputs, list) else [f"{PREFIX}{op.lower()}_{self.count}_{i}" for i in range(outputs)]
        self.nodes.append(self.helper.make_node(op, inputs, names, name=f"{PREFIX}{op}_{self.count}", domain=domain, **attrs))
        return names

    def one(self, op: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        return self.add(op, inputs, [output] if output else 1, **attrs)[0]


def _image_prelude(b: _Nodes, spec: ImagePreprocessing, target: str) -> None:
    """pixels [H, W, 3] uint8 -> ``target`` [1, 3, size, size] float32, as ``crop_image`` and
    ``normalize`` compute it (sizes in float64 and rounded half to even, as Python's ``round``)."""
    shape = b.one("Shape", ["pixels"])
    hw = b.one("Slice", [shape, b.const("zero", np.array([0], np.int64)), b.const("two", np.array([2], np.int64))])
    hw_f = b.one("Cast", [hw], to=11)  # double
    short = b.one("ReduceMin", [hw_f], keepdims=1)
    scale = b.one("Div", [b.const("resize", np.array([spec.resize], np.float64)), short])
    new = b.one("Cast", [b.one("Round", [b.one("Mul", [hw_f, scale])])], to=7)  # int64
    size = b.const("size", np.array([spec.size, spec.size], np.int64))
    new = b.one("Max", [new, size])
    one = b.const("one", np.array([1], np.int64))
    sizes = b.one("Concat", [one, new, b.const("channels", np.array([3], np.int64))], axis=0)
    batch = b.one("Unsqueeze", ["pixels", b.const("axis0", np.array([0], np.int64))])
    resized = b.one("Resize", [batch, "", "", sizes], coordinate_transformation_mode="half_pixel",
                    **_RESIZE[spec.interpolation])
    start = b.one("Div", [b.one("Sub", [new, size]), b.const("half", np.array([2, 2], np.int64))])
    crop = b.one("Slice", [resized, start, b.one("Add", [start, size]), b.const("hw_axes", np.array([1, 2], np.int64))])
    mean = b.const("mean", np.asarray(spec.mean, np.float32))
    inv_std = b.const("inv_std", (1.0 / np.asarray(spec.std, np.float32)).astype(np.float32))
    x = b.one("Mul", [b.one("Sub", [b.one("Cast", [crop], to=1), mean]), inv_std])
    b.one("Transpose", [x], target, perm=[0, 3, 1, 2])


def preprocessing_model(spec: ImagePreprocessing):  # noqa: ANN201 - an onnx ModelProto
    """The image preprocessing alone as a model: ``pixels`` in, ``pixel_values`` out (for tests and
    ``benchmarks/app_model.py``, which hold it against Pillow)."""
    from onnx import TensorProto, helper

    b = _Nodes()
    _image_prelude(b, spec, "pixel_values")
    graph = helper.make_graph(b.nodes, "preprocessing",
                              [helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["height", "width", 3])],
                              [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, None)], b.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", MIN_OPSET)])


def wordpiece_vocab(tokenizer_json: str) -> tuple[str, dict]:
    """The vocabulary (one token per line, in id order) and normaliser of a BERT WordPiece
    tokenizer.json; other tokenizers are refused with the reason."""
    data = json.loads(tokenizer_json)
    model, normalizer = data.get("model") or {}, data.get("normalizer") or {}
    if model.get("type") != "WordPiece" or normalizer.get("type") != "BertNormalizer":
        raise UsageError(f"--app for text needs a BERT WordPiece tokenizer (onnxruntime-extensions' BertTokenizer); "
                         f"this bundle's is {model.get('type')} with a {normalizer.get('type')} normalizer")
    vocab = model["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    if [vocab[t] for t in tokens] != list(range(len(tokens))):
        raise UsageError("the tokenizer's vocabulary ids are not contiguous; cannot write it for BertTokenizer")
    return "\n".join(tokens), normalizer


def _text_prelude(b: _Nodes, spec: TextPreprocessing, tokenizer_json: str, needed: list[str]) -> None:
    """text [1] string -> the model's token inputs [1, sequence] int64, tokenized in the graph."""
    vocab, normalizer = wordpiece_vocab(tokenizer_json)
    lowercase = bool(normalizer.get("lowercase", spec.lowercase))
    strip = normalizer.get("strip_accents")
    tokens = b.add("BertTokenizer", ["text"], 3, domain=CONTRIB, vocab_file=vocab, do_lower_case=int(lowercase),
                   strip_accents=int(lowercase if strip is None else strip), max_length=spec.max_length,
                   tokenize_chinese_chars=int(normalizer.get("handle_chinese_chars", True)))
    made = dict(zip(("input_ids", "token_type_ids", "attention_mask"), tokens, strict=True))
    axis = b.const("axis0", np.array([0], np.int64))
    for name in needed:
        b.one("Unsqueeze", [made[name], axis], name)


def _postlude(b: _Nodes, logits: str, top_k: int) -> None:
    probabilities = b.one("Softmax", [logits], "probabilities", axis=-1)
    b.add("TopK", [probabilities, b.const("k", np.array([top_k], np.int64))], ["top_k_scores", "top_k_indices"],
          axis=-1, largest=1, sorted=1)


def add_app_graph(model, preprocessing: ImagePreprocessing | TextPreprocessing, classes: int,  # noqa: ANN001
                  top_k: int = 5, tokenizer_json: str | None = None) -> AppGraph:
    """Wrap the ONNX ``model`` (a ``ModelProto``, changed in place) with the app's pre- and
    post-processing; its single output must be the logits."""
    from onnx import TensorProto, helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        raise UsageError(f"--app needs a model of opset {MIN_OPSET} or later (Resize with antialias); this one is "
                         f"opset {opset}: export it again without --opset")
    graph = model.graph
    if len(graph.output) != 1:
        raise UsageError(f"--app needs a model with one output (the logits), this one has {len(graph.output)}")
    logits = graph.output[0].name
    b = _Nodes()
    feeds = [i.name for i in graph.input]
    if isinstance(preprocessing, ImagePreprocessing):
        _image_prelude(b, preprocessing, feeds[0])
        new_input = helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["height", "width", 3])
        steps = ("resize", "center_crop", "normalize", "nchw", "softmax", "top_k")
        custom = None
    else:
        if tokenizer_json is None:
            raise UsageError("a text bundle without tokenizer.json cannot tokenize inside the graph")
        _text_prelude(b, preprocessing, tokenizer_json, feeds)
        new_input = helper.make_tensor_value_info("text", TensorProto.STRING, [1])
        steps = ("tokenize", "truncate", "softmax", "top_k")
        custom = "onnxruntime-extensions"
        if not any(o.domain == CONTRIB for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(CONTRIB, 1))
    k = max(1, min(top_k, classes))
    _postlude(b, logits, k)
    nodes = b.nodes[:-2] + list(graph.node) + b.nodes[-2:]  # prelude, model, postlude: topological order
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(b.initializers)
    del graph.input[:]
    graph.input.append(new_input)
    old_output = graph.output[0]
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info(logits, old_output.type.tensor_type.elem_type, [1, classes]),
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, classes]),
        helper.make_tensor_value_info("top_k_scores", TensorProto.FLOAT, [1, k]),
        helper.make_tensor_value_info("top_k_indices", TensorProto.INT64, [1, k]),
    ])
    return AppGraph(new_input.name, steps, custom)
