"""The usual CIFAR training loop, as most sparse-training repositories write it: the baseline of
``bench_gpu_training.py``.

* Images are kept as uint8 ``(N, 32, 32, 3)`` arrays on the host; a ``Dataset`` augments one image
  at a time in ``__getitem__`` (zero-pad 4, random 32x32 crop, random horizontal flip, then
  to-float, divide by 255 and normalise per channel: the order of torchvision's ``RandomCrop``,
  ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``), and a ``DataLoader`` collates the batch.
* Each batch is copied to the device, the model runs in float32 in the default memory format, and
  the masks are applied by ``torch.nn.utils.prune.custom_from_mask`` (a forward pre-hook that
  recomputes ``weight = weight_orig * weight_mask`` before every forward).
* Per batch the running loss and the number of correct predictions are read back with ``.item()``.

    from reference_loop import make_images, make_loader, make_reference_model, reference_epoch
    images, labels = make_images(512, seed=0)
    loader = make_loader(images, labels, batch_size=128, num_workers=0, seed=0)
    model = make_reference_model("resnet20", masks, num_classes=10)
    reference_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.1), "cpu")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune
from torch.utils.data import DataLoader, Dataset, get_worker_info

from ertrain.models import build_model

#: CIFAR-10's per-channel mean and standard deviation (of pixel values in [0, 1]).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def make_images(n: int, seed: int, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random uint8 CIFAR-shaped images ``(n, 32, 32, 3)`` and int64 labels in ``[0, num_classes)``."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n!r}")
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=n).astype(np.int64)
    return images, labels


class PerImageAugmented(Dataset[tuple[torch.Tensor, int]]):
    """One augmented, normalised ``(3, 32, 32)`` float image per ``__getitem__`` (see the module docstring).

    Random offsets and flips come from a ``numpy.random.Generator`` seeded with ``seed`` (and the
    DataLoader worker id in a worker process), so runs are reproducible for a fixed worker count.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int, padding: int = 4) -> None:
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
        self.images = images
        self.labels = labels
        self.padding = padding
        self.seed = seed
        self.mean = torch.tensor(CIFAR_MEAN).view(3, 1, 1)
        self.std = torch.tensor(CIFAR_STD).view(3, 1, 1)
        self._rng: np.random.Generator | None = None
        self._rng_worker: int | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        worker = -1 if info is None else info.id
        if self._rng is None or self._rng_worker != worker:
            self._rng = np.random.default_rng([self.seed, worker + 1])
            self._rng_worker = worker
        return self._rng

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rng = self._generator()
        img = self.images[i]
        h, w = img.shape[:2]
        p = self.padding
        padded = np.pad(img, ((p, p), (p, p), (0, 0)))
        top, left = rng.integers(0, 2 * p + 1, size=2)
        crop = padded[top:top + h, left:left + w]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1).float().div_(255.0)
        return (x - self.mean) / self.std, int(self.labels[i])


def make_loader(
    images: np.ndarray, labels: np.ndarray, *, batch_size: int, num_workers: int, seed: int
) -> DataLoader[tuple[torch.Tensor, int]]:
    """A shuffling DataLoader over :class:`PerImageAugmented` (shuffle order from a seeded generator)."""
    return DataLoader(
        PerImageAugmented(images, labels, seed),
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
    )


def make_reference_model(name: str, masks: Mapping[str, torch.Tensor] | None, **build_kwargs: Any) -> nn.Module:
    """``build_model(name, **build_kwargs)`` with ``prune.custom_from_mask`` on every layer named in ``masks``."""
    model = build_model(name, **build_kwargs)
    if masks:
        modules = dict(model.named_modules())
        for layer, mask in masks.items():
            prune.custom_from_mask(modules[layer], "weight", mask.detach().cpu())
    return model


def reference_epoch(
    model: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device | str,
) -> dict[str, float]:
    """One training epoch in the usual style over ``loader`` (any iterable of ``(inputs, targets)`` batches).

    Returns the mean loss, the accuracy and the number of images seen.
    """
    model.train()
    criterion = nn.CrossEntropyLoss()
    loss_sum, correct, total = 0.0, 0, 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * targets.size(0)
        correct += int(outputs.argmax(1).eq(targets).sum().item())
        total += int(targets.size(0))
    return {"loss": loss_sum / max(1, total), "accuracy": correct / max(1, total), "images": float(total)}
