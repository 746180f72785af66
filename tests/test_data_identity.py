"""The data fingerprint covers every byte: a one-byte change anywhere is seen, before a cached result is
served; digests are cached by file stamp; runs that recorded a version-1 (sampled) fingerprint stay valid."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from fashion_files import STEMS, idx_bytes

from ertrain.config import TrainConfig
from ertrain.data import _files
from ertrain.data.identity import FINGERPRINT_VERSION, data_fingerprint
from ertrain.runner import run


def _write_idx(root: Path, n_train: int = 3000, n_test: int = 200) -> Path:
    """Uncompressed Fashion-MNIST IDX files; the training images are 2.35 MB, as in the real format."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    arrays = ((rng.integers(0, 256, (n_train, 28, 28)), 2051), (rng.integers(0, 10, n_train), 2049),
              (rng.integers(0, 256, (n_test, 28, 28)), 2051), (rng.integers(0, 10, n_test), 2049))
    for stem, (arr, magic) in zip(STEMS, arrays, strict=True):
        (root / stem).write_bytes(idx_bytes(arr, magic))
    return root / STEMS[0]


def _flip_middle_byte(path: Path, keep_mtime: bool) -> None:
    """Change one byte in the middle of ``path`` in place (10 kB before the midpoint, where version 1 samples
    a block); optionally put the mtime back."""
    st = path.stat()
    where = st.st_size // 2 - 10_000
    time.sleep(0.02)  # a later clock tick than the file's last write
    with open(path, "r+b") as fh:
        fh.seek(where)
        old = fh.read(1)
        fh.seek(where)
        fh.write(bytes([old[0] ^ 0x01]))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_one_byte_in_the_middle_changes_the_fingerprint(tmp_path: Path) -> None:
    images = _write_idx(tmp_path)
    v2 = data_fingerprint("fashion-mnist", str(tmp_path))
    v1 = data_fingerprint("fashion-mnist", str(tmp_path), version=1)
    assert v1 != v2
    _flip_middle_byte(images, keep_mtime=True)
    assert data_fingerprint("fashion-mnist", str(tmp_path)) != v2
    # the middle byte lies between the sampled blocks: version 1 could not see it
    assert data_fingerprint("fashion-mnist", str(tmp_path), version=1) == v1


def test_full_digest_is_sha256_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    data = os.urandom(3 * _files.CHUNK + 17)
    path.write_bytes(data)
    assert _files.full_digest(path) == hashlib.sha256(data).hexdigest()
    lines = _files.describe_files(tmp_path, [path])
    assert lines == [f"f.bin:{len(data)}:{hashlib.sha256(data).hexdigest()}"]
    with pytest.raises(ValueError, match="unknown digest 'crc'"):
        _files.describe_files(tmp_path, [path], digest="crc")


def test_digests_are_cached_by_file_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(_files, "RACY_SECONDS", -1e9)  # as if every file had been written long ago
    images = _write_idx(tmp_path / "data")
    reads: list[str] = []
    full = _files.full_digest
    monkeypatch.setattr(_files, "full_digest", lambda p: reads.append(Path(p).name) or full(p))
    first = data_fingerprint("fashion-mnist", str(tmp_path / "data"))
    assert sorted(reads) == sorted(STEMS)
    reads.clear()
    assert data_fingerprint("fashion-mnist", str(tmp_path / "data")) == first and reads == []  # served from cache
    _flip_middle_byte(images, keep_mtime=True)  # the ctime still moves
    changed = data_fingerprint("fashion-mnist", str(tmp_path / "data"))
    assert reads == [STEMS[0]] and changed != first
    (cache_file,) = (tmp_path / "cache" / "file-digests").iterdir()
    assert json.loads(cache_file.read_text())["files"][STEMS[0]][1] == hashlib.sha256(images.read_bytes()).hexdigest()


def test_a_file_written_just_now_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERTRAIN_CACHE_DIR", str(tmp_path / "cache"))
    _write_idx(tmp_path / "data", n_train=10, n_test=5)
    data_fingerprint("fashion-mnist", str(tmp_path / "data"))
    assert not (tmp_path / "cache").exists()  # timestamps within RACY_SECONDS of now may not show a new write
    monkeypatch.setenv("ERTRAIN_CACHE_DIR", "")
    assert _files.cache_dir() is None


def test_changed_byte_is_seen_before_a_cached_result_is_served(tmp_path: Path) -> None:
    data = tmp_path / "data"
    images = _write_idx(data)
    config = TrainConfig(model="mlp", dataset="fashion-mnist", data_dir=str(data), density_scheme="erk",
                         density=0.5, epochs=1, batch_size=256, device="cpu")
    first = run(config, tmp_path / "runs", progress=False)
    stored = json.loads((tmp_path / "runs" / config.run_hash() / "data.json").read_text())
    assert stored["fingerprint_version"] == FINGERPRINT_VERSION == 2
    assert run(config, tmp_path / "runs", progress=False) == first  # unchanged data: the cached result
    _flip_middle_byte(images, keep_mtime=True)
    with pytest.raises(ValueError, match="changed since it was trained"):
        run(config, tmp_path / "runs", progress=False)


def test_a_run_with_a_version_1_identity_stays_valid(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write_idx(data, n_train=600, n_test=100)
    config = TrainConfig(model="mlp", dataset="fashion-mnist", data_dir=str(data), density_scheme="erk",
                         density=0.5, epochs=1, batch_size=256, device="cpu")
    first = run(config, tmp_path / "runs", progress=False)
    identity = tmp_path / "runs" / config.run_hash() / "data.json"
    old = {"dataset": "fashion-mnist", "data_options": {},
           "fingerprint": data_fingerprint("fashion-mnist", str(data), version=1)}  # what earlier releases wrote
    identity.write_text(json.dumps(old))
    assert run(config, tmp_path / "runs", progress=False) == first
    identity.write_text(json.dumps({**old, "fingerprint": "0" * 16}))
    with pytest.raises(ValueError, match="changed since it was trained"):
        run(config, tmp_path / "runs", progress=False)
