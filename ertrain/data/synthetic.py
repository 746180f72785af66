"""Synthetic datasets: a teacher network's labels, random CIFAR-shaped images, modular addition."""

from __future__ import annotations

import numpy as np

from ertrain.data import DataBundle, register_dataset
from ertrain.data._common import make_bundle


@register_dataset("teacher")
def load_teacher(
    data_dir: str | None = None,
    *,
    seed: int = 0,
    n_train: int = 4000,
    n_test: int = 1000,
    in_features: int = 20,
    hidden: int = 32,
    num_classes: int = 4,
    task: str = "classification",
    noise: float = 0.0,
) -> DataBundle:
    """Teacher-student data: Gaussian inputs, outputs of a random one-hidden-layer ReLU teacher.

    The teacher ``f(x) = W2 relu(W1 x)`` has He-scaled Gaussian weights drawn from ``seed``.
    ``task="classification"`` labels each input by the argmax of the teacher's ``num_classes`` outputs;
    ``task="regression"`` keeps the outputs (plus Gaussian ``noise``) as float targets.
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    for name, v in (("n_train", n_train), ("n_test", n_test), ("in_features", in_features), ("hidden", hidden)):
        if int(v) < 1:
            raise ValueError(f"{name} must be positive, got {v!r}")
    if num_classes < (2 if task == "classification" else 1):
        raise ValueError(f"num_classes must be at least 2 for classification, got {num_classes!r}")
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((hidden, in_features)) * np.sqrt(2.0 / in_features)
    w2 = rng.standard_normal((num_classes, hidden)) * np.sqrt(2.0 / hidden)
    x = rng.standard_normal((n_train + n_test, in_features))
    out = np.maximum(x @ w1.T, 0.0) @ w2.T
    if task == "classification":
        y = out.argmax(axis=1)
    else:
        y = out + noise * rng.standard_normal(out.shape)
    return make_bundle(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=num_classes, name="teacher", task=task
    )


@register_dataset("synthetic-cifar")
def load_synthetic_cifar(
    data_dir: str | None = None, *, seed: int = 0, n_train: int = 5000, n_test: int = 1000, num_classes: int = 10
) -> DataBundle:
    """Random standard-normal 3x32x32 images with random labels: CIFAR's shapes for speed tests."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, num_classes, n_train + n_test)
    return make_bundle(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:],
        num_classes=num_classes, name="synthetic-cifar", augment="crop_flip",
    )


@register_dataset("modular-addition")
def load_modular_addition(
    data_dir: str | None = None, *, seed: int = 0, modulus: int = 59, train_fraction: float = 0.5
) -> DataBundle:
    """All pairs ``(a, b)`` with label ``(a + b) mod modulus``; input = one-hot(a) ++ one-hot(b).

    The algorithmic task of the grokking experiments (appendix A.16, Table 31); a seeded random
    ``train_fraction`` of the ``modulus**2`` pairs is the training set, the rest the test set.
    """
    if modulus < 2:
        raise ValueError(f"modulus must be at least 2, got {modulus!r}")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    a, b = np.divmod(np.arange(modulus * modulus), modulus)
    eye = np.eye(modulus, dtype=np.float32)
    x = np.concatenate([eye[a], eye[b]], axis=1)
    y = (a + b) % modulus
    perm = np.random.default_rng(seed).permutation(len(y))
    n_train = max(1, min(len(y) - 1, int(round(train_fraction * len(y)))))
    tr, te = perm[:n_train], perm[n_train:]
    return make_bundle(x[tr], y[tr], x[te], y[te], num_classes=modulus, name="modular-addition")
