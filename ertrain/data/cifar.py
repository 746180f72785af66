"""CIFAR-10 and CIFAR-100 from their official binary releases.

CIFAR-10 (``cifar-10-batches-bin``): ``data_batch_1.bin`` ... ``data_batch_5.bin`` and
``test_batch.bin``, each 10000 records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32).
CIFAR-100 (``cifar-100-binary``): ``train.bin`` (50000) and ``test.bin`` (10000), each record
1 coarse label byte + 1 fine label byte + 3072 pixel bytes; the fine label is the class.

Inputs are standardised with the training set's per-channel mean and std and augmented by random
crops of the zero-padded image and flips.  CIFAR-10's options reproduce the paper's code instead:
``normalise="er_dst"``: ``(x / 255 - mean) / std`` with ``mean = (0.4914, 0.4822, 0.4465)``,
``std = (0.2023, 0.1994, 0.2010)`` (``ER_DST/sparselearning/utils.py:30``); ``"half"``:
``(x / 255 - 0.5) / 0.5`` (``ER_SLT/cifar_main.py:202``); ``pad="reflect"``: crops of the
reflect-padded image (``ER_DST/sparselearning/utils.py:36``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ertrain.data._common import check_labels, find_dir, make_bundle, standardise
from ertrain.data._options import LoaderOptions
from ertrain.data.bundle import DataBundle
from ertrain.data.registry import register_dataset

IMAGE_SHAPE = (3, 32, 32)
IMAGE_BYTES = 3 * 32 * 32
CIFAR10_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
CIFAR100_FILES = ("train.bin", "test.bin")


def read_cifar_bin(
    path: Path, label_bytes: int, num_classes: int, records: int | None = None
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Read one CIFAR binary file; return images ``(n, 3, 32, 32)`` uint8 and the last label byte."""
    record = label_bytes + IMAGE_BYTES
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read CIFAR binary file ({exc.strerror or exc})") from exc
    if raw.size == 0 or raw.size % record:
        raise ValueError(f"{path}: size {raw.size} bytes is not a positive multiple of the {record}-byte record")
    rows = raw.reshape(-1, record)
    if records is not None and rows.shape[0] != records:
        raise ValueError(f"{path}: {rows.shape[0]} records, expected {records}")
    labels = check_labels(rows[:, label_bytes - 1], num_classes, path)
    if label_bytes == 2:
        check_labels(rows[:, 0], 20, path)  # coarse labels
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32), labels


#: Fixed per-channel ``(mean, std)`` of pixel values in [0, 1] by ``normalise`` (``standardise``: the training set's).
NORMALISATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "standardise": None,
    "er_dst": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
#: Crop padding by ``pad``: the augmentation the bundle names (``ertrain.data.augment.CROP_FLIP_PADDING``).
PADS = {"zeros": "crop_flip", "reflect": "crop_flip_reflect"}


def _normalise(x: NDArray[np.uint8], how: str) -> NDArray[np.float32]:
    stats = NORMALISATIONS[how]
    assert stats is not None
    mean = np.asarray(stats[0], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(stats[1], dtype=np.float32).reshape(1, 3, 1, 1)
    return ((x.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


def _bundle(
    train: list[tuple[NDArray[np.uint8], NDArray[np.int64]]],
    test: tuple[NDArray[np.uint8], NDArray[np.int64]],
    num_classes: int,
    name: str,
    normalise: str = "standardise",
    pad: str = "zeros",
) -> DataBundle:
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    if NORMALISATIONS[normalise] is None:
        xs_train, xs_test = standardise(x_train, test[0], axis=(0, 2, 3))
    else:
        xs_train, xs_test = _normalise(x_train, normalise), _normalise(test[0], normalise)
    return make_bundle(xs_train, y_train, xs_test, test[1], num_classes=num_classes, name=name, augment=PADS[pad])


@dataclass(frozen=True)
class Cifar10Options(LoaderOptions):
    """``check_counts``: require the official record counts (10000 per file); ``normalise``: ``standardise``
    (training-set statistics), ``er_dst`` or ``half`` (the paper's code); ``pad``: crop padding, ``zeros``
    or ``reflect`` (see the module docstring)."""

    dataset = "cifar10"
    check_counts: bool = True
    normalise: str = "standardise"
    pad: str = "zeros"

    def check(self) -> None:
        if self.normalise not in NORMALISATIONS:
            self.fail("normalise", f"one of {sorted(NORMALISATIONS)}")
        if self.pad not in PADS:
            self.fail("pad", f"one of {sorted(PADS)}")


@dataclass(frozen=True)
class Cifar100Options(LoaderOptions):
    """``check_counts``: require the official record counts (50000 train, 10000 test)."""

    dataset = "cifar100"
    check_counts: bool = True


def _cifar10_root(data_dir: str | None) -> Path:
    return find_dir(data_dir, "data", "cifar10", "test_batch.bin", ("cifar-10-batches-bin",))


def _cifar100_root(data_dir: str | None) -> Path:
    return find_dir(data_dir, "data", "cifar100", "test.bin", ("cifar-100-binary",))


def _cifar10_files(data_dir: str | None, opts: Cifar10Options) -> tuple[Path, list[Path]]:
    root = _cifar10_root(data_dir)
    return root, [root / f for f in CIFAR10_FILES]


def _cifar100_files(data_dir: str | None, opts: Cifar100Options) -> tuple[Path, list[Path]]:
    root = _cifar100_root(data_dir)
    return root, [root / f for f in CIFAR100_FILES]


@register_dataset("cifar10", options=Cifar10Options, inputs="image", shape=IMAGE_SHAPE, files=_cifar10_files)
def load_cifar10(data_dir: str | None, opts: Cifar10Options, seed: int) -> DataBundle:
    """CIFAR-10 (50000/10000 images, 10 classes) from ``data_dir`` or its ``cifar-10-batches-bin`` folder."""
    root = _cifar10_root(data_dir)
    n = 10000 if opts.check_counts else None
    train = [read_cifar_bin(root / f"data_batch_{i}.bin", 1, 10, n) for i in range(1, 6)]
    return _bundle(train, read_cifar_bin(root / "test_batch.bin", 1, 10, n), 10, "cifar10", opts.normalise, opts.pad)


@register_dataset("cifar100", options=Cifar100Options, inputs="image", shape=IMAGE_SHAPE, files=_cifar100_files)
def load_cifar100(data_dir: str | None, opts: Cifar100Options, seed: int) -> DataBundle:
    """CIFAR-100 (50000/10000 images, 100 fine classes) from ``data_dir`` or its ``cifar-100-binary`` folder."""
    root = _cifar100_root(data_dir)
    train = read_cifar_bin(root / "train.bin", 2, 100, 50000 if opts.check_counts else None)
    test = read_cifar_bin(root / "test.bin", 2, 100, 10000 if opts.check_counts else None)
    return _bundle([train], test, 100, "cifar100")
