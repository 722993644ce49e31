"""Quantization-aware head refit: the linear head fitted again on the quantized backbone's features.

A frozen backbone quantized to INT8 gives features that differ from the float ones the head was
trained on; a head refitted on the quantized backbone's own features, computed with the target's
numerics, recovers most of the loss (measured in ``benchmarks/int8_accuracy.py``). The head stays
in float (it is one small Gemm) and is fitted with the fine-tuning's own ``fit_linear_head``.
An ONNX file in, an ONNX file out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from edgeft.export.inputs import Feeds


@dataclass(frozen=True)
class HeadRefit:
    """What a refit needs: the training split's feeds and labels, and the target's numerics."""

    batches: Sequence[Feeds]
    labels: Sequence[int]
    numerics: str = "host"
    always: bool = False  # every INT8 recipe refits (else only one whose trained head misses the budget)

    def digest_parts(self) -> tuple[str, ...]:
        return ("refit", self.numerics, ",".join(map(str, self.labels)))


def head_node(model: onnx.ModelProto) -> onnx.NodeProto | None:
    """The graph's linear head: a Gemm with float weights and bias producing the first output
    (what both default backbones export); None for any other head."""
    producer = next((n for n in model.graph.node if model.graph.output[0].name in n.output), None)
    if producer is None or producer.op_type != "Gemm" or len(producer.input) != 3:
        return None
    inits = {t.name for t in model.graph.initializer}
    return producer if producer.input[1] in inits and producer.input[2] in inits else None


def refit_head(src: Path, dst: Path, refit: HeadRefit) -> dict[str, Any]:
    """Refit the head of the quantized graph ``src`` on its own features; write ``dst``."""
    import torch

    from edgeft.export.verify import onnx_logits
    from edgeft.finetune.head_fit import fit_linear_head

    model = onnx.load(str(src))
    node = head_node(model)
    if node is None:
        return {"head_refit": False, "head_refit_why": "the graph's head is not a float Gemm"}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(node.input[0]))  # the features
    probe_path = dst.with_name(dst.stem + "-features.onnx")
    onnx.save(probe, str(probe_path))
    try:
        features = onnx_logits(probe_path, refit.batches, refit.numerics, output=len(probe.graph.output) - 1)
    finally:
        probe_path.unlink(missing_ok=True)
    classes = int(numpy_helper.to_array(_initializer(model, node.input[2])).shape[0])
    fit = fit_linear_head(torch.from_numpy(features.reshape(len(features), -1)), torch.as_tensor(list(refit.labels)),
                          classes)
    trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
    weight = fit.weight.numpy() if trans_b else fit.weight.numpy().T
    _initializer(model, node.input[1]).CopyFrom(numpy_helper.from_array(np.ascontiguousarray(weight), node.input[1]))
    _initializer(model, node.input[2]).CopyFrom(numpy_helper.from_array(fit.bias.numpy(), node.input[2]))
    onnx.save(model, str(dst))
    return {"head_refit": True, "head_refit_numerics": refit.numerics, "head_refit_samples": len(features),
            "head_refit_iterations": fit.iterations}


def _initializer(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in model.graph.initializer if t.name == name)
