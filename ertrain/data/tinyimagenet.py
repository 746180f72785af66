"""Tiny ImageNet (200 classes, 64x64 RGB) from its folder layout.

``wnids.txt`` lists the 200 class ids (one per line, defining the label order);
``train/<wnid>/images/*.JPEG`` hold the training images; ``val/val_annotations.txt`` maps each
``val/images/<file>`` to its wnid (tab separated).  As in the paper, the official validation set is
the test set.  Images are decoded with Pillow (grey images are converted to RGB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ertrain.data import DataBundle, register_dataset
from ertrain.data._common import find_dir, make_bundle, standardise

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
    wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(set(wnids)) != len(wnids) or not wnids:
        raise ValueError(f"{path}: expected distinct class ids, got {len(wnids)} lines ({len(set(wnids))} distinct)")
    return wnids


@register_dataset("tiny-imagenet")
def load_tiny_imagenet(data_dir: str | None, *, seed: int = 0, expected_classes: int | None = 200) -> DataBundle:
    """Tiny ImageNet from ``data_dir`` (or its ``tiny-imagenet-200`` folder); the val split is the test set."""
    root = find_dir(data_dir, "data", "tiny-imagenet", "wnids.txt", ("tiny-imagenet-200",))
    wnids = _read_wnids(root)
    if expected_classes is not None and len(wnids) != expected_classes:
        raise ValueError(f"{root / 'wnids.txt'}: {len(wnids)} classes, expected {expected_classes}")
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

    x_train, x_test = standardise(np.stack(train_x), np.stack(test_x), axis=(0, 2, 3))
    return make_bundle(
        x_train, np.asarray(train_y), x_test, np.asarray(test_y),
        num_classes=len(wnids), name="tiny-imagenet", augment="crop_flip",
    )
