"""Fashion-MNIST from its (gzipped) IDX files.

IDX layout: a big-endian header, magic ``2051`` (unsigned bytes, 3 dimensions) for images and
``2049`` (unsigned bytes, 1 dimension) for labels, then one big-endian int32 per dimension,
then the raw bytes.  Files may be gzipped (``*.gz``) or not.

Where the files are looked for: ``--data-dir`` when given; otherwise Debian's location
(:data:`FASHION_MNIST_DIR`, package ``dataset-fashion-mnist``), then the user cache directory
``$XDG_CACHE_HOME/ertoolkit/fashion-mnist`` (``~/.cache/ertoolkit/fashion-mnist``).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ertrain.data._common import check_labels, make_bundle, standardise
from ertrain.data._options import LoaderOptions
from ertrain.data.bundle import DataBundle
from ertrain.data.registry import register_dataset

#: Where Debian's ``dataset-fashion-mnist`` package installs the files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
IMAGE_SIZE = (28, 28)

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
OFFICIAL_URL = "https://github.com/zalandoresearch/fashion-mnist"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ertoolkit/fashion-mnist``, or ``~/.cache/ertoolkit/fashion-mnist``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "ertoolkit" / "fashion-mnist"


def search_dirs(data_dir: str | None) -> list[Path]:
    """The folders searched, in order: ``data_dir`` alone when given, else Debian's, then the cache."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    return [Path(FASHION_MNIST_DIR), cache_dir()]


def _resolve(root: Path, stem: str) -> Path | None:
    """The file ``stem`` (gzipped or not) under ``root``; None when absent or the folder cannot be searched."""
    for candidate in (root / (stem + ".gz"), root / stem):
        try:
            if candidate.is_file():
                return candidate
        except PermissionError:  # an unreadable folder in the search path is skipped like an absent one
            return None
    return None


def find_files(data_dir: str | None) -> tuple[Path, dict[str, Path]]:
    """The first searched folder holding all four files, and their paths; else a ``ValueError`` saying how to
    get them."""
    dirs = search_dirs(data_dir)
    for root in dirs:
        found = {key: _resolve(root, stem) for key, stem in FILES.items()}
        if all(found.values()):
            return root, {k: v for k, v in found.items() if v is not None}
    if data_dir is not None:
        missing = [s for s in FILES.values() if _resolve(dirs[0], s) is None]
        raise ValueError(f"fashion-mnist: missing {', '.join(m + '(.gz)' for m in missing)} in {str(dirs[0])!r}")
    raise ValueError(
        f"fashion-mnist: the four IDX files ({', '.join(s + '.gz' for s in FILES.values())}) are in none of "
        f"{', '.join(repr(str(d)) for d in dirs)}; install Debian's package dataset-fashion-mnist, or download "
        f"the four .gz files from {OFFICIAL_URL} into {str(dirs[-1])!r}, or pass --data-dir"
    )


def _read_bytes(path: Path) -> bytes:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data: bytes = fh.read()
            return data
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{path}: truncated or corrupted gzip data ({exc}); download the file again") from exc
    except OSError as exc:
        raise ValueError(f"{path}: cannot read IDX file ({exc.strerror or exc})") from exc


def read_idx(path: str | Path, magic: int, item_shape: tuple[int, ...] | None = None) -> NDArray[np.uint8]:
    """Read one IDX file of unsigned bytes, checking the magic number, the payload size and, when given,
    the shape ``item_shape`` of one item (every dimension after the first)."""
    path = Path(path)
    raw = _read_bytes(path)
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
    if item_shape is not None and dims[1:] != item_shape:
        want = "x".join(map(str, item_shape)) or "scalars"
        raise ValueError(f"{path}: IDX header gives items of {'x'.join(map(str, dims[1:])) or 'scalars'}, "
                         f"expected {want}")
    expected = math.prod(dims)
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX payload has {len(raw) - header} bytes, dimensions {dims} need {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@dataclass(frozen=True)
class FashionMNISTOptions(LoaderOptions):
    """``limit_train``: keep only the first examples of the training split (at least 1; None keeps all)."""

    dataset = "fashion-mnist"
    limit_train: int | None = None

    def check(self) -> None:
        if self.limit_train is not None and self.limit_train < 1:
            self.fail("limit_train", "a positive integer (or null for the whole split)")


def _files(data_dir: str | None, opts: FashionMNISTOptions) -> tuple[Path, list[Path]]:
    root, paths = find_files(data_dir)
    return root, list(paths.values())


@register_dataset("fashion-mnist", options=FashionMNISTOptions, inputs="image", shape=(1, *IMAGE_SIZE),
                  classes=10, files=_files)
def load_fashion_mnist(data_dir: str | None, opts: FashionMNISTOptions, seed: int) -> DataBundle:
    """Fashion-MNIST: 60k/10k 28x28 grey images, 10 classes; inputs standardised with the training mean/std."""
    root, paths = find_files(data_dir)
    arrays = {}
    for key, path in paths.items():
        is_images = key.endswith("images")
        arrays[key] = read_idx(path, IDX_IMAGES_MAGIC if is_images else IDX_LABELS_MAGIC,
                               IMAGE_SIZE if is_images else ())
    for split in ("train", "test"):
        n_img, n_lab = arrays[f"{split}_images"].shape[0], arrays[f"{split}_labels"].shape[0]
        if n_img != n_lab:
            raise ValueError(f"fashion-mnist: {split} split has {n_img} images but {n_lab} labels in {str(root)!r}")
        if n_img == 0:
            raise ValueError(f"fashion-mnist: {paths[f'{split}_images']} holds no images")
    y_train = check_labels(arrays["train_labels"], 10, paths["train_labels"])
    y_test = check_labels(arrays["test_labels"], 10, paths["test_labels"])
    x_train, x_test = arrays["train_images"][:, None], arrays["test_images"][:, None]
    if opts.limit_train is not None:
        x_train, y_train = x_train[: opts.limit_train], y_train[: opts.limit_train]
    x_train_f, x_test_f = standardise(x_train, x_test, axis=(0, 2, 3))
    return make_bundle(x_train_f, y_train, x_test_f, y_test, num_classes=10, name="fashion-mnist")
