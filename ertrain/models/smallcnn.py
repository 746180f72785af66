"""A small VGG-style convolutional network for 28x28 / 32x32 images on a CPU budget.

Three 3x3 conv + BatchNorm + ReLU layers, the first two with stride 2 (an all-convolutional VGG
variant: strides instead of pooling, which is cheaper on a CPU), a 2x2 max-pool, then a hidden
linear layer and the classifier.  With the default ``channels=(16, 32, 64)`` and ``hidden=128`` on
a 28x28 grey image the five masked layers have very different sizes and fan-ins::

    layer     weight shape        m_l     fan-in
    conv1     16 x  1 x 3 x 3      144        9
    conv2     32 x 16 x 3 x 3    4,608      144
    conv3     64 x 32 x 3 x 3   18,432      288
    fc1      128 x 576          73,728      576
    fc2       10 x 128           1,280      128

so the layerwise ratios of the paper (uniform, ERK, balanced, pyramidal; DIGEST §2) give clearly
different per-layer densities, which is what the ratio experiments need.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ertrain.models._registry import register_model, scaled


def _conv(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


def _side(size: int, stride: int) -> int:
    """Output side of a 3x3 conv with padding 1."""
    return (size - 1) // stride + 1


class SmallCNN(nn.Module):
    """conv(s2) -> conv(s2) -> conv -> max-pool 2 -> linear -> ReLU -> linear."""

    def __init__(
        self, in_channels: int, input_size: int, channels: Sequence[int], hidden: int, num_classes: int
    ) -> None:
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.features = nn.Sequential(*_conv(in_channels, c1, 2), *_conv(c1, c2, 2), *_conv(c2, c3, 1),
                                      nn.MaxPool2d(2))
        side = _side(_side(input_size, 2), 2) // 2
        self.fc1 = nn.Linear(c3 * side * side, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(self.features(x).flatten(1))))


@register_model("smallcnn")
def smallcnn(
    *,
    num_classes: int,
    in_channels: int = 1,
    input_size: int = 28,
    width: float = 1.0,
    in_features: int | None = None,
    channels: Sequence[int] = (16, 32, 64),
    hidden: int = 128,
) -> SmallCNN:
    """The small CNN with conv widths ``channels`` and ``hidden`` units (all multiplied by ``width``)."""
    if len(channels) != 3 or any(int(c) < 1 for c in channels):
        raise ValueError(f"channels must be three positive integers, got {list(channels)!r}")
    if int(hidden) < 1:
        raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
    if input_size < 8:
        raise ValueError(f"smallcnn needs input_size >= 8 (two stride-2 convs and a 2x2 pool), got {input_size!r}")
    return SmallCNN(in_channels, input_size, [scaled(int(c), width) for c in channels], scaled(int(hidden), width),
                    num_classes)
