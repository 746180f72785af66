"""Fully connected ReLU network (the paper's MLP targets and sources, tabular experiments)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ertrain.models._registry import register_model, scaled


class MLP(nn.Module):
    """``in_features -> hidden[0] -> ... -> num_classes`` with ReLU; flattens its input."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, bias: bool = True) -> None:
        super().__init__()
        sizes = [in_features, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.classifier = nn.Linear(sizes[-1], num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.classifier(x)


@register_model("mlp", inputs=("image", "flat"), help="fully connected ReLU network")
def mlp(
    *,
    num_classes: int,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    in_features: int | None = None,
    hidden: Sequence[int] = (300, 100),
    bias: bool = True,
) -> MLP:
    """MLP with hidden widths ``hidden`` (each multiplied by ``width``).

    ``in_features`` defaults to ``in_channels * input_size**2`` (a flattened square image).
    """
    if any(int(h) < 1 for h in hidden):
        raise ValueError(f"hidden widths must be positive integers, got {list(hidden)!r}")
    n_in = in_features if in_features is not None else in_channels * input_size * input_size
    return MLP(n_in, [scaled(int(h), width) for h in hidden], num_classes, bias=bias)
