"""Synthetic datasets: a teacher network's labels, random CIFAR-shaped images, modular addition."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ertrain.data._common import make_bundle
from ertrain.data._options import LoaderOptions
from ertrain.data.bundle import DataBundle
from ertrain.data.registry import register_dataset


@dataclass(frozen=True)
class TeacherOptions(LoaderOptions):
    """Sizes of the teacher-student set (see :func:`load_teacher`)."""

    dataset = "teacher"
    n_train: int = 4000
    n_test: int = 1000
    in_features: int = 20
    hidden: int = 32
    num_classes: int = 4
    task: str = "classification"
    noise: float = 0.0

    def check(self) -> None:
        self.require_positive("n_train", "n_test", "in_features", "hidden")
        if self.task not in ("classification", "regression"):
            self.fail("task", "'classification' or 'regression'")
        if self.num_classes < (2 if self.task == "classification" else 1):
            self.fail("num_classes", f"at least {2 if self.task == 'classification' else 1} for {self.task}")
        if self.noise < 0:
            self.fail("noise", "non-negative")


def _teacher_bytes(o: TeacherOptions) -> float:
    """float64 inputs and hidden activations, float32 copies of inputs and outputs."""
    n = float(o.n_train) + float(o.n_test)
    return n * (12.0 * o.in_features + 16.0 * o.hidden + 12.0 * o.num_classes)


@register_dataset("teacher", options=TeacherOptions, inputs="flat", shape=lambda o: (o.in_features,),
                  memory=_teacher_bytes)
def load_teacher(data_dir: str | None, opts: TeacherOptions, seed: int) -> DataBundle:
    """Teacher-student data: Gaussian inputs, outputs of a random one-hidden-layer ReLU teacher.

    The teacher ``f(x) = W2 relu(W1 x)`` has He-scaled Gaussian weights drawn from ``seed``.
    ``task="classification"`` labels each input by the argmax of the teacher's ``num_classes`` outputs;
    ``task="regression"`` keeps the outputs (plus Gaussian ``noise``) as float targets.
    """
    n_train, n_test, in_features, hidden = opts.n_train, opts.n_test, opts.in_features, opts.hidden
    num_classes, task = opts.num_classes, opts.task
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((hidden, in_features)) * np.sqrt(2.0 / in_features)
    w2 = rng.standard_normal((num_classes, hidden)) * np.sqrt(2.0 / hidden)
    x = rng.standard_normal((n_train + n_test, in_features))
    out = np.maximum(x @ w1.T, 0.0) @ w2.T
    if task == "classification":
        y = out.argmax(axis=1)
    else:
        y = out + opts.noise * rng.standard_normal(out.shape)
    return make_bundle(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=num_classes, name="teacher", task=task
    )


@dataclass(frozen=True)
class SyntheticCifarOptions(LoaderOptions):
    """Numbers of random images and of classes."""

    dataset = "synthetic-cifar"
    n_train: int = 5000
    n_test: int = 1000
    num_classes: int = 10

    def check(self) -> None:
        self.require_positive("n_train", "n_test")
        if self.num_classes < 2:
            self.fail("num_classes", "at least 2")


def _synthetic_cifar_bytes(o: SyntheticCifarOptions) -> float:
    """The float32 images, drawn once and copied per split."""
    return (float(o.n_train) + float(o.n_test)) * 3 * 32 * 32 * 4 * 2


@register_dataset("synthetic-cifar", options=SyntheticCifarOptions, inputs="image", shape=(3, 32, 32),
                  memory=_synthetic_cifar_bytes)
def load_synthetic_cifar(data_dir: str | None, opts: SyntheticCifarOptions, seed: int) -> DataBundle:
    """Random standard-normal 3x32x32 images with random labels: CIFAR's shapes for speed tests."""
    n_train, n_test, num_classes = opts.n_train, opts.n_test, opts.num_classes
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_test, 3, 32, 32), dtype=np.float32)
    y = rng.integers(0, num_classes, n_train + n_test)
    return make_bundle(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:],
        num_classes=num_classes, name="synthetic-cifar", augment="crop_flip",
    )


@dataclass(frozen=True)
class ModularAdditionOptions(LoaderOptions):
    """``modulus`` (at least 2) and the share ``train_fraction`` in (0, 1) of pairs used for training."""

    dataset = "modular-addition"
    modulus: int = 59
    train_fraction: float = 0.5

    def check(self) -> None:
        if self.modulus < 2:
            self.fail("modulus", "at least 2")
        if not 0.0 < self.train_fraction < 1.0:
            self.fail("train_fraction", "in (0, 1)")


def _modular_bytes(o: ModularAdditionOptions) -> float:
    """``modulus**2`` one-hot rows of ``2 modulus`` float32: the two halves, their concatenation, a margin."""
    return float(o.modulus) ** 3 * 4 * 5


@register_dataset("modular-addition", options=ModularAdditionOptions, inputs="flat",
                  shape=lambda o: (2 * o.modulus,), memory=_modular_bytes)
def load_modular_addition(data_dir: str | None, opts: ModularAdditionOptions, seed: int) -> DataBundle:
    """All pairs ``(a, b)`` with label ``(a + b) mod modulus``; input = one-hot(a) ++ one-hot(b).

    The algorithmic task of the grokking experiments (appendix A.16, Table 31); a seeded random
    ``train_fraction`` of the ``modulus**2`` pairs is the training set, the rest the test set.
    """
    modulus, train_fraction = opts.modulus, opts.train_fraction
    a, b = np.divmod(np.arange(modulus * modulus), modulus)
    eye = np.eye(modulus, dtype=np.float32)
    x = np.concatenate([eye[a], eye[b]], axis=1)
    y = (a + b) % modulus
    perm = np.random.default_rng(seed).permutation(len(y))
    n_train = max(1, min(len(y) - 1, int(round(train_fraction * len(y)))))
    tr, te = perm[:n_train], perm[n_train:]
    return make_bundle(x[tr], y[tr], x[te], y[te], num_classes=modulus, name="modular-addition")
