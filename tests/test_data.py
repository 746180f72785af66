"""Dataset loaders on tiny files written in the real formats, and on-device augmentation."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ertrain.data import DATASETS, DataBundle, load_dataset
from ertrain.data.augment import crop_flip, crop_flip_params, crop_flip_with


def standardised(train: np.ndarray, test: np.ndarray, axis: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    mean = train.astype(np.float64).mean(axis=axis, keepdims=True)
    std = train.astype(np.float64).std(axis=axis, keepdims=True)
    return (train - mean) / std, (test - mean) / std


# ---------------------------------------------------------------- Fashion-MNIST (IDX)


def write_idx(path: Path, array: np.ndarray, magic: int, gz: bool = True) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


def make_fashion(root: Path, rng: np.random.Generator, gz: bool = True) -> dict[str, np.ndarray]:
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 12),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 5),
    }
    for name, arr in arrays.items():
        write_idx(root / name, arr, 2051 if "images" in name else 2049, gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx(tmp_path: Path, gz: bool) -> None:
    arrays = make_fashion(tmp_path, np.random.default_rng(0), gz)
    data = load_dataset("fashion-mnist", str(tmp_path))
    tr, te = standardised(arrays["train-images-idx3-ubyte"][:, None], arrays["t10k-images-idx3-ubyte"][:, None],
                          (0, 2, 3))
    np.testing.assert_allclose(data.x_train.numpy(), tr, atol=1e-5)
    np.testing.assert_allclose(data.x_test.numpy(), te, atol=1e-5)
    np.testing.assert_array_equal(data.y_train.numpy(), arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10 and data.augment is None


def test_fashion_mnist_validates(tmp_path: Path) -> None:
    arrays = make_fashion(tmp_path, np.random.default_rng(1))
    bad = tmp_path / "train-labels-idx1-ubyte"
    write_idx(bad, arrays["train-labels-idx1-ubyte"], 2051)  # image magic on a label file
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz: IDX magic number 2051, expected 2049"):
        load_dataset("fashion-mnist", str(tmp_path))
    labels = arrays["train-labels-idx1-ubyte"].copy()
    labels[3] = 10
    write_idx(bad, labels, 2049)
    with pytest.raises(ValueError, match="label 10 outside"):
        load_dataset("fashion-mnist", str(tmp_path))
    write_idx(bad, arrays["train-labels-idx1-ubyte"][:11], 2049)
    with pytest.raises(ValueError, match="12 images but 11 labels"):
        load_dataset("fashion-mnist", str(tmp_path))
    img = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(img, "rb") as fh:
        raw = fh.read()
    with gzip.open(img, "wb") as fh:
        fh.write(raw[:-7])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: IDX payload"):
        load_dataset("fashion-mnist", str(tmp_path))
    with pytest.raises(ValueError, match="missing"):
        load_dataset("fashion-mnist", str(tmp_path / "nowhere"))


# ---------------------------------------------------------------- CIFAR binary


def cifar_records(rng: np.random.Generator, n: int, classes: int, coarse: bool) -> tuple[bytes, np.ndarray, np.ndarray]:
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    fine = rng.integers(0, classes, n, dtype=np.uint8)
    rows = [np.concatenate([[f // 5] if coarse else [], [f], img.reshape(-1)]).astype(np.uint8)
            for f, img in zip(fine, images, strict=True)]
    return b"".join(r.tobytes() for r in rows), images, fine


def test_cifar10_binary(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    rng = np.random.default_rng(2)
    train_imgs, train_lab = [], []
    for i in range(1, 6):
        raw, imgs, lab = cifar_records(rng, 3, 10, False)
        (root / f"data_batch_{i}.bin").write_bytes(raw)
        train_imgs.append(imgs)
        train_lab.append(lab)
    raw, test_imgs, test_lab = cifar_records(rng, 4, 10, False)
    (root / "test_batch.bin").write_bytes(raw)
    data = load_dataset("cifar10", str(tmp_path), check_counts=False)  # finds the sub-folder
    tr, te = standardised(np.concatenate(train_imgs), test_imgs, (0, 2, 3))
    np.testing.assert_allclose(data.x_train.numpy(), tr, atol=1e-5)
    np.testing.assert_allclose(data.x_test.numpy(), te, atol=1e-5)
    np.testing.assert_array_equal(data.y_train.numpy(), np.concatenate(train_lab))
    assert data.augment == "crop_flip" and data.input_shape == (3, 32, 32)
    with pytest.raises(ValueError, match="10000"):
        load_dataset("cifar10", str(root))  # the official record counts are checked by default
    (root / "data_batch_3.bin").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match=r"data_batch_3\.bin: size .* 3073-byte record"):
        load_dataset("cifar10", str(root), check_counts=False)


def test_cifar100_binary_uses_fine_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    raw_tr, imgs_tr, fine_tr = cifar_records(rng, 6, 100, True)
    raw_te, imgs_te, fine_te = cifar_records(rng, 3, 100, True)
    (tmp_path / "train.bin").write_bytes(raw_tr)
    (tmp_path / "test.bin").write_bytes(raw_te)
    data = load_dataset("cifar100", str(tmp_path), check_counts=False)
    np.testing.assert_array_equal(data.y_train.numpy(), fine_tr)
    np.testing.assert_array_equal(data.y_test.numpy(), fine_te)
    assert data.num_classes == 100
    bad = bytearray(raw_te)
    bad[1] = 100  # fine label of the first test record
    (tmp_path / "test.bin").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=r"test\.bin: label 100 outside \[0, 100\)"):
        load_dataset("cifar100", str(tmp_path), check_counts=False)


# ---------------------------------------------------------------- Tiny ImageNet


def test_tiny_imagenet_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    wnids = ["n001", "n002"]
    (tmp_path / "wnids.txt").write_text("\n".join(wnids) + "\n")
    shade = {"n001": 30, "n002": 220}
    for w in wnids:
        d = tmp_path / "train" / w / "images"
        d.mkdir(parents=True)
        for k in range(3):
            Image.new("RGB", (64, 64), (shade[w], shade[w], shade[w])).save(d / f"{w}_{k}.JPEG", "JPEG")
    (tmp_path / "val" / "images").mkdir(parents=True)
    val_classes = ["n002", "n001", "n002"]
    lines = []
    for k, w in enumerate(val_classes):
        Image.new("L", (64, 64), shade[w]).save(tmp_path / "val" / "images" / f"val_{k}.JPEG", "JPEG")  # grey
        lines.append(f"val_{k}.JPEG\t{w}\t0\t0\t63\t63")
    (tmp_path / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    data = load_dataset("tiny-imagenet", str(tmp_path), expected_classes=2)
    assert data.x_train.shape == (6, 3, 64, 64) and data.x_test.shape == (3, 3, 64, 64)
    np.testing.assert_array_equal(data.y_train.numpy(), [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(data.y_test.numpy(), [1, 0, 1])
    # dark images (class 0) sit below the training mean, bright ones above
    sign = np.sign(data.x_test.mean(dim=(1, 2, 3)).numpy())
    np.testing.assert_array_equal(sign, [1, -1, 1])
    # the decoded arrays are cached; a second load reads no image
    assert len(list(tmp_path.glob("ertrain-cache-*.npz"))) == 1
    import ertrain.data.tinyimagenet as tin

    def no_decode(path: Path) -> np.ndarray:
        raise AssertionError("decoded although cached")

    monkeypatch.setattr(tin, "_read_image", no_decode)
    again = load_dataset("tiny-imagenet", str(tmp_path), expected_classes=2)
    assert torch.equal(again.x_train, data.x_train) and torch.equal(again.y_test, data.y_test)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="2 classes, expected 200"):
        load_dataset("tiny-imagenet", str(tmp_path))
    (tmp_path / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn999\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match=r"val_annotations\.txt:1"):
        load_dataset("tiny-imagenet", str(tmp_path), expected_classes=2)
    Image.new("RGB", (32, 32)).save(tmp_path / "train" / "n001" / "images" / "n001_9.JPEG", "JPEG")
    with pytest.raises(ValueError, match=r"n001_9\.JPEG: image of shape"):
        load_dataset("tiny-imagenet", str(tmp_path), expected_classes=2)


# ---------------------------------------------------------------- Cora


def test_cora_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    ids = ["31", "7", "1002", "55", "8", "90"]
    feats = rng.integers(0, 2, (6, 5))
    feats[0] = 0  # a node without features keeps a zero row
    labels = ["Theory", "Neural_Networks", "Theory", "Rule_Learning", "Neural_Networks", "Theory"]
    (tmp_path / "cora.content").write_text(
        "".join(f"{i}\t" + "\t".join(map(str, f)) + f"\t{lab}\n" for i, f, lab in zip(ids, feats, labels, strict=True))
    )
    edges = [("31", "7"), ("7", "31"), ("1002", "55"), ("8", "1002"), ("90", "90")]
    (tmp_path / "cora.cites").write_text("".join(f"{a}\t{b}\n" for a, b in edges))
    data = load_dataset("cora", str(tmp_path), train=(0, 2), val=(2, 4), test=(4, 6))
    # independent dense computation of D^-1/2 (A + I) D^-1/2
    pos = {p: k for k, p in enumerate(ids)}
    a = np.eye(6)
    for s, d in edges:
        a[pos[s], pos[d]] = a[pos[d], pos[s]] = 1.0
    deg = a.sum(1)
    expected = a / np.sqrt(np.outer(deg, deg))
    assert data.adj is not None
    np.testing.assert_allclose(data.adj.to_dense().numpy(), expected, atol=1e-6)
    rows = feats / np.maximum(feats.sum(1, keepdims=True), 1)
    np.testing.assert_allclose(data.x_train.numpy(), rows, atol=1e-6)
    classes = sorted(set(labels))
    np.testing.assert_array_equal(data.y_train.numpy(), [classes.index(lab) for lab in labels])
    assert data.num_classes == 3 and data.is_graph and data.x_train is data.x_test
    assert data.test_index is not None and data.test_index.tolist() == [4, 5]
    moved = data.to("cpu")
    assert moved.x_train is moved.x_test
    (tmp_path / "cora.cites").write_text("31\t404\n")
    with pytest.raises(ValueError, match=r"cora\.cites:1: paper id not in cora\.content"):
        load_dataset("cora", str(tmp_path), train=(0, 2), val=(2, 4), test=(4, 6))
    with pytest.raises(ValueError, match="outside the 6 nodes"):
        load_dataset("cora", str(tmp_path))


# ---------------------------------------------------------------- bundled and synthetic sets


def test_digits_split_is_a_partition() -> None:
    data = load_dataset("digits")
    from sklearn.datasets import load_digits

    raw = load_digits()
    assert data.num_train + data.num_test == len(raw.target) == 1797
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert abs(float(data.x_train.mean())) < 1e-5
    # class counts of train + test reproduce the full set
    counts = np.bincount(data.y_train.numpy(), minlength=10) + np.bincount(data.y_test.numpy(), minlength=10)
    np.testing.assert_array_equal(counts, np.bincount(raw.target))


def test_modular_addition_labels() -> None:
    data = load_dataset("modular-addition", modulus=7, train_fraction=0.6)
    x = torch.cat([data.x_train, data.x_test])
    y = torch.cat([data.y_train, data.y_test])
    a, b = x[:, :7].argmax(1), x[:, 7:].argmax(1)
    assert torch.equal(y, (a + b) % 7)
    assert len({(int(i), int(j)) for i, j in zip(a, b, strict=True)}) == 49
    assert data.num_train == 29


def test_teacher_is_seeded_and_learnable_shape() -> None:
    a = load_dataset("teacher", seed=1, n_train=50, n_test=20)
    b = load_dataset("teacher", seed=1, n_train=50, n_test=20)
    c = load_dataset("teacher", seed=2, n_train=50, n_test=20)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)
    assert a.y_train.max() < 4 and len(torch.unique(a.y_train)) > 1
    r = load_dataset("teacher", task="regression", n_train=10, n_test=5, num_classes=3)
    assert r.task == "regression" and r.y_train.shape == (10, 3) and r.y_train.dtype == torch.float32
    with pytest.raises(ValueError, match="task"):
        load_dataset("teacher", task="ranking")


def test_every_name_of_the_issue_is_registered() -> None:
    for name in ("fashion-mnist", "digits", "cifar10", "cifar100", "tiny-imagenet", "cora", "teacher"):
        assert name in DATASETS
    with pytest.raises(ValueError, match="valid names: .*digits"):
        load_dataset("imagenet-1k")


def test_bundle_validates_rows() -> None:
    z = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="3 rows but y_train has 2"):
        DataBundle(z, torch.zeros(2), z, torch.zeros(3), num_classes=2, input_shape=(2,))


# ---------------------------------------------------------------- augmentation


def reference_crop_flip(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, padding: int) -> torch.Tensor:
    out = torch.empty_like(x)
    h, w = x.shape[-2:]
    for i in range(x.shape[0]):
        img = torch.nn.functional.pad(x[i], (padding,) * 4)
        r, c = int(offsets[0, i]), int(offsets[1, i])
        crop = img[:, r:r + h, c:c + w]
        out[i] = crop.flip(-1) if bool(flips[i]) else crop
    return out


@settings(max_examples=25)
@given(b=st.integers(1, 6), c=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7),
       padding=st.integers(0, 4), seed=st.integers(0, 1000))
def test_crop_flip_matches_per_image_reference(b: int, c: int, h: int, w: int, padding: int, seed: int) -> None:
    x = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))
    offsets, flips = crop_flip_params(b, padding, torch.Generator().manual_seed(seed))
    assert int(offsets.min()) >= 0 and int(offsets.max()) <= 2 * padding
    expected = reference_crop_flip(x, offsets, flips, padding)
    torch.testing.assert_close(crop_flip_with(x, offsets, flips, padding), expected, rtol=0, atol=0)
    again = crop_flip(x, padding, torch.Generator().manual_seed(seed))
    torch.testing.assert_close(again, reference_crop_flip(x, offsets, flips, padding), rtol=0, atol=0)


def test_crop_flip_draws_all_offsets_and_flips() -> None:
    offsets, flips = crop_flip_params(4000, 4, torch.Generator().manual_seed(0))
    assert set(offsets.flatten().tolist()) == set(range(9))
    assert 0.45 < flips.float().mean().item() < 0.55
    with pytest.raises(ValueError, match="shape"):
        crop_flip(torch.zeros(3, 4, 4))


def test_datasets_is_a_registry_of_declared_datasets() -> None:
    from ertrain.data import INPUT_KINDS, Dataset, declared_shape
    from ertrain.registry import Registry

    assert isinstance(DATASETS, Registry)
    names = {"fashion-mnist", "digits", "cifar10", "cifar100", "tiny-imagenet", "cora", "synthetic-citation",
             "teacher", "synthetic-cifar", "modular-addition", "tabular"}
    assert names <= set(DATASETS)
    for name in names:
        spec = DATASETS[name]
        assert isinstance(spec, Dataset) and spec.inputs in INPUT_KINDS
        assert declared_shape(name) is not None
    data = DATASETS["teacher"](None, seed=1, n_train=5, n_test=3)  # a registered dataset loads when called
    again = load_dataset("teacher", seed=1, n_train=5, n_test=3)
    assert data.num_train == 5 and torch.equal(data.x_train, again.x_train)


def _write_cifar10(root: Path, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    root.mkdir()
    train = []
    for i in range(1, 6):
        raw, imgs, _ = cifar_records(rng, 2, 10, False)
        (root / f"data_batch_{i}.bin").write_bytes(raw)
        train.append(imgs)
    raw, test_imgs, _ = cifar_records(rng, 3, 10, False)
    (root / "test_batch.bin").write_bytes(raw)
    return np.concatenate(train), test_imgs


@pytest.mark.parametrize(
    ("normalise", "mean", "std"),
    [("er_dst", (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)), ("half", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))],
)
def test_cifar10_paper_code_normalisation(tmp_path: Path, normalise: str, mean: tuple, std: tuple) -> None:
    """ER_DST/sparselearning/utils.py:30 and ER_SLT/cifar_main.py:202: fixed mean and std of x / 255."""
    train, test = _write_cifar10(tmp_path / "cifar-10-batches-bin", np.random.default_rng(4))
    data = load_dataset("cifar10", str(tmp_path), check_counts=False, normalise=normalise)
    # one pixel by hand: channel 1 of the first training image at (5, 7)
    want = (train[0, 1, 5, 7] / 255.0 - mean[1]) / std[1]
    assert float(data.x_train[0, 1, 5, 7]) == pytest.approx(want, rel=1e-5)
    m = np.array(mean).reshape(1, 3, 1, 1)
    s = np.array(std).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(data.x_test.numpy(), (test / 255.0 - m) / s, atol=1e-5)
    with pytest.raises(ValueError, match="cifar10 option 'normalise' must be one of .*, got 'mean'"):
        load_dataset("cifar10", str(tmp_path), check_counts=False, normalise="mean")


def test_cifar10_reflect_padded_crops(tmp_path: Path) -> None:
    """ER_DST/sparselearning/utils.py:36: crops of the reflect-padded image (numpy's np.pad 'reflect')."""
    _write_cifar10(tmp_path / "cifar-10-batches-bin", np.random.default_rng(5))
    data = load_dataset("cifar10", str(tmp_path), check_counts=False, pad="reflect")
    assert data.augment == "crop_flip_reflect"
    x = data.x_train[:4]
    offsets = torch.tensor([[0, 8, 3, 0], [8, 0, 5, 1]])
    flips = torch.tensor([False, True, False, True])
    got = crop_flip_with(x, offsets, flips, 4, "reflect")
    for i in range(4):
        padded = np.pad(x[i].numpy(), ((0, 0), (4, 4), (4, 4)), mode="reflect")
        r, c = int(offsets[0, i]), int(offsets[1, i])
        ref = padded[:, r:r + 32, c:c + 32]
        np.testing.assert_array_equal(got[i].numpy(), ref[:, :, ::-1] if flips[i] else ref)
    with pytest.raises(ValueError, match="cifar10 option 'pad' must be one of .*, got 'edge'"):
        load_dataset("cifar10", str(tmp_path), check_counts=False, pad="edge")
