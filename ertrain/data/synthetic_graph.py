"""``synthetic-citation``: a seeded citation-like graph with Cora's shape, for GCN runs without Cora's files.

A stochastic block model with bag-of-words features. Each node gets one of ``num_classes`` classes
(drawn with Cora's class proportions when there are 7 classes, uniformly otherwise). Edges: ``num_edges``
distinct undirected pairs; each is drawn by picking a node uniformly and, with probability
``homophily``, a partner of its own class, otherwise a partner of another class (uniformly among
them). Features: ``num_features`` binary words; every class owns a block of ``num_features /
num_classes`` topic words; a node holds ``words_per_node`` words on average, a fraction
``topic_fraction`` of them from its class's block and the rest from all words, each word drawn
independently (Bernoulli). The defaults give Cora's shape: 2708 nodes, 7 classes, 1433 features,
5429 edges, edge homophily about 0.81, ~18 words per node.

The bundle is built exactly like the ``cora`` loader's: the adjacency made undirected with self
loops and normalised as ``D^{-1/2} (A + I) D^{-1/2}``, features row-normalised, and the same node
ranges for the splits (train ``0..140``, validation ``200..500``, test ``500..1500``; node order is
random, so each range is a random sample of the classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ertrain.data.bundle import DataBundle
from ertrain.data.cora import NodeSplitOptions, graph_bundle
from ertrain.data.registry import register_dataset

#: Cora's class sizes (out of 2708 nodes), the class proportions of the default graph.
CORA_CLASS_SIZES = (818, 426, 418, 351, 298, 217, 180)


def class_labels(num_nodes: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Node classes: Cora's proportions for 7 classes, uniform otherwise; every class appears."""
    if num_classes == len(CORA_CLASS_SIZES):
        p = np.asarray(CORA_CLASS_SIZES, dtype=np.float64)
        p /= p.sum()
    else:
        p = np.full(num_classes, 1.0 / num_classes)
    base = np.arange(num_classes)  # one node of each class, the rest drawn with proportions p
    labels = np.concatenate([base, rng.choice(num_classes, size=num_nodes - num_classes, p=p)])
    return rng.permutation(labels).astype(np.int64)


def sbm_edges(labels: np.ndarray, num_edges: int, homophily: float, rng: np.random.Generator) -> np.ndarray:
    """``num_edges`` distinct undirected edges ``(i < j)`` drawn as described in the module docstring."""
    n = labels.shape[0]
    num_classes = int(labels.max()) + 1
    max_edges = n * (n - 1) // 2
    if num_edges > max_edges // 2:
        raise ValueError(f"num_edges {num_edges!r} is too many for {n} nodes (at most {max_edges // 2})")
    members = [np.flatnonzero(labels == c) for c in range(num_classes)]
    order = np.argsort(labels, kind="stable")  # nodes grouped by class
    start = np.concatenate([[0], np.cumsum([m.size for m in members])])
    found = np.empty(0, dtype=np.int64)
    while found.size < num_edges:
        k = 2 * (num_edges - found.size) + 64
        src = rng.integers(0, n, size=k)
        cls = labels[src]
        same = rng.random(k) < homophily
        size_same = start[cls + 1] - start[cls]
        # a same-class partner: a uniform position inside the class's block of `order`
        pos_same = start[cls] + (rng.random(k) * size_same).astype(np.int64)
        # another class's partner: a uniform position outside the block
        pos_other = (rng.random(k) * (n - size_same)).astype(np.int64)
        pos_other = np.where(pos_other >= start[cls], pos_other + size_same, pos_other)
        dst = order[np.where(same, pos_same, pos_other)]
        lo, hi = np.minimum(src, dst), np.maximum(src, dst)
        key = (lo * n + hi)[lo != hi]
        candidates = np.concatenate([found, key])
        _, first = np.unique(candidates, return_index=True)
        found = candidates[np.sort(first)][:num_edges]
    return np.stack([found // n, found % n], axis=1)


def bag_of_words(
    labels: np.ndarray, num_features: int, words_per_node: float, topic_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Binary features: each word is present independently, more likely in its class's topic block."""
    num_classes = int(labels.max()) + 1
    topic_of_word = np.arange(num_features) * num_classes // num_features
    block = np.bincount(topic_of_word, minlength=num_classes).astype(np.float64)
    p_background = (1.0 - topic_fraction) * words_per_node / num_features
    p_topic = topic_fraction * words_per_node / block[labels]  # per node
    prob = p_background + np.where(topic_of_word[None, :] == labels[:, None], p_topic[:, None], 0.0)
    return (rng.random(prob.shape) < np.clip(prob, 0.0, 1.0)).astype(np.float32)


@dataclass(frozen=True)
class SyntheticCitationOptions(NodeSplitOptions):
    """The graph's sizes and statistics (see the module docstring) and the node ranges of the splits."""

    dataset = "synthetic-citation"
    num_nodes: int = 2708
    num_classes: int = 7
    num_features: int = 1433
    num_edges: int = 5429
    homophily: float = 0.81
    words_per_node: float = 18.0
    topic_fraction: float = 0.4

    def check(self) -> None:
        super().check()
        n = self.num_nodes
        self.require_positive("num_nodes", "num_features", "num_edges")
        if not 2 <= self.num_classes <= n:
            self.fail("num_classes", f"in [2, num_nodes={n}]")
        if self.num_features < self.num_classes:
            self.fail("num_features", f">= num_classes={self.num_classes}")
        for name in ("homophily", "topic_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                self.fail(name, "in [0, 1]")
        if not 0.0 < self.words_per_node <= self.num_features:
            self.fail("words_per_node", f"in (0, {self.num_features}]")
        for name in ("train", "val", "test"):
            if getattr(self, name)[1] > n:
                self.fail(name, f"a node range inside the {n} nodes")


def _citation_bytes(o: SyntheticCitationOptions) -> float:
    """The dense word probabilities and features (float64, three temporaries) dominate."""
    return float(o.num_nodes) * float(o.num_features) * 8 * 4 + float(o.num_edges) * 8 * 16


@register_dataset("synthetic-citation", options=SyntheticCitationOptions, inputs="graph",
                  shape=lambda o: (o.num_features,), memory=_citation_bytes)
def load_synthetic_citation(data_dir: str | None, opts: SyntheticCitationOptions, seed: int) -> DataBundle:
    """A Cora-shaped stochastic-block-model graph (see the module docstring); ``data_dir`` is unused."""
    n, num_classes, num_features = opts.num_nodes, opts.num_classes, opts.num_features
    num_edges, homophily = opts.num_edges, opts.homophily
    words_per_node, topic_fraction = opts.words_per_node, opts.topic_fraction
    train, val, test = opts.train, opts.val, opts.test

    rng = np.random.default_rng(seed)
    labels = class_labels(n, num_classes, rng)
    edges = sbm_edges(labels, num_edges, homophily, rng)
    feats = bag_of_words(labels, num_features, words_per_node, topic_fraction, rng)

    # built exactly as the cora loader builds its bundle
    return graph_bundle(
        edges[:, 0], edges[:, 1], feats, labels, num_classes, "synthetic-citation", train=train, val=val, test=test
    )
