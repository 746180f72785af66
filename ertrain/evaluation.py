"""The loss of a batch and the evaluation of a model on a split.

The loss is a *sum* over the batch (cross-entropy with optional label smoothing for classification,
mean squared error per output for regression) so that the loop can divide by the global batch size
and the evaluation can add sums over batches and ranks exactly.

A validation split (``val_fraction`` > 0) is the *last* fraction of the training rows
(:func:`hold_out`; the same rows for every seed, never trained on); :func:`select_epoch` picks the
reported accuracy from the epoch records: the final one, the test accuracy at the best validation
epoch, or the best test accuracy (what the paper's code reported).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
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


def hold_out(data: DataBundle, val_fraction: float) -> tuple[DataBundle, DataBundle | None]:
    """``(training data without its last rows, validation bundle)``: the last ``int(val_fraction * n)`` rows.

    The validation bundle holds those rows as its ``test`` split (so :func:`evaluate` reads them
    with ``split="test"``); ``None`` when ``val_fraction`` is 0.  Graph data has its own split.
    """
    fraction = float(val_fraction)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if fraction == 0.0:
        return data, None
    if data.is_graph:
        raise ValueError(f"val_fraction {val_fraction!r}: graph dataset {data.name!r} has its own validation nodes")
    n = int(data.x_train.shape[0])
    n_val = int(fraction * n)
    if not 0 < n_val < n:
        raise ValueError(f"val_fraction {val_fraction!r} of {n} training rows leaves {n_val} for validation; "
                         "need at least one row on each side")
    train = dataclasses.replace(data, x_train=data.x_train[: n - n_val], y_train=data.y_train[: n - n_val])
    val = dataclasses.replace(data, x_test=data.x_train[n - n_val:], y_test=data.y_train[n - n_val:])
    return train, val


def evaluate_split(
    model: nn.Module, data: DataBundle, val_data: DataBundle | None, split: str, place: Placement,
    *, label_smoothing: float = 0.0,
) -> dict[str, Any]:
    """:func:`evaluate`, reading ``split="val"`` from the held-out bundle when there is one."""
    if split == "val" and val_data is not None:
        return evaluate(model, val_data, "test", place, label_smoothing=label_smoothing)
    return evaluate(model, data, split, place, label_smoothing=label_smoothing)


#: How the reported accuracy is chosen among the epochs (``TrainConfig.select``).
SELECT_KEYS = {"best_val": "val_accuracy", "best_test": "test_accuracy"}


def select_epoch(history: Sequence[dict[str, Any]], select: str, select_from_epoch: int = 0) -> dict[str, Any]:
    """The epoch record whose accuracy a run reports (among the records of the last ``fit``).

    ``final``: the last record; ``best_val``: the record of highest ``val_accuracy``;
    ``best_test``: the record of highest ``test_accuracy`` — both among the last fit's epochs with
    ``fit_epoch >= select_from_epoch`` (the earliest on ties).
    """
    if select != "final" and select not in SELECT_KEYS:
        raise ValueError(f"select must be one of {('final', *SELECT_KEYS)}, got {select!r}")
    if not history:
        raise ValueError("no epoch was trained: nothing to select")
    last_fit = history[-1]["fit"]
    if select == "final":
        return dict(history[-1])
    key = SELECT_KEYS[select]
    eligible = [r for r in history if r["fit"] == last_fit and r["fit_epoch"] >= select_from_epoch]
    if not eligible:
        raise ValueError(f"select_from_epoch {select_from_epoch!r} is past the last epoch "
                         f"{history[-1]['fit_epoch']!r} of the run's last training phase")
    if any(r.get(key) is None for r in eligible):
        raise ValueError(f"select {select!r} needs {key!r} in every epoch record (a validation split for best_val)")
    return dict(max(eligible, key=lambda r: (r[key], -r["fit_epoch"])))


__all__ = ["EVAL_BATCH", "SELECT_KEYS", "SPLITS", "evaluate", "evaluate_split", "hold_out", "loss_sum", "select_epoch"]
