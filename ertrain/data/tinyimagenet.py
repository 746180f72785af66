"""Tiny ImageNet (200 classes, 64x64 RGB) from its folder layout.

``wnids.txt`` lists the 200 class ids (one per line, defining the label order);
``train/<wnid>/images/*.JPEG`` hold the training images; ``val/val_annotations.txt`` maps each
``val/images/<file>`` to its wnid (tab separated).  As in the paper, the official validation set is
the test set.  Images are decoded with Pillow (grey images are converted to RGB).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ertrain.data._common import find_dir, make_bundle, standardise
from ertrain.data._options import LoaderOptions
from ertrain.data.bundle import DataBundle
from ertrain.data.registry import register_dataset

SIZE = 64


def _read_image(path: Path) -> NDArray[np.uint8]:
    from PIL import Image

    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except OSError as exc:
        raise ValueError(f"{path}: cannot decode image ({exc})") from exc
    if arr.shape != (SIZE, SIZE, 3):
        raise ValueError(f"{path}: image of shape {arr.shape}, expected ({SIZE}, {SIZE}, 3)")
    return arr.transpose(2, 0, 1)


def _read_wnids(root: Path) -> list[str]:
    path = root / "wnids.txt"
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the class list ({exc})") from exc
    wnids = [line.strip() for line in text.splitlines() if line.strip()]
    if len(set(wnids)) != len(wnids) or not wnids:
        raise ValueError(f"{path}: expected distinct class ids, got {len(wnids)} lines ({len(set(wnids))} distinct)")
    return wnids


@dataclass(frozen=True)
class TinyImageNetOptions(LoaderOptions):
    """``expected_classes``: the number of classes ``wnids.txt`` must list (None: any); ``cache``: keep the
    decoded arrays next to the data (see :func:`load_tiny_imagenet`)."""

    dataset = "tiny-imagenet"
    expected_classes: int | None = 200
    cache: bool = True

    def check(self) -> None:
        if self.expected_classes is not None and self.expected_classes < 1:
            self.fail("expected_classes", "a positive integer (or null)")


def _root(data_dir: str | None) -> Path:
    return find_dir(data_dir, "data", "tiny-imagenet", "wnids.txt", ("tiny-imagenet-200",))


def _files(data_dir: str | None, opts: TinyImageNetOptions) -> tuple[Path, list[Path]]:
    root = _root(data_dir)
    listed = [root / "wnids.txt", root / "val" / "val_annotations.txt"]
    images = list(root.glob("train/*/images/*.JPEG")) + list(root.glob("val/images/*.JPEG"))
    return root, [p for p in listed if p.exists()] + images


@register_dataset("tiny-imagenet", options=TinyImageNetOptions, inputs="image", shape=(3, SIZE, SIZE), files=_files)
def load_tiny_imagenet(data_dir: str | None, opts: TinyImageNetOptions, seed: int) -> DataBundle:
    """Tiny ImageNet from ``data_dir`` (or its ``tiny-imagenet-200`` folder); the val split is the test set.

    Decoding the 110k JPEGs takes minutes, so with ``cache=True`` the decoded uint8 arrays are kept in
    ``ertrain-cache-<key>.npz`` next to ``wnids.txt`` (where writable; plain arrays, no pickle).  The key
    hashes the names and sizes of every image and annotation file, so any change to them rebuilds it.
    """
    root = _root(data_dir)
    wnids = _read_wnids(root)
    if opts.expected_classes is not None and len(wnids) != opts.expected_classes:
        raise ValueError(f"{root / 'wnids.txt'}: {len(wnids)} classes, expected {opts.expected_classes}")
    cache_path = root / f"ertrain-cache-{_cache_key(root, wnids)}.npz" if opts.cache else None
    if cache_path is not None and cache_path.exists():
        try:
            with np.load(cache_path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        except (OSError, ValueError, KeyError):
            arrays = {}
        if arrays:
            return _bundle(arrays, len(wnids))
    arrays = _decode(root, wnids)
    if cache_path is not None:
        try:
            tmp = cache_path.with_name(cache_path.name + ".tmp.npz")
            np.savez(tmp, x_train=arrays["x_train"], y_train=arrays["y_train"], x_test=arrays["x_test"],
                     y_test=arrays["y_test"])
            tmp.replace(cache_path)
        except OSError:
            pass  # read-only data directory: decode again next time
    return _bundle(arrays, len(wnids))


def _cache_key(root: Path, wnids: list[str]) -> str:
    h = hashlib.sha256("\n".join(wnids).encode())
    for path in sorted(root.glob("train/*/images/*.JPEG")) + [root / "val" / "val_annotations.txt"]:
        size = path.stat().st_size if path.exists() else -1
        h.update(f"{path.relative_to(root)}:{size}\n".encode())
    return h.hexdigest()[:16]


def _bundle(arrays: dict[str, NDArray[Any]], num_classes: int) -> DataBundle:
    x_train, x_test = standardise(arrays["x_train"], arrays["x_test"], axis=(0, 2, 3))
    return make_bundle(x_train, arrays["y_train"], x_test, arrays["y_test"],
                       num_classes=num_classes, name="tiny-imagenet", augment="crop_flip")


def _decode(root: Path, wnids: list[str]) -> dict[str, NDArray[Any]]:
    index = {w: i for i, w in enumerate(wnids)}

    train_x: list[NDArray[np.uint8]] = []
    train_y: list[int] = []
    for w in wnids:
        files = sorted((root / "train" / w / "images").glob("*.JPEG"))
        if not files:
            raise ValueError(f"{root / 'train' / w / 'images'}: no .JPEG images for class {w}")
        train_x.extend(_read_image(f) for f in files)
        train_y.extend([index[w]] * len(files))

    ann = root / "val" / "val_annotations.txt"
    if not ann.exists():
        raise ValueError(f"tiny-imagenet: missing {ann}")
    test_x: list[NDArray[np.uint8]] = []
    test_y: list[int] = []
    for lineno, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or parts[1] not in index:
            raise ValueError(f"{ann}:{lineno}: expected '<file>\\t<wnid>...' with a wnid from wnids.txt, got {line!r}")
        test_x.append(_read_image(root / "val" / "images" / parts[0]))
        test_y.append(index[parts[1]])
    if not test_x:
        raise ValueError(f"{ann}: no validation images listed")

    return {"x_train": np.stack(train_x), "y_train": np.asarray(train_y, dtype=np.int64),
            "x_test": np.stack(test_x), "y_test": np.asarray(test_y, dtype=np.int64)}
