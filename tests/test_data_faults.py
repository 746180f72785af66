"""Faulty data and options are refused with one clear ValueError; data identity and model compatibility."""

from __future__ import annotations

import gzip
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from fashion_files import STEMS, corrupt_deflate, truncate, write_fashion

import ertrain.data.idx as idx
from ertheory._validate import MemoryLimitError
from ertrain.data import (
    DATASETS,
    DataBundle,
    IncompatibleError,
    check_compatible,
    data_fingerprint,
    dataset_options,
    declared_classes,
    declared_shape,
    load_dataset,
    register_dataset,
)
from ertrain.data._options import LoaderOptions

# ---------------------------------------------------------------- empty splits and limits


def test_empty_train_file_is_refused(tmp_path: Path) -> None:
    write_fashion(tmp_path, n_train=0)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz holds no images"):
        load_dataset("fashion-mnist", str(tmp_path))


@pytest.mark.parametrize("limit", [0, -59000, -1])
def test_limit_train_must_be_positive(tmp_path: Path, limit: int) -> None:
    write_fashion(tmp_path)
    with pytest.raises(ValueError, match=rf"'limit_train' must be a positive integer .*got {limit}"):
        load_dataset("fashion-mnist", str(tmp_path), limit_train=limit)


def test_limit_train_keeps_the_first_examples(tmp_path: Path) -> None:
    write_fashion(tmp_path)
    full = load_dataset("fashion-mnist", str(tmp_path))
    part = load_dataset("fashion-mnist", str(tmp_path), limit_train=3)
    assert part.num_train == 3 and torch.equal(part.y_train, full.y_train[:3])
    assert load_dataset("fashion-mnist", str(tmp_path), limit_train=10**6).num_train == 12  # a limit, not a size


def test_a_loader_with_an_empty_split_is_refused_centrally() -> None:
    def empty_test(data_dir: str | None, *, seed: int = 0, n: int = 4) -> DataBundle:
        x = torch.zeros(n, 3)
        return DataBundle(x, torch.zeros(n, dtype=torch.int64), x[:0], torch.zeros(0, dtype=torch.int64),
                          num_classes=2, input_shape=(3,))

    register_dataset("test-empty-split", inputs="flat", shape=(3,))(empty_test)
    try:
        with pytest.raises(ValueError, match="test-empty-split: the test split is empty"):
            load_dataset("test-empty-split")
    finally:
        DATASETS.unregister("test-empty-split")


# ---------------------------------------------------------------- shapes


def test_test_images_of_another_shape_are_refused(tmp_path: Path) -> None:
    write_fashion(tmp_path, test_item=(16, 49))
    message = r"t10k-images-idx3-ubyte\.gz: IDX header gives items of 16x49, expected 28x28"
    with pytest.raises(ValueError, match=message):
        load_dataset("fashion-mnist", str(tmp_path))


def test_loaded_shape_is_checked_against_the_declared_one() -> None:
    def wrong(data_dir: str | None, *, seed: int = 0) -> DataBundle:
        x = torch.zeros(4, 16, 49)
        y = torch.zeros(4, dtype=torch.int64)
        return DataBundle(x, y, x, y, num_classes=2, input_shape=(16, 49))

    register_dataset("test-wrong-shape", inputs="image", shape=(1, 28, 28))(wrong)
    try:
        with pytest.raises(ValueError, match="train examples have shape 16x49, the dataset declares 1x28x28"):
            load_dataset("test-wrong-shape")
    finally:
        DATASETS.unregister("test-wrong-shape")


def test_declared_shapes_follow_the_options() -> None:
    assert declared_shape("fashion-mnist") == (1, 28, 28)
    assert declared_shape("teacher", {"in_features": 7}) == (7,)
    assert declared_shape("modular-addition", {"modulus": 5}) == (10,)
    assert declared_shape("cora") == (None,)
    for name, options in (("teacher", {"n_train": 5, "n_test": 3, "in_features": 7}),
                          ("modular-addition", {"modulus": 5}), ("digits", {})):
        data = load_dataset(name, **options)
        assert data.input_shape == declared_shape(name, options)


