"""PyTorch to ONNX: optimum-onnx's exporter for Hugging Face text encoders, torch's (dynamo)
exporter for vision backbones. Both give a dynamic ``batch`` axis (and ``sequence`` for text)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgeft.backbones import Backbone
from edgeft.errors import EdgeftError, UsageError
from edgeft.export.quiet import quiet

DEFAULT_OPSET = 18
_DIM_NAMES = {"batch_size": "batch", "sequence_length": "sequence"}


class ExportFailed(EdgeftError):
    """The exporter could not convert the model (exit 1: a bug or an unsupported layer)."""


EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "optimum", "onnxscript")


class _TextClassifier(nn.Module):
    """The encoder + pooling + head, with the signature and outputs optimum's exporter expects."""

    def __init__(self, model: Backbone) -> None:
        super().__init__()
        self.model = model
        self.config = model.encoder.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None):
        from transformers.modeling_outputs import SequenceClassifierOutput

        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return SequenceClassifierOutput(logits=self.model(**inputs))


class _ImageClassifier(nn.Module):
    def __init__(self, model: Backbone) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values)


def _export_text(model: Backbone, path: Path, opset: int) -> None:
    from optimum.exporters.onnx.convert import export_pytorch
    from optimum.exporters.tasks import TasksManager

    wrapper = _TextClassifier(model).eval()
    model_type = wrapper.config.model_type
    try:
        constructor = TasksManager.get_exporter_config_constructor(
            "onnx", model_type=model_type, task="text-classification", library_name="transformers")
    except (KeyError, ValueError) as exc:
        raise UsageError(f"optimum-onnx cannot export model type {model_type!r}: {exc}") from None
    onnx_config = constructor(wrapper.config)
    export_pytorch(wrapper, onnx_config, opset, path)


def _export_image(model: Backbone, path: Path, opset: int) -> None:
    wrapper = _ImageClassifier(model).eval()
    size = model.preprocessing.size
    example = torch.randn(2, 3, size, size)
    torch.onnx.export(
        wrapper, (example,), str(path), input_names=["pixel_values"], output_names=["logits"],
        opset_version=opset, dynamo=True, external_data=False,
        dynamic_shapes={"pixel_values": {0: torch.export.Dim("batch")}},
    )


def _rename_dims(path: Path) -> None:
    """Name the dynamic axes as the manifest does (``batch``, ``sequence``)."""
    import onnx

    model = onnx.load(str(path))
    for value in [*model.graph.input, *model.graph.output]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = _DIM_NAMES.get(dim.dim_param, dim.dim_param)
    onnx.save(model, str(path))


def to_onnx(model: Backbone, path: str | Path, opset: int | None = None) -> Path:
    """Export ``model`` (eval mode, float32, on CPU) to one self-contained ONNX file."""
    path = Path(path)
    model = model.float().cpu().eval()
    try:
        with quiet(*EXPORTER_LOGGERS), torch.no_grad():
            if model.spec.modality == "text":
                _export_text(model, path, opset or DEFAULT_OPSET)
            else:
                _export_image(model, path, opset or DEFAULT_OPSET)
    except EdgeftError:
        raise
    except Exception as exc:  # the exporters raise anything; name it and stop
        raise ExportFailed(f"ONNX export of {model.spec.name} failed: {type(exc).__name__}: "
                           f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
    _rename_dims(path)
    return path


def float_graph(model: Backbone, work: Path, name: str, modality: str, opset: int | None = None) -> Path:
    """The model as an optimised float ONNX graph ``work/<name>.onnx`` (exported, then fused: the
    transformer fusions for text, onnxruntime's basic ones for images): export's starting point."""
    from edgeft.export.optimize import optimize_graph

    encoder = getattr(getattr(model, "encoder", None), "config", None)
    return optimize_graph(to_onnx(model, work / f"{name}-exported.onnx", opset), work / f"{name}.onnx", modality,
                          getattr(encoder, "num_attention_heads", 0), getattr(encoder, "hidden_size", 0))
