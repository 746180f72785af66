"""Weight reparameterisations (``torch.nn.utils.parametrize``) used by edge-popup and STR."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class _TopK(torch.autograd.Function):
    """Binary mask of the ``k`` largest entries; the gradient passes straight through."""

    @staticmethod
    def forward(ctx: Any, scores: Tensor, k: int) -> Tensor:
        out = torch.zeros_like(scores)
        if k > 0:
            idx = torch.topk(scores.reshape(-1), k, sorted=False).indices
            out.view(-1)[idx] = 1.0
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


class ScoredWeight(nn.Module):
    """Edge-popup: ``w -> w * 1[|s| among the k largest |s| of the candidate entries]``.

    The mask's gradient goes straight through to the scores ``s`` (Ramanujan et al. 2020).
    """

    def __init__(self, scores: Tensor, candidates: Tensor, k: int) -> None:
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.candidates: Tensor
        self.register_buffer("candidates", candidates.bool())
        self.k = int(k)

    def mask(self) -> Tensor:
        s = torch.where(self.candidates, self.scores.abs(), torch.full_like(self.scores, -torch.inf))
        out: Tensor = _TopK.apply(s, self.k)
        return out

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.mask().to(weight.dtype)


class SoftThreshold(nn.Module):
    """STR: ``w -> sign(w) * relu(|w| - sigmoid(s)) * start_mask`` (Kusupati et al. 2020, eq. (3))."""

    def __init__(self, s_init: float, start_mask: Tensor) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.tensor(float(s_init), device=start_mask.device))
        self.start_mask: Tensor
        self.register_buffer("start_mask", start_mask.bool())

    def threshold(self) -> Tensor:
        return torch.sigmoid(self.s)

    def forward(self, weight: Tensor) -> Tensor:
        out = torch.sign(weight) * torch.relu(weight.abs() - self.threshold().to(weight.dtype))
        return out * self.start_mask.to(weight.dtype)
