"""The grokking toy model of Liu et al. 2022 for modular arithmetic: token embeddings, combined, MLP decoder."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ertrain.models._registry import register_model, scaled

#: How the two token embeddings are combined before the decoder.
COMBINE = ("sum", "concat")


class TokenPairMLP(nn.Module):
    """Input ``one-hot(a) ++ one-hot(b)`` (``2 n`` features) -> ``E a (+|++) E b`` -> ReLU MLP -> ``n`` logits.

    ``embed`` is a bias-free linear map of a one-hot vector, i.e. a learned embedding table shared by both
    tokens (masked like any linear layer).
    """

    def __init__(self, tokens: int, dim: int, hidden: Sequence[int], num_classes: int, combine: str = "sum") -> None:
        super().__init__()
        self.tokens, self.combine = tokens, combine
        self.embed = nn.Linear(tokens, dim, bias=False)
        sizes = [dim if combine == "sum" else 2 * dim, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.classifier = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        a, b = self.embed(x[:, : self.tokens]), self.embed(x[:, self.tokens :])
        z = a + b if self.combine == "sum" else torch.cat([a, b], dim=1)
        for layer in self.hidden:
            z = torch.relu(layer(z))
        return self.classifier(z)


@register_model("grokking", inputs=("flat",), help="token embeddings + MLP decoder (Liu et al. 2022)")
def grokking(
    *,
    num_classes: int,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    in_features: int | None = None,
    dim: int = 32,
    hidden: Sequence[int] = (128, 128),
    combine: str = "sum",
) -> TokenPairMLP:
    """The toy model on pairs of one-hot tokens (``in_features = 2 x tokens``, as ``modular-addition`` yields;
    without ``in_features``, ``in_channels * input_size**2`` as for ``mlp``).

    ``dim``: embedding size; ``hidden``: decoder widths (each multiplied by ``width``); ``combine``: ``sum``
    (the paper of Liu et al.) or ``concat``.
    """
    n_in = in_features if in_features is not None else in_channels * input_size * input_size
    if n_in < 2 or n_in % 2:
        raise ValueError(f"grokking takes pairs of one-hot tokens: in_features must be even and >= 2, got {n_in!r}")
    if combine not in COMBINE:
        raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
    if int(dim) < 1 or any(int(h) < 1 for h in hidden):
        raise ValueError(f"dim and hidden widths must be positive integers, got dim={dim!r}, hidden={list(hidden)!r}")
    return TokenPairMLP(n_in // 2, int(dim), [scaled(int(h), width) for h in hidden], num_classes, combine)
