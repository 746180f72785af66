"""synthetic-citation: Cora's shape, a symmetric normalised adjacency, seeded, homophilous, learnable by a GCN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ertrain.config import TrainConfig
from ertrain.data import DATASETS, DataBundle, load_dataset
from ertrain.data.synthetic_graph import sbm_edges
from ertrain.trainer import Trainer


@pytest.fixture(scope="module")
def graph() -> DataBundle:
    return load_dataset("synthetic-citation", None, seed=0)


def dense_adj(data: DataBundle) -> np.ndarray:
    assert data.adj is not None
    return data.adj.to_dense().numpy().astype(np.float64)


def test_shapes_and_split(graph: DataBundle) -> None:
    assert "synthetic-citation" in DATASETS
    assert graph.x_train.shape == (2708, 1433) and graph.x_train is graph.x_test
    assert graph.num_classes == 7 and graph.input_shape == (1433,) and graph.is_graph
    assert sorted(torch.unique(graph.y_train).tolist()) == list(range(7))
    assert graph.train_index is not None and graph.val_index is not None and graph.test_index is not None
    assert (graph.num_train, int(graph.val_index.numel()), graph.num_test) == (140, 300, 1000)
    # rows of the bag of words are normalised (every non-empty row sums to 1)
    sums = graph.x_train.sum(dim=1)
    assert torch.allclose(sums[sums > 0], torch.ones_like(sums[sums > 0]), atol=1e-5)
    words = (graph.x_train > 0).sum(dim=1).double().mean().item()
    assert 14.0 < words < 22.0  # about 18 words per node, as Cora


def test_adjacency_symmetric_and_normalised_like_cora(graph: DataBundle) -> None:
    a_hat = dense_adj(graph)
    np.testing.assert_allclose(a_hat, a_hat.T, atol=1e-7)
    # recover A + I from the pattern and check D^-1/2 (A + I) D^-1/2 entry by entry
    pattern = (a_hat > 0).astype(np.float64)
    assert np.all(np.diag(pattern) == 1.0)
    deg = pattern.sum(axis=1)
    np.testing.assert_allclose(a_hat, pattern / np.sqrt(np.outer(deg, deg)), rtol=1e-6)
    edges = (pattern.sum() - 2708) / 2
    assert edges == 5429


def test_deterministic_by_seed() -> None:
    a = load_dataset("synthetic-citation", None, seed=3)
    b = load_dataset("synthetic-citation", None, seed=3)
    c = load_dataset("synthetic-citation", None, seed=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert np.array_equal(dense_adj(a), dense_adj(b))
    assert not torch.equal(a.y_train, c.y_train)


def test_homophily_above_chance(graph: DataBundle) -> None:
    pattern = dense_adj(graph) > 0
    np.fill_diagonal(pattern, False)
    i, j = np.nonzero(np.triu(pattern))
    y = graph.y_train.numpy()
    homophily = float(np.mean(y[i] == y[j]))
    chance = float(np.sum((np.bincount(y) / y.size) ** 2))  # two random nodes share a class
    assert chance < 0.25 and homophily > 0.7
    assert homophily == pytest.approx(0.81, abs=0.03)


def test_sbm_edges_distinct_and_pure_homophily() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20)
    edges = sbm_edges(labels, 100, 1.0, rng)
    assert edges.shape == (100, 2) and np.all(edges[:, 0] < edges[:, 1])
    assert len({(int(a), int(b)) for a, b in edges}) == 100
    assert np.all(labels[edges[:, 0]] == labels[edges[:, 1]])
    across = sbm_edges(labels, 100, 0.0, rng)
    assert np.all(labels[across[:, 0]] != labels[across[:, 1]])


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="homophily"):
        load_dataset("synthetic-citation", None, homophily=1.5)
    with pytest.raises(ValueError, match="'train' must be a node range inside the 100 nodes"):
        load_dataset("synthetic-citation", None, num_nodes=100, num_edges=200)


def test_gcn_trains_above_chance(graph: DataBundle) -> None:
    cfg = TrainConfig(model="gcn", dataset="synthetic-citation", optimizer="adam", lr=0.05, weight_decay=5e-4,
                      epochs=30, schedule="constant", augment=False)
    trainer = Trainer.from_config(cfg, device="cpu", data=graph, progress=False)
    trainer.fit(cfg.epochs)
    # 7 classes; the largest class holds about 30% of the nodes
    assert trainer.evaluate("test")["accuracy"] > 0.5
