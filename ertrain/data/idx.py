"""Fashion-MNIST from its (gzipped) IDX files.

IDX layout: a big-endian header, magic ``2051`` (unsigned bytes, 3 dimensions) for images and
``2049`` (unsigned bytes, 1 dimension) for labels, then one big-endian int32 per dimension,
then the raw bytes.  Files may be gzipped (``*.gz``) or not.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ertrain.data import DataBundle, register_dataset
from ertrain.data._common import check_labels, make_bundle, standardise

#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _resolve(root: Path, stem: str) -> Path:
    for candidate in (root / (stem + ".gz"), root / stem):
        if candidate.exists():
            return candidate
    raise ValueError(f"fashion-mnist: missing {stem}(.gz) in {str(root)!r} (pass --data-dir)")


def read_idx(path: str | Path, magic: int) -> NDArray[np.uint8]:
    """Read one IDX file of unsigned bytes, checking the magic number and the payload size."""
    path = Path(path)
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: IDX magic number {found}, expected {magic}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">i4"))
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX payload has {len(raw) - header} bytes, dimensions {dims} need {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@register_dataset("fashion-mnist")
def load_fashion_mnist(data_dir: str | None, *, seed: int = 0, limit_train: int | None = None) -> DataBundle:
    """Fashion-MNIST: 60k/10k 28x28 grey images, 10 classes; inputs standardised with the training mean/std.

    ``limit_train`` keeps only the first examples of the training split (quick runs).
    """
    root = Path(data_dir if data_dir is not None else FASHION_MNIST_DIR).expanduser()
    arrays = {}
    for key, stem in FILES.items():
        arrays[key] = read_idx(_resolve(root, stem), IDX_IMAGES_MAGIC if key.endswith("images") else IDX_LABELS_MAGIC)
    for split in ("train", "test"):
        n_img, n_lab = arrays[f"{split}_images"].shape[0], arrays[f"{split}_labels"].shape[0]
        if n_img != n_lab:
            raise ValueError(f"fashion-mnist: {split} split has {n_img} images but {n_lab} labels in {str(root)!r}")
    y_train = check_labels(arrays["train_labels"], 10, _resolve(root, FILES["train_labels"]))
    y_test = check_labels(arrays["test_labels"], 10, _resolve(root, FILES["test_labels"]))
    x_train, x_test = arrays["train_images"][:, None], arrays["test_images"][:, None]
    if limit_train is not None:
        x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    x_train_f, x_test_f = standardise(x_train, x_test, axis=(0, 2, 3))
    return make_bundle(x_train_f, y_train, x_test_f, y_test, num_classes=10, name="fashion-mnist")