# ---------------------------------------------------------------- gzip faults


def test_truncated_gzip_is_one_value_error(tmp_path: Path) -> None:
    write_fashion(tmp_path)
    truncate(tmp_path / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\.gz: truncated or corrupted gzip data") as info:
        load_dataset("fashion-mnist", str(tmp_path))
    assert isinstance(info.value.__cause__, EOFError)


def test_corrupted_deflate_stream_is_one_value_error(tmp_path: Path) -> None:
    write_fashion(tmp_path)
    corrupt_deflate(tmp_path / "train-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: truncated or corrupted gzip data") as info:
        load_dataset("fashion-mnist", str(tmp_path))
    assert isinstance(info.value.__cause__, (zlib.error, gzip.BadGzipFile, EOFError))


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("teacher", {"n_trian": 100}, r"unknown data option\(s\) \['n_trian'\] for dataset 'teacher'; valid: .*n_tr"),
        ("teacher", {"n_train": "100"}, r"teacher option 'n_train' must be an integer, got '100'"),
        ("teacher", {"n_train": 1.5}, r"'n_train' must be an integer, got 1.5"),
        ("teacher", {"n_train": True}, r"'n_train' must be an integer, got True"),
        ("teacher", {"noise": float("nan")}, r"'noise' must be a finite number"),
        ("teacher", {"task": "ranking"}, r"'task' must be 'classification' or 'regression'"),
        ("cifar10", {"check_counts": "yes"}, r"'check_counts' must be true or false, got 'yes'"),
        ("cora", {"train": [0]}, r"cora option 'train' must be a list of 2 values, got \[0\]"),
        ("cora", {"train": [5, 5]}, r"'train' must be a non-empty node range"),
        ("digits", {"test_fraction": 1.0}, r"'test_fraction' must be in \(0, 1\), got 1.0"),
        ("digits", {"limit_train": 5}, r"unknown data option\(s\) \['limit_train'\] for dataset 'digits'"),
        ("modular-addition", {"modulus": 1}, r"'modulus' must be at least 2"),
    ],
)
def test_bad_options_are_refused_before_loading(name: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataset_options(name, options)
    with pytest.raises(ValueError, match=message):
        load_dataset(name, "/nonexistent", **options)


def test_options_are_normalised() -> None:
    opts = dataset_options("cora", {"train": [0, 4]})
    assert opts.train == (0, 4)
    assert dataset_options("teacher", {"n_train": 100.0}).n_train == 100  # type: ignore[attr-defined]
    assert isinstance(opts, LoaderOptions)


def test_keyword_loaders_get_options_from_their_signature() -> None:
    def plain(data_dir: str | None, *, seed: int = 0, n: int = 4, scale: float = 1.0) -> DataBundle:
        x = torch.full((n, 2), scale)
        y = torch.arange(n) % 2
        return DataBundle(x, y, x, y, num_classes=2, input_shape=(2,))

    register_dataset("test-keywords")(plain)
    try:
        assert load_dataset("test-keywords", n=6, scale=2).num_train == 6
        with pytest.raises(ValueError, match=r"unknown data option\(s\) \['m'\].*valid: \['n', 'scale'\]"):
            load_dataset("test-keywords", m=3)
        with pytest.raises(ValueError, match="'n' must be an integer"):
            load_dataset("test-keywords", n="6")
        with pytest.raises(ValueError, match="already registered"):
            register_dataset("test-keywords")(plain)
    finally:
        DATASETS.unregister("test-keywords")


def test_runaway_synthetic_sizes_are_refused_before_generation() -> None:
    with pytest.raises(MemoryLimitError, match=r"dataset 'teacher' .*n_train=10000000000.* would need about .* TiB"):
        load_dataset("teacher", n_train=10**10)
    with pytest.raises(MemoryLimitError, match="modular-addition"):
        load_dataset("modular-addition", modulus=10**5)
    with pytest.raises(ValueError, match="data seed must be a non-negative integer, got -1"):
        load_dataset("teacher", seed=-1, n_train=5, n_test=5)


@pytest.mark.parametrize(
    ("name", "options"),
    [("teacher", {"n_train": 20000, "n_test": 5000}), ("synthetic-cifar", {"n_train": 600, "n_test": 100}),
     ("modular-addition", {"modulus": 61})],
)
def test_memory_estimate_bounds_the_measured_peak(name: str, options: dict[str, int]) -> None:
    import tracemalloc

    from ertrain.data import estimated_memory

    tracemalloc.start()
    try:
        data = load_dataset(name, **options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    estimate = estimated_memory(name, options)
    assert estimate is not None
    held = sum(t.numel() * t.element_size() for t in (data.x_train, data.y_train, data.x_test, data.y_test))
    assert held <= peak <= estimate <= 4 * peak  # an upper bound, and not a wild one


def test_declared_classes_are_checked_against_the_loaded_ones() -> None:
    def three(data_dir: str | None, *, seed: int = 0) -> DataBundle:
        x = torch.zeros(4, 3)
        y = torch.tensor([0, 1, 2, 0])
        return DataBundle(x, y, x, y, num_classes=3, input_shape=(3,))

    register_dataset("test-classes", inputs="flat", shape=(3,), classes=4)(three)
    try:
        assert declared_classes("test-classes") == 4
        with pytest.raises(ValueError, match="test-classes: the loader gives 3 classes, the dataset declares 4"):
            load_dataset("test-classes")
    finally:
        DATASETS.unregister("test-classes")
    with pytest.raises(ValueError, match="classes must be a positive integer, got 0"):
        register_dataset("test-no-classes", classes=0)
    assert declared_classes("fashion-mnist") == 10


def test_model_sizes_of_a_declared_dataset_need_no_files(places: tuple[Path, Path]) -> None:
    """A model's sizes from the declared shape and classes (no Fashion-MNIST folder exists yet) are those from
    the loaded files."""
    from ertrain.trainer import model_kwargs_for, model_kwargs_for_shape

    shape, classes = declared_shape("fashion-mnist"), declared_classes("fashion-mnist")
    assert shape is not None and None not in shape and classes is not None
    without_files = model_kwargs_for_shape(tuple(int(s) for s in shape if s is not None), classes)
    assert without_files == {"num_classes": 10, "in_features": 784, "in_channels": 1, "input_size": 28}
    with pytest.raises(ValueError, match="are in none of"):
        load_dataset("fashion-mnist")
    write_fashion(places[1], n_train=30, n_test=30)
    assert without_files == model_kwargs_for(load_dataset("fashion-mnist", limit_train=5))


# ---------------------------------------------------------------- Fashion-MNIST search order


@pytest.fixture()
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    debian = tmp_path / "debian"
    cache_home = tmp_path / "cache"
    monkeypatch.setattr(idx, "FASHION_MNIST_DIR", str(debian))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    return debian, cache_home / "ertoolkit" / "fashion-mnist"


def test_search_order_debian_then_cache(places: tuple[Path, Path]) -> None:
    debian, cache = places
    write_fashion(cache, n_train=7, seed=1)
    assert load_dataset("fashion-mnist").num_train == 7  # only the cache holds the files
    write_fashion(debian, n_train=9, seed=2)
    assert load_dataset("fashion-mnist").num_train == 9  # Debian's location comes first
    (debian / f"{STEMS[3]}.gz").unlink()
    assert load_dataset("fashion-mnist").num_train == 7  # an incomplete folder is skipped


def test_data_dir_alone_is_searched_when_given(places: tuple[Path, Path], tmp_path: Path) -> None:
    write_fashion(places[0])
    with pytest.raises(ValueError, match=r"missing train-images-idx3-ubyte\(\.gz\), .* in '.*elsewhere'"):
        load_dataset("fashion-mnist", str(tmp_path / "elsewhere"))


def test_absent_files_say_where_and_how(places: tuple[Path, Path]) -> None:
    debian, cache = places
    with pytest.raises(ValueError) as info:
        load_dataset("fashion-mnist")
    msg = str(info.value)
    assert "\n" not in msg
    for needle in (str(debian), str(cache), "dataset-fashion-mnist", "t10k-labels-idx1-ubyte.gz", "--data-dir"):
        assert needle in msg


def test_cache_dir_defaults_to_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert idx.cache_dir() == tmp_path / ".cache" / "ertoolkit" / "fashion-mnist"


# ---------------------------------------------------------------- fingerprint


def test_fingerprint_follows_files_not_folders(tmp_path: Path) -> None:
    a = tmp_path / "a"
    write_fashion(a)
    fp = data_fingerprint("fashion-mnist", str(a))
    assert len(fp) == 16 and int(fp, 16) >= 0
    b = tmp_path / "b"
    shutil.copytree(a, b)
    assert data_fingerprint("fashion-mnist", str(b)) == fp  # same files elsewhere
    assert data_fingerprint("fashion-mnist", str(a), {"limit_train": None}) == fp  # a default changes nothing
    assert data_fingerprint("fashion-mnist", str(a), {"limit_train": 5}) != fp
    write_fashion(b, test_item=(28, 28), seed=1)  # same sizes, other pixels
    assert data_fingerprint("fashion-mnist", str(b)) != fp
    with pytest.raises(ValueError, match="missing"):
        data_fingerprint("fashion-mnist", str(tmp_path / "none"))


def test_fingerprint_sees_one_changed_byte_in_a_large_file(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    record = np.zeros(3073, dtype=np.uint8)
    for name in ("data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
                 "data_batch_5.bin", "test_batch.bin"):
        (root / name).write_bytes(np.tile(record, 100).tobytes())  # 300 kB each
    fp = data_fingerprint("cifar10", str(tmp_path))
    raw = bytearray((root / "test_batch.bin").read_bytes())
    raw[1] = 7  # inside the first record: the head is always digested
    (root / "test_batch.bin").write_bytes(bytes(raw))
    assert data_fingerprint("cifar10", str(tmp_path)) != fp
    (root / "test_batch.bin").write_bytes(bytes(raw) + bytes(3073))
    assert data_fingerprint("cifar10", str(tmp_path)) not in (fp,)


def test_fingerprint_of_generated_sets_is_their_options() -> None:
    a = data_fingerprint("teacher", None, {"n_train": 100})
    assert a == data_fingerprint("teacher", "/ignored", {"n_train": 100, "n_test": 1000})
    assert a != data_fingerprint("teacher", None, {"n_train": 101})
    assert data_fingerprint("digits") != data_fingerprint("tabular")


# ---------------------------------------------------------------- model-dataset compatibility


@pytest.mark.parametrize(
    ("model", "dataset", "ok"),
    [("mlp", "digits", True), ("mlp", "teacher", True), ("resnet20", "synthetic-cifar", True),
     ("gcn", "cora", True), ("gcn", "digits", False), ("resnet20", "cora", False), ("mlp", "cora", False),
     ("vgg16", "teacher", False)],
)
def test_check_compatible(model: str, dataset: str, ok: bool) -> None:
    if ok:
        check_compatible(model, dataset)
        return
    with pytest.raises(IncompatibleError, match=rf"model '{model}' takes .* inputs but dataset '{dataset}' yields"):
        check_compatible(model, dataset)


def test_check_compatible_lists_fitting_models_and_refuses_unknown_names() -> None:
    with pytest.raises(IncompatibleError, match="models for graph data: gcn"):
        check_compatible("mlp", "cora")
    with pytest.raises(ValueError, match="unknown dataset 'nosuch'"):
        check_compatible("mlp", "nosuch")
    with pytest.raises(ValueError, match="unknown model 'nosuch'"):
        check_compatible("nosuch", "digits")
