"""Residual networks: CIFAR ResNet20/110 (He et al. 2016, Sec. 4.2) and ResNet18/50 (He et al. 2016, Table 1).

* ``resnet20`` / ``resnet110``: three stages of ``n`` basic blocks (n = 3, 18) with 16, 32, 64
  channels.  ``shortcut="A"`` (default, as in the paper by He et al.) uses parameter-free identity
  shortcuts with zero-padded channels; ``shortcut="B"`` uses 1x1 conv + BN projections where the
  shape changes.  Option A gives 269,722 / 1,727,962 parameters for 10 classes (0.27M / 1.7M);
  option B gives 272,474 / 1,730,714.
* ``resnet18`` / ``resnet50``: four stages of basic / bottleneck blocks with 1x1 conv + BN
  projection shortcuts.  ``stem="cifar"`` is the 3x3 stride-1 stem without max-pool
  (kuangliu/pytorch-cifar; 11,173,962 parameters for ResNet18 with 10 classes), ``stem="imagenet"``
  the 7x7 stride-2 stem with max-pool (torchvision; 11,689,512 / 25,557,032 with 1000 classes).
  ``stem="auto"`` (default) picks ``imagenet`` for inputs of at least 128 pixels, else ``cifar``.
  ``classifier="conv1x1"`` makes the classifier a bias-free 1x1 conv after the pool, as the paper's
  STR code (``STR/models/resnet18.py:126``): 512 x classes weights and no bias (default ``"linear"``).

Every model takes ``init``: ``"fan_out"`` (default) draws conv weights Kaiming-normal with
``mode="fan_out"`` and leaves the linear classifier at PyTorch's default; ``"fan_in"`` draws every
conv and linear weight Kaiming-normal with ``mode="fan_in"`` (ReLU gain), as the paper's code does
(``ER_DST/models/initializers.py:16``, ``STR/configs/largescale/resnet18-cifar-str-1.yaml:26``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ertrain.models._registry import register_model, scaled


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class PadShortcut(nn.Module):
    """Option A shortcut: subsample by ``stride`` and zero-pad the channels (no parameters)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


def projection(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1, shortcut: str = "B") -> None:
        super().__init__()
        self.conv1 = conv3x3(c_in, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != planes:
            self.shortcut = PadShortcut(c_in, planes, stride) if shortcut == "A" else projection(c_in, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, shortcut: str = "B") -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = PadShortcut(c_in, c_out, stride) if shortcut == "A" else projection(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


#: Weight initialisations of the ResNets (model option ``init``).
INITS = ("fan_out", "fan_in")
#: Classifier heads (model option ``classifier``).
CLASSIFIERS = ("linear", "conv1x1")


def _init_weights(model: nn.Module, init: str) -> None:
    """Kaiming-normal conv weights by ``init``'s fan mode; with ``fan_in`` the linear weights too."""
    mode: Literal["fan_in", "fan_out"] = "fan_in" if init == "fan_in" else "fan_out"
    for m in model.modules():
        if isinstance(m, nn.Conv2d) or (mode == "fan_in" and isinstance(m, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")


class ResNet(nn.Module):
    """Stem, stages of residual blocks, global average pool, linear (or bias-free 1x1 conv) classifier."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks_per_stage: tuple[int, ...],
        stage_planes: tuple[int, ...],
        num_classes: int,
        in_channels: int,
        stem: str,
        shortcut: str,
        init: str = "fan_out",
        classifier: str = "linear",
    ) -> None:
        super().__init__()
        _check_choice("init", init, INITS)
        _check_choice("classifier", classifier, CLASSIFIERS)
        c = stage_planes[0]
        self.conv1: nn.Conv2d
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, c, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(in_channels, c)
        self.bn1 = nn.BatchNorm2d(c)
        self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        stages = []
        for i, (n, planes) in enumerate(zip(blocks_per_stage, stage_planes, strict=True)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(c, planes, stride, shortcut))
                c = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier: nn.Module = (
            nn.Linear(c, num_classes) if classifier == "linear" else nn.Conv2d(c, num_classes, 1, bias=False)
        )
        _init_weights(self, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.stages(x)
        if isinstance(self.classifier, nn.Conv2d):
            return self.classifier(self.pool(x)).flatten(1)
        return self.classifier(self.pool(x).flatten(1))


def _check_choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"{name} must be one of {list(valid)}, got {value!r}")


def _cifar_resnet(
    depth: int, num_classes: int, in_channels: int, width: float, shortcut: str, init: str
) -> ResNet:
    _check_choice("shortcut", shortcut, ("A", "B"))
    n = (depth - 2) // 6
    planes = tuple(scaled(c, width) for c in (16, 32, 64))
    return ResNet(BasicBlock, (n, n, n), planes, num_classes, in_channels, "cifar", shortcut, init)


def _stem(stem: str, input_size: int) -> str:
    _check_choice("stem", stem, ("auto", "cifar", "imagenet"))
    if stem == "auto":
        return "imagenet" if input_size >= 128 else "cifar"
    return stem


def _registered(factory: Callable[..., ResNet], name: str, doc: str) -> Callable[..., ResNet]:
    """``factory`` named ``name`` with the docstring ``doc``, registered as the model ``name``."""
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return register_model(name)(factory)


def _cifar_factory(depth: int, doc: str) -> Callable[..., ResNet]:
    """The registered factory of the CIFAR ResNet of ``depth`` (options: ``shortcut``, ``init``)."""

    def cifar_resnet(
        *,
        num_classes: int,
        in_channels: int = 3,
        input_size: int = 32,
        width: float = 1.0,
        in_features: int | None = None,
        shortcut: str = "A",
        init: str = "fan_out",
    ) -> ResNet:
        return _cifar_resnet(depth, num_classes, in_channels, width, shortcut, init)

    return _registered(cifar_resnet, f"resnet{depth}", doc)


def _imagenet_factory(
    name: str, block: type[BasicBlock] | type[Bottleneck], blocks_per_stage: tuple[int, ...], doc: str
) -> Callable[..., ResNet]:
    """The four-stage ResNet ``name`` with 64..512 planes (options: ``stem``, ``init``, ``classifier``)."""

    def imagenet_resnet(
        *,
        num_classes: int,
        in_channels: int = 3,
        input_size: int = 32,
        width: float = 1.0,
        in_features: int | None = None,
        stem: str = "auto",
        init: str = "fan_out",
        classifier: str = "linear",
    ) -> ResNet:
        planes = tuple(scaled(c, width) for c in (64, 128, 256, 512))
        return ResNet(block, blocks_per_stage, planes, num_classes, in_channels, _stem(stem, input_size), "B",
                      init, classifier)

    return _registered(imagenet_resnet, name, doc)


resnet20 = _cifar_factory(20, "CIFAR ResNet20 (He et al. 2016, Sec. 4.2, n = 3).")
resnet110 = _cifar_factory(110, "CIFAR ResNet110 (He et al. 2016, Sec. 4.2, n = 18).")
resnet18 = _imagenet_factory(
    "resnet18", BasicBlock, (2, 2, 2, 2), "ResNet18: basic blocks (2, 2, 2, 2) with 64..512 channels."
)
resnet50 = _imagenet_factory(
    "resnet50", Bottleneck, (3, 4, 6, 3), "ResNet50: bottleneck blocks (3, 4, 6, 3) with 64..512 planes (x4 expansion)."
)
