"""VGG16 / VGG19 with batch norm, CIFAR variant.

The CIFAR variant used throughout the sparse-training literature (e.g. kuangliu/pytorch-cifar and
SynFlow's ``lottery_vgg``): the ImageNet configurations D (VGG16) and E (VGG19) of Simonyan &
Zisserman (2015) of 3x3 convs (with bias) + BatchNorm + ReLU and five 2x2 max-pools, followed by a
global average pool and a single ``Linear(512, num_classes)`` classifier.  For 32x32 inputs the
global pool is the identity (the feature map is 1x1 there), so the network equals that variant:
14,728,266 parameters for VGG16 and 20,040,522 for VGG19 with 10 classes.
"""

from __future__ import annotations

import torch
from torch import nn

from ertrain.models._registry import register_model, scaled

CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


class VGG(nn.Module):
    def __init__(self, config: tuple[int | str, ...], num_classes: int, in_channels: int, width: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                c_out = scaled(int(item), width)
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def _check_size(name: str, input_size: int) -> None:
    if input_size < 32:
        raise ValueError(f"{name} needs input_size >= 32 (five 2x2 max-pools), got {input_size!r}")


@register_model("vgg16")
def vgg16(
    *, num_classes: int, in_channels: int = 3, input_size: int = 32, width: float = 1.0, in_features: int | None = None
) -> VGG:
    """VGG16-bn, CIFAR variant (13 convs + 1 linear; 14,728,266 parameters for 10 classes)."""
    _check_size("vgg16", input_size)
    return VGG(CONFIGS["vgg16"], num_classes, in_channels, width)


@register_model("vgg19")
def vgg19(
    *, num_classes: int, in_channels: int = 3, input_size: int = 32, width: float = 1.0, in_features: int | None = None
) -> VGG:
    """VGG19-bn, CIFAR variant (16 convs + 1 linear; 20,040,522 parameters for 10 classes)."""
    _check_size("vgg19", input_size)
    return VGG(CONFIGS["vgg19"], num_classes, in_channels, width)
