"""Cora citation graph from its standard files (``cora.content``, ``cora.cites``).

``cora.content``: one node per line, ``<paper id> <1433 binary features> <class label>`` (whitespace
separated); ``cora.cites``: one edge per line, ``<cited id> <citing id>``.  The graph is treated as
undirected with self loops and normalised symmetrically, ``D^{-1/2} (A + I) D^{-1/2}`` (Kipf and
Welling 2017); features are row-normalised.  The split follows the usual node order of the files:
the first 140 nodes train, the next 300 (from node 200) validate, nodes 500..1499 test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ertrain.data._common import find_dir
from ertrain.data._options import LoaderOptions
from ertrain.data.bundle import DataBundle
from ertrain.data.registry import register_dataset


@dataclass(frozen=True)
class NodeSplitOptions(LoaderOptions):
    """Node index ranges ``[start, stop)`` of the training, validation and test splits (non-empty)."""

    train: tuple[int, int] = (0, 140)
    val: tuple[int, int] = (200, 500)
    test: tuple[int, int] = (500, 1500)

    def check(self) -> None:
        for name in ("train", "val", "test"):
            lo, hi = getattr(self, name)
            if not 0 <= lo < hi:
                self.fail(name, "a non-empty node range [start, stop) with 0 <= start < stop")


@dataclass(frozen=True)
class CoraOptions(NodeSplitOptions):
    dataset = "cora"


def _root(data_dir: str | None) -> Path:
    return find_dir(data_dir, "data", "cora", "cora.content", ("cora",))


def _files(data_dir: str | None, opts: CoraOptions) -> tuple[Path, list[Path]]:
    root = _root(data_dir)
    return root, [root / "cora.content", root / "cora.cites"]


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from exc


@register_dataset("cora", options=CoraOptions, inputs="graph", shape=(None,), files=_files)
def load_cora(data_dir: str | None, opts: CoraOptions, seed: int) -> DataBundle:
    """Cora (2708 nodes, 1433 features, 7 classes) as a transductive :class:`DataBundle` with ``adj``."""
    train, val, test = opts.train, opts.val, opts.test
    root = _root(data_dir)
    content, cites = root / "cora.content", root / "cora.cites"
    rows = [line.split() for line in _read_text(content).splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{content}: no nodes")
    width = len(rows[0])
    for lineno, r in enumerate(rows, 1):
        if len(r) != width or width < 3:
            raise ValueError(f"{content}:{lineno}: {len(r)} fields, expected {width} (id, features, label)")
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{content}: duplicate paper ids")
    try:
        feats = np.asarray([[float(v) for v in r[1:-1]] for r in rows], dtype=np.float32)
    except ValueError as exc:
        raise ValueError(f"{content}: non-numeric feature ({exc})") from exc
    classes = sorted({r[-1] for r in rows})
    label_of = {c: i for i, c in enumerate(classes)}
    labels = np.asarray([label_of[r[-1]] for r in rows], dtype=np.int64)
    node = {pid: i for i, pid in enumerate(ids)}

    n = len(ids)
    for name, (lo, hi) in (("train", train), ("val", val), ("test", test)):
        if not 0 <= lo < hi <= n:
            raise ValueError(f"cora: {name} range {(lo, hi)} outside the {n} nodes of {content}")

    if not cites.exists():
        raise ValueError(f"cora: missing {cites}")
    src: list[int] = []
    dst: list[int] = []
    for lineno, line in enumerate(_read_text(cites).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ValueError(f"{cites}:{lineno}: expected two paper ids, got {line!r}")
        if parts[0] not in node or parts[1] not in node:
            raise ValueError(f"{cites}:{lineno}: paper id not in {content.name}: {line!r}")
        src.append(node[parts[0]])
        dst.append(node[parts[1]])

    return graph_bundle(
        np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64), feats, labels, len(classes), "cora",
        train=train, val=val, test=test,
    )


def graph_bundle(
    src: np.ndarray, dst: np.ndarray, feats: np.ndarray, labels: np.ndarray, num_classes: int, name: str, *,
    train: tuple[int, int], val: tuple[int, int], test: tuple[int, int],
) -> DataBundle:
    """A node-classification bundle: GCN-normalised adjacency, row-normalised features, index ranges.

    The edges ``src -> dst`` are made undirected with self loops (duplicates merged) and normalised as
    ``D^-1/2 (A + I) D^-1/2``; every node is in ``x_train``/``x_test`` and the splits are index ranges.
    """
    import torch

    n = int(labels.shape[0])
    i = np.concatenate([src, dst, np.arange(n)])
    j = np.concatenate([dst, src, np.arange(n)])
    key = np.unique(i.astype(np.int64) * n + j)
    i, j = key // n, key % n
    deg = np.bincount(i, minlength=n).astype(np.float64)
    vals = (1.0 / np.sqrt(deg[i] * deg[j])).astype(np.float32)
    adj = torch.sparse_coo_tensor(torch.from_numpy(np.stack([i, j])), torch.from_numpy(vals), (n, n),
                                  check_invariants=True).coalesce()

    rowsum = feats.sum(axis=1, keepdims=True)
    x = torch.from_numpy((feats / np.where(rowsum > 0, rowsum, 1.0)).astype(np.float32))
    y = torch.from_numpy(labels)

    def rng(bounds: tuple[int, int]) -> torch.Tensor:
        return torch.arange(bounds[0], bounds[1], dtype=torch.int64)

    return DataBundle(
        x_train=x, y_train=y, x_test=x, y_test=y, num_classes=num_classes, input_shape=(feats.shape[1],),
        name=name, adj=adj, train_index=rng(train), val_index=rng(val), test_index=rng(test),
    )
