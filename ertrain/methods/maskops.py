"""Pure mask functions shared by the methods: top-k, magnitude pruning, drop and regrowth.

Every function takes tensors and returns new bool masks; nothing here touches a model or a trainer.
Scores are compared in float64 and ties are broken by position where the choice must be exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ertrain.scores import apportion, global_topk_masks

SCOPE_CHOICES = ("global", "layerwise")


def topk_among(score: Tensor, candidates: Tensor, k: int, *, largest: bool = True) -> Tensor:
    """Flat indices of the ``k`` candidates (``True`` in ``candidates``) with the largest (or smallest) ``score``."""
    fill = -math.inf if largest else math.inf
    inf = torch.tensor(fill, dtype=torch.float64, device=candidates.device)
    flat = torch.where(candidates.reshape(-1).bool(), score.detach().reshape(-1).double(), inf)
    return torch.topk(flat, k, largest=largest, sorted=False).indices


def regrow_count(mask: Tensor, fraction: float) -> int:
    """``round(fraction * nnz)``, at most the number of pruned entries: how many to drop and to grow."""
    nnz = int(mask.sum())
    return min(int(round(fraction * nnz)), mask.numel() - nnz)


def drop_and_grow(mask: Tensor, k: int, drop_score: Tensor, grow_score: Tensor) -> tuple[Tensor, int]:
    """Drop the ``k`` kept entries of smallest ``drop_score``, then grow the ``k`` entries of largest
    ``grow_score`` among those not kept after the drop (the RiGL / SET update, one layer).

    Returns the new mask (same number of kept entries) and the number of grown entries that were
    not kept before (an entry dropped and grown back is no change).
    """
    flat_mask = mask.reshape(-1).bool()
    if k <= 0:
        return mask.bool().clone(), 0
    after_drop = flat_mask.clone()
    after_drop[topk_among(drop_score, flat_mask, k, largest=False)] = False
    new = after_drop.clone()
    new[topk_among(grow_score, ~after_drop, k, largest=True)] = True
    return new.reshape(mask.shape), int((new & ~flat_mask).sum())


def update_mask(
    weight: Tensor,
    mask: Tensor,
    fraction: float,
    *,
    grad: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, int]:
    """One drop-and-grow update of one layer by RiGL's (``grad`` given) or SET's (random) rule.

    Drops ``round(fraction * nnz)`` kept entries of smallest ``|weight|`` and grows as many among
    the entries not kept after the drop: by largest ``|grad|``, else uniformly at random from
    ``generator``.  Returns the new mask and the number of changed connections.
    """
    k = regrow_count(mask, fraction)
    if k <= 0:
        return mask.bool().clone(), 0
    grow = grad.detach().abs() if grad is not None else random_scores(mask, generator)
    return drop_and_grow(mask, k, weight.detach().abs(), grow)


def random_scores(mask: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniform float64 scores, one per entry of ``mask``, drawn on the CPU from ``generator`` (same on every device)."""
    return torch.rand(mask.numel(), generator=generator, dtype=torch.float64).to(mask.device).reshape(mask.shape)


def layerwise_topk(scores: Sequence[Tensor], masks: Sequence[Tensor], counts: Sequence[int]) -> list[Tensor]:
    """Per layer, the ``counts[l]`` kept entries of largest score (ties by position)."""
    out = []
    for s, m, c in zip(scores, masks, counts, strict=True):
        new = torch.zeros_like(m, dtype=torch.bool)
        if c > 0:
            flat = torch.where(m.reshape(-1).bool(), s.reshape(-1).double(),
                               torch.tensor(-math.inf, dtype=torch.float64, device=s.device))
            idx = torch.sort(flat, descending=True, stable=True).indices[: int(c)]
            new.view(-1)[idx] = True
        out.append(new)
    return out


def magnitude_prune(weights: Sequence[Tensor], masks: Sequence[Tensor], keep: int, scope: str) -> list[Tensor]:
    """Masks keeping exactly ``keep`` of the currently kept weights: those of largest ``|w|``.

    ``scope="global"`` ranks all layers together; ``"layerwise"`` keeps the same fraction of every
    layer (counts apportioned by largest remainders so the total is exact).
    """
    current = sum(int(m.sum()) for m in masks)
    if not 0 < keep <= current:
        raise ValueError(f"keep must lie in (0, {current}], got {keep}")
    scores = [w.detach().abs() for w in weights]
    if scope == "global":
        return global_topk_masks(scores, keep / current, masks=list(masks))
    if scope == "layerwise":
        nnz = np.array([int(m.sum()) for m in masks])
        return layerwise_topk(scores, masks, [int(c) for c in apportion(keep, nnz, nnz)])
    raise ValueError(f"scope must be one of {SCOPE_CHOICES}, got {scope!r}")


def mask_difference(a: Sequence[Tensor], b: Sequence[Tensor]) -> int:
    """How many entries are kept in the masks ``a`` but not in ``b`` (layer by layer, same order)."""
    return sum(int((x & ~y).sum()) for x, y in zip(a, b, strict=True))


def densities_of(masks: Sequence[Tensor]) -> np.ndarray:
    """Density of each mask."""
    return np.array([float(m.sum()) / m.numel() for m in masks], dtype=np.float64)


def overall(masks: Sequence[Tensor]) -> float:
    """Kept entries over all entries of ``masks``."""
    return float(sum(int(m.sum()) for m in masks)) / float(sum(m.numel() for m in masks))


__all__ = [
    "SCOPE_CHOICES", "densities_of", "drop_and_grow", "layerwise_topk", "magnitude_prune", "mask_difference",
    "overall", "random_scores", "regrow_count", "topk_among", "update_mask",
]
