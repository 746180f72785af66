"""Two-layer graph convolutional network (Kipf & Welling 2017) for Cora."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ertrain.models._registry import register_model, scaled


class GCN(nn.Module):
    """``softmax-logits = A relu(A X W1) W2`` with dropout; ``A`` is the normalised adjacency.

    ``forward(x, adj)`` accepts ``adj`` as a dense or a torch sparse (COO/CSR) tensor.  The two
    weights are ``nn.Linear`` layers (shape ``(out, in)``), so they are masked like any linear layer.
    """

    def __init__(self, in_features: int, hidden: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.conv1 = nn.Linear(in_features, hidden)
        self.classifier = nn.Linear(hidden, num_classes)
        self.dropout = dropout

    @staticmethod
    def _propagate(adj: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.sparse.mm(adj, h) if adj.is_sparse or adj.layout != torch.strided else adj @ h

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        h = F.dropout(x, self.dropout, self.training)
        h = F.relu(self._propagate(adj, self.conv1(h)))
        h = F.dropout(h, self.dropout, self.training)
        return self._propagate(adj, self.classifier(h))


@register_model("gcn", inputs=("graph",), help="graph convolutional network (Kipf & Welling)")
def gcn(
    *,
    num_classes: int,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    in_features: int | None = None,
    hidden: int = 16,
    dropout: float = 0.5,
) -> GCN:
    """2-layer GCN; ``in_features`` is the node-feature size (1433 for Cora)."""
    if in_features is None:
        raise ValueError("gcn needs in_features (the node-feature size, e.g. 1433 for Cora)")
    return GCN(in_features, scaled(int(hidden), width), num_classes, dropout)
