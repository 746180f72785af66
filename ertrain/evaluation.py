"""The loss of a batch and the evaluation of a model on a split.

The loss is a *sum* over the batch (cross-entropy with optional label smoothing for classification,
mean squared error per output for regression) so that the loop can divide by the global batch size
and the evaluation can add sums over batches and ranks exactly.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ertrain.batches import Placement
from ertrain.data import DataBundle

EVAL_BATCH = 1024
SPLITS = ("train", "test", "val")


def loss_sum(out: torch.Tensor, y: torch.Tensor, task: str, label_smoothing: float = 0.0) -> torch.Tensor:
    """Summed loss of a batch (float32): cross-entropy for ``classification``, per-output MSE for ``regression``."""
    out = out.float()
    if task == "classification":
        return F.cross_entropy(out, y, reduction="sum", label_smoothing=label_smoothing)
    return F.mse_loss(out, y, reduction="sum") / max(1, out.shape[-1] if out.ndim > 1 else 1)


def _graph_sums(model: nn.Module, data: DataBundle, split: str, place: Placement, smoothing: float) -> torch.Tensor:
    index = {"train": data.train_index, "val": data.val_index, "test": data.test_index}[split]
    if index is None:
        raise ValueError(f"dataset {data.name!r} has no {split!r} split")
    with place.autocast():
        out = model(data.x_train, data.adj)
    out, y = out[index].float(), data.y_train[index]
    return torch.stack([loss_sum(out, y, data.task, smoothing).double(), (out.argmax(-1) == y).sum().double(),
                        torch.tensor(float(y.shape[0]), device=place.device, dtype=torch.float64)])


def _batched_sums(model: nn.Module, data: DataBundle, split: str, place: Placement, smoothing: float) -> torch.Tensor:
    if split == "val":
        raise ValueError(f"dataset {data.name!r} has no 'val' split")
    x_all, y_all = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
    lo, hi = place.share(int(x_all.shape[0]))
    sums = torch.zeros(3, device=place.device, dtype=torch.float64)
    for start in range(lo, hi, EVAL_BATCH):
        x = place.layout(x_all[start:min(hi, start + EVAL_BATCH)])
        y = y_all[start:min(hi, start + EVAL_BATCH)]
        with place.autocast():
            out = model(x)
        out = out.float()
        sums[0] += loss_sum(out, y, data.task, smoothing).double()
        if data.task == "classification":
            sums[1] += (out.argmax(-1) == y).sum()
        sums[2] += y.shape[0]
    return sums


@torch.no_grad()
def evaluate(
    model: nn.Module, data: DataBundle, split: str, place: Placement, *, label_smoothing: float = 0.0
) -> dict[str, Any]:
    """Mean loss and accuracy (fraction in [0, 1]; None for regression) of ``model`` on ``split``.

    ``split`` is ``"test"`` or ``"train"`` (un-augmented), or ``"val"`` for graph data.  Under DDP
    each rank evaluates a slice and the sums are all-reduced.  The model is left in eval mode.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train', 'test' or 'val', got {split!r}")
    model.eval()
    if data.is_graph:
        sums = _graph_sums(model, data, split, place, label_smoothing)
    else:
        sums = _batched_sums(model, data, split, place, label_smoothing)
    sums = place.all_reduce(sums)
    n = max(1.0, float(sums[2]))
    return {
        "loss": float(sums[0]) / n,
        "accuracy": float(sums[1]) / n if data.task == "classification" else None,
        "n": int(sums[2]),
    }


__all__ = ["EVAL_BATCH", "SPLITS", "evaluate", "loss_sum"]
