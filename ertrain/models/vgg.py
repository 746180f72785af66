"""VGG16 / VGG19 with batch norm, CIFAR variants: ``variant="exact"`` (default) and ``"paper-code"``.

``exact``: the CIFAR variant used throughout the sparse-training literature (e.g. kuangliu/pytorch-cifar
and SynFlow's ``lottery_vgg``): the ImageNet configurations D (VGG16) and E (VGG19) of Simonyan &
Zisserman (2015) of 3x3 convs (with bias) + BatchNorm + ReLU and five 2x2 max-pools, followed by a
global average pool and a single ``Linear(512, num_classes)`` classifier, with PyTorch's default
initialisation.  For 32x32 inputs the global pool is the identity (the feature map is 1x1 there):
14,728,266 parameters for VGG16 and 20,040,522 for VGG19 with 10 classes.

``paper-code``: the VGG of the paper's code (``ER_DST/models/vgg.py``), which produced its VGG
tables: the same convs *without bias*, only four max-pools (the last block is not pooled), then an
average pool over the remaining 2x2 (CIFAR) or 4x4 (Tiny ImageNet) map — a global average pool for
those inputs — and ``Linear(512, num_classes)``.  Initialisation as that code's ``weights_init``:
convs Kaiming-normal with ``mode="fan_out"`` (ReLU gain), the classifier N(0, 0.01^2) with zero
bias, batch norm weight 1 and bias 0.  The code returns ``log_softmax`` and trains with the NLL loss;
returning logits and training with cross-entropy is the same computation.  14,724,042 parameters for
VGG16 and 20,035,018 for VGG19 with 10 classes (the exact variant's count less its 4,224 / 5,504 conv
biases).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ertrain.models._registry import register_model, scaled

CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def _paper_code_init(model: nn.Module) -> None:
    """The paper's code's VGG initialisation (``ER_DST/models/init_utils.py``, ``weights_init``)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@dataclass(frozen=True)
class VggVariant:
    """How a VGG variant differs: max-pools used, conv bias, initialisation (``None``: PyTorch's default)."""

    pools: int
    conv_bias: bool
    init: Callable[[nn.Module], None] | None
    help: str


#: The VGG variants by name (model option ``variant``).
VARIANTS: dict[str, VggVariant] = {
    "exact": VggVariant(5, True, None, "five max-pools, conv bias, PyTorch's default initialisation"),
    "paper-code": VggVariant(
        4, False, _paper_code_init, "the paper's code: four max-pools, no conv bias, Kaiming fan-out initialisation"
    ),
}


class VGG(nn.Module):
    def __init__(
        self,
        config: tuple[int | str, ...],
        num_classes: int,
        in_channels: int,
        width: float,
        *,
        pools: int = 5,
        conv_bias: bool = True,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        seen_pools = 0
        for item in config:
            if item == "M":
                seen_pools += 1
                if seen_pools <= pools:
                    layers.append(nn.MaxPool2d(2, 2))
            else:
                c_out = scaled(int(item), width)
                layers += [
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=conv_bias),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True),
                ]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def _build(name: str, num_classes: int, in_channels: int, input_size: int, width: float, variant: str) -> VGG:
    if variant not in VARIANTS:
        raise ValueError(f"unknown {name} variant {variant!r}; valid: {', '.join(sorted(VARIANTS))}")
    spec = VARIANTS[variant]
    smallest = 2**spec.pools
    if input_size < smallest:
        raise ValueError(
            f"{name} (variant {variant!r}) needs input_size >= {smallest} ({spec.pools} 2x2 max-pools), "
            f"got {input_size!r}"
        )
    model = VGG(CONFIGS[name], num_classes, in_channels, width, pools=spec.pools, conv_bias=spec.conv_bias)
    if spec.init is not None:
        spec.init(model)
    return model


def _vgg_factory(name: str, doc: str) -> Callable[..., VGG]:
    """The registered factory of ``name`` (option ``variant``: ``"exact"`` or ``"paper-code"``)."""

    def factory(
        *,
        num_classes: int,
        in_channels: int = 3,
        input_size: int = 32,
        width: float = 1.0,
        in_features: int | None = None,
        variant: str = "exact",
    ) -> VGG:
        return _build(name, num_classes, in_channels, input_size, width, variant)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return register_model(name, help=doc.split(";")[0])(factory)


vgg16 = _vgg_factory(
    "vgg16",
    "VGG16-bn, CIFAR variant (13 convs + 1 linear; 14,728,266 parameters for 10 classes; ``variant`` "
    "``\"paper-code\"``: the paper's code's VGG16, 14,724,042).",
)
vgg19 = _vgg_factory(
    "vgg19",
    "VGG19-bn, CIFAR variant (16 convs + 1 linear; 20,040,522 parameters for 10 classes; ``variant`` "
    "``\"paper-code\"``: the paper's code's VGG19, 20,035,018).",
)

