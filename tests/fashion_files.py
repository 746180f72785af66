"""Tiny Fashion-MNIST folders in the real IDX/gzip format, healthy or damaged, for the data tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file: big-endian magic, one int32 per dimension, then the unsigned bytes."""
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion(root: Path, n_train: int = 12, n_test: int = 5, test_item: tuple[int, int] = (28, 28),
                  seed: int = 0) -> None:
    """The four gzipped IDX files with random pixels and labels."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {
        STEMS[0]: (rng.integers(0, 256, (n_train, 28, 28)), 2051),
        STEMS[1]: (rng.integers(0, 10, n_train), 2049),
        STEMS[2]: (rng.integers(0, 256, (n_test, *test_item)), 2051),
        STEMS[3]: (rng.integers(0, 10, n_test), 2049),
    }
    for stem, (arr, magic) in arrays.items():
        with gzip.open(root / f"{stem}.gz", "wb") as fh:
            fh.write(idx_bytes(arr, magic))


def truncate(path: Path) -> None:
    """Keep the first half of the compressed bytes (the deflate stream ends early)."""
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def corrupt_deflate(path: Path) -> None:
    """Invert 40 compressed bytes right after the 10-byte gzip header."""
    raw = bytearray(path.read_bytes())
    for k in range(20, 60):
        raw[k] ^= 0xFF
    path.write_bytes(bytes(raw))
