"""Where a step runs and which examples it sees: placement, seeds and the training batches of an epoch.

* :class:`Placement` — device, rank and world size, bf16 autocast and ``channels_last``: the few
  facts the loop, the batches and the evaluation share.
* :func:`train_batches` — one epoch's shuffled global batches, this rank's contiguous slice of each,
  augmented on the device (random crop + flip, drawn for the whole global batch so every rank and a
  single process see the same augmentation).  Shuffling and augmentation use CPU generators seeded
  by ``(seed, epoch, stream)``, so an epoch's batches do not depend on what ran before it.
* :func:`graph_batch` — the full-batch step of transductive graph data.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ertrain.data import DataBundle
from ertrain.data.augment import CROP_FLIP_PADDING, crop_flip_params, crop_flip_with

AUGMENT_PADDING = 4


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (e.g. ``(seed, epoch, stream)``) with NumPy's SeedSequence."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32).view(np.uint64)[0]
               >> np.uint64(1))


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """CPU generator of an epoch's shuffling (stream 0) and augmentation (stream 1)."""
    return torch.Generator().manual_seed(derive_seed(seed, epoch, 2 + stream))


@contextlib.contextmanager
def epoch_rng(device: torch.device, seed: int, epoch: int) -> Iterator[None]:
    """Seed torch's global RNG (dropout) from ``(seed, epoch)`` inside a fork that restores it afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(seed, epoch, 4))
        yield


def rank_slice(size: int, rank: int, world: int) -> tuple[int, int]:
    """Bounds of rank's contiguous share of ``size`` items (as ``torch.tensor_split`` splits them)."""
    q, r = divmod(size, world)
    lo = rank * q + min(rank, r)
    return lo, lo + q + (1 if rank < r else 0)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> ``cuda:<LOCAL_RANK>`` when CUDA is available, else CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available")
    return dev


@dataclass(frozen=True)
class Placement:
    """Device, process group position and numeric format of the steps."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp: bool = False
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast when ``amp`` (float32 otherwise; the same code on every device)."""
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory format of the model (``channels_last`` for images on CUDA)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def share(self, size: int) -> tuple[int, int]:
        """This rank's slice of ``size`` items."""
        return rank_slice(size, self.rank, self.world_size)

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the ranks in place (no-op in a single process)."""
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
        return t


def train_batches(
    data: DataBundle, batch_size: int, place: Placement, *, seed: int, epoch: int, augment: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """This rank's share of each shuffled (and augmented) global batch: ``(x, y, global_batch_size)``."""
    n = data.num_train
    perm = torch.randperm(n, generator=epoch_generator(seed, epoch, 0)).to(place.device)
    if data.train_index is not None:
        perm = data.train_index[perm]
    aug_gen = epoch_generator(seed, epoch, 1)
    pad_mode = CROP_FLIP_PADDING.get(data.augment or "")
    augment = augment and pad_mode is not None
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        size = int(idx.numel())
        lo, hi = place.share(size)
        x = data.x_train[idx[lo:hi]]
        y = data.y_train[idx[lo:hi]]
        if augment:
            offsets, flips = crop_flip_params(size, AUGMENT_PADDING, aug_gen)
            x = crop_flip_with(x, offsets[:, lo:hi], flips[lo:hi], AUGMENT_PADDING, pad_mode or "constant")
        yield place.layout(x), y, size


def graph_batch(data: DataBundle, place: Placement) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """The one full batch of graph data: ``(features, labels of this rank's nodes, global size, node indices)``."""
    if data.train_index is None:
        raise ValueError(f"graph dataset {data.name!r} has no training node index")
    idx = data.train_index
    lo, hi = place.share(int(idx.numel()))
    return data.x_train, data.y_train[idx[lo:hi]], int(idx.numel()), idx[lo:hi]


def step_batches(
    data: DataBundle, place: Placement, batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor, int]]]
) -> Iterator[tuple[torch.Tensor, torch.Tensor, int, torch.Tensor | None]]:
    """The batches of one epoch as ``(x, y, global_batch_size, nodes)``: ``batches()`` with ``nodes`` None, or
    the one full batch of graph data with the node indices of this rank."""
    if data.is_graph:
        yield graph_batch(data, place)
        return
    for x, y, size in batches():
        yield x, y, size, None


def steps_per_epoch(data: DataBundle, batch_size: int) -> int:
    """Optimizer steps per epoch: one per batch, one for full-batch graph data."""
    if data.is_graph:
        return 1
    return max(1, -(-data.num_train // batch_size))


__all__ = [
    "AUGMENT_PADDING", "Placement", "derive_seed", "epoch_generator", "epoch_rng", "graph_batch", "rank_slice",
    "resolve_device", "step_batches", "steps_per_epoch", "train_batches",
]
