"""Datasets as whole in-memory tensors: a registry by name.

Every loader returns a :class:`DataBundle` holding normalised float inputs and integer labels
(float targets for regression) for the whole train and test splits, so that the training loop can
move them to the device once and batch (and augment) them there.

Registered names: ``fashion-mnist``, ``digits``, ``cifar10``, ``cifar100``, ``tiny-imagenet``,
``cora``, ``synthetic-citation``, ``teacher``, ``synthetic-cifar``, ``modular-addition``, ``tabular``.
Add a dataset with the :func:`register_dataset` decorator.

Example::

    from ertrain.data import load_dataset
    data = load_dataset("digits", None)
    data.x_train.shape, data.num_classes        # (torch.Size([1437, 1, 8, 8]), 10)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: The kinds of supervised task a bundle can describe.
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class DataBundle:
    """A whole dataset in memory.

    ``x_*`` are float32 tensors, already normalised; ``y_*`` are int64 class labels (float32 targets
    of shape ``(n, num_classes)`` when ``task == "regression"``).  ``input_shape`` is the shape of
    one example (``(C, H, W)`` for images, ``(F,)`` for vectors).  ``augment`` names the on-device
    augmentation that suits the data (``"crop_flip"`` for CIFAR-like images) or is None.

    Graph data (``cora``) is transductive: ``x_train is x_test`` holds every node, ``adj`` is the
    normalised sparse adjacency and ``train_index``/``val_index``/``test_index`` select the nodes
    of each split.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    task: str = "classification"
    augment: str | None = None
    name: str = ""
    adj: torch.Tensor | None = None
    train_index: torch.Tensor | None = None
    val_index: torch.Tensor | None = None
    test_index: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.x_train.shape[0] != self.y_train.shape[0]:
            raise ValueError(f"x_train has {self.x_train.shape[0]} rows but y_train has {self.y_train.shape[0]}")
        if self.x_test.shape[0] != self.y_test.shape[0]:
            raise ValueError(f"x_test has {self.x_test.shape[0]} rows but y_test has {self.y_test.shape[0]}")

    @property
    def is_graph(self) -> bool:
        return self.adj is not None

    @property
    def num_train(self) -> int:
        """Number of training examples (training nodes for graphs)."""
        return int(self.train_index.numel()) if self.train_index is not None else int(self.x_train.shape[0])

    @property
    def num_test(self) -> int:
        return int(self.test_index.numel()) if self.test_index is not None else int(self.x_test.shape[0])

    def to(self, device: torch.device | str) -> DataBundle:
        """The same bundle with every tensor on ``device`` (tensors shared between fields stay shared)."""
        moved: dict[int, Any] = {}
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if hasattr(value, "to") and hasattr(value, "device"):
                if id(value) not in moved:
                    moved[id(value)] = value.to(device)
                changes[f.name] = moved[id(value)]
        return dataclasses.replace(self, **changes)


#: Registry: dataset name -> loader ``(data_dir, *, seed, **kw) -> DataBundle``.
DATASETS: dict[str, Callable[..., DataBundle]] = {}


def register_dataset(name: str) -> Callable[[Callable[..., DataBundle]], Callable[..., DataBundle]]:
    """Decorator registering a loader ``f(data_dir: str | None, *, seed: int = 0, **kw) -> DataBundle``."""

    def deco(fn: Callable[..., DataBundle]) -> Callable[..., DataBundle]:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered")
        DATASETS[name] = fn
        return fn

    return deco


def load_dataset(name: str, data_dir: str | None = None, *, seed: int = 0, **kw: Any) -> DataBundle:
    """Load dataset ``name`` (see :data:`DATASETS`) from ``data_dir`` (None: the loader's default).

    ``seed`` fixes the randomness of synthetic sets and of splits that are not part of the
    release; keyword options are the loader's own (e.g. ``n_train`` for ``teacher``).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](data_dir, seed=seed, **kw)


# Loader modules register themselves on import.
from ertrain.data import cifar, cora, idx, sklearn_sets, synthetic, synthetic_graph, tinyimagenet  # noqa: E402, F401

__all__ = ["DATASETS", "TASKS", "DataBundle", "load_dataset", "register_dataset"]
