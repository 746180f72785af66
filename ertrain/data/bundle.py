"""The in-memory dataset every loader returns: :class:`DataBundle`."""

from __future__ import annotations

import dataclasses
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


__all__ = ["TASKS", "DataBundle"]
