"""Helpers shared by the loaders: numpy arrays in, a normalised :class:`DataBundle` out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ertrain.data.bundle import DataBundle


def standardise(
    x_train: NDArray[Any], x_test: NDArray[Any], axis: tuple[int, ...]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Subtract the training mean and divide by the training std, both taken over ``axis``.

    Images use ``axis=(0, 2, 3)`` (one mean/std per channel); vectors ``axis=(0,)``.
    Constant features (std 0) are only centred.
    """
    x_train = x_train.astype(np.float32)
    x_test = x_test.astype(np.float32)
    mean = x_train.mean(axis=axis, keepdims=True, dtype=np.float64)
    std = x_train.std(axis=axis, keepdims=True, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def check_labels(labels: NDArray[Any], num_classes: int, source: str | Path) -> NDArray[np.int64]:
    """Labels must be integers in ``[0, num_classes)``; raise naming ``source`` otherwise."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"{source}: label {int(bad)} outside [0, {num_classes})")
    return labels.astype(np.int64)


def make_bundle(
    x_train: NDArray[Any],
    y_train: NDArray[Any],
    x_test: NDArray[Any],
    y_test: NDArray[Any],
    *,
    num_classes: int,
    name: str,
    task: str = "classification",
    augment: str | None = None,
) -> DataBundle:
    """Convert already-normalised numpy arrays into torch tensors on the CPU."""
    import torch

    y_dtype = np.int64 if task == "classification" else np.float32
    return DataBundle(
        x_train=torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32)),
        y_train=torch.from_numpy(np.ascontiguousarray(y_train, dtype=y_dtype)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test, dtype=np.float32)),
        y_test=torch.from_numpy(np.ascontiguousarray(y_test, dtype=y_dtype)),
        num_classes=int(num_classes),
        input_shape=tuple(int(s) for s in x_train.shape[1:]),
        task=task,
        augment=augment,
        name=name,
    )


def find_dir(data_dir: str | None, default: str, name: str, marker: str, subdirs: tuple[str, ...] = ()) -> Path:
    """The directory holding ``marker``: ``data_dir`` (or ``default``) itself or one of its ``subdirs``."""
    root = Path(data_dir if data_dir is not None else default).expanduser()
    for candidate in (root, *(root / s for s in subdirs)):
        if (candidate / marker).exists():
            return candidate
    raise ValueError(f"{name}: cannot find {marker} under {str(root)!r} (pass --data-dir)")
