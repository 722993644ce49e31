"""Which nodes of a static INT8 graph lose the most precision: onnxruntime's QDQ debugging tools
compare every activation of the QDQ graph with the float graph on calibration samples."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import onnx

from edgeft.export.inputs import Feeds
from edgeft.export.quantize import COMPUTE_OPS, _Reader


def rank_nodes(float_path: Path, qdq_path: Path, batches: Sequence[Feeds], work: Path) -> list[tuple[str, float]]:
    """Compute nodes by the precision they lose, worst first: the drop in signal-to-quantization-
    noise ratio (dB, float vs QDQ) from a node's input to its output."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    float_aug, qdq_aug = work / "sensitivity-float.onnx", work / "sensitivity-qdq.onnx"
    modify_model_output_intermediate_tensors(str(float_path), str(float_aug))
    modify_model_output_intermediate_tensors(str(qdq_path), str(qdq_aug))
    float_acts = collect_activations(str(float_aug), _Reader(batches))
    qdq_acts = collect_activations(str(qdq_aug), _Reader(batches))
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    sqnr = {name: e["xmodel_err"] for name, e in errors.items() if "xmodel_err" in e}
    if not sqnr:
        return []
    graph = onnx.load(str(float_path), load_external_data=False).graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def measured(tensor: str) -> str | None:
        """The tensor itself, or the first one after it that the QDQ graph quantizes, following a
        chain of single-consumer element-wise nodes (a Conv's output is often quantized after its
        Relu/Clip, which the quantizer fuses into it)."""
        for _ in range(8):
            if tensor in sqnr:
                return tensor
            after = consumers.get(tensor, [])
            if len(after) != 1 or after[0].op_type in COMPUTE_OPS:
                return None
            tensor = after[0].output[0]
        return None

    ranked = []
    for node in graph.node:
        out = measured(node.output[0]) if node.op_type in COMPUTE_OPS else None
        if out is not None:
            before = sqnr.get(node.input[0], max(sqnr.values()))
            ranked.append((node.name, float(before - sqnr[out])))
    return sorted(ranked, key=lambda item: -item[1])
