"""Saliency scores and the layerwise ratios they induce, against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ertrain.scores import (
    global_topk_masks,
    iterative_synflow_masks,
    layer_ratios,
    magnitude_scores,
    masks_ratios,
    snip_scores,
    synflow_scores,
)

# A 2-layer bias-free ReLU net 2 -> 3 -> 2 with hand-picked weights.
W1 = [[1.0, -2.0], [0.5, 3.0], [-1.0, 1.0]]
W2 = [[2.0, 0.0, -1.0], [1.0, 1.0, 1.0]]


def two_layer_net() -> tuple[nn.Module, list[tuple[str, nn.Module]]]:
    net = nn.Sequential(nn.Linear(2, 3, bias=False), nn.ReLU(), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(W1))
        net[2].weight.copy_(torch.tensor(W2))
    return net, [("0", net[0]), ("2", net[2])]


def test_synflow_scores_hand_computed() -> None:
    # R = 1^T |W2| |W1| 1. Column sums of |W2|: (3, 1, 2); row sums of |W1|: (3, 3.5, 2).
    # score1[i, j] = |W1_ij| * colsum_i(|W2|); score2[k, i] = |W2_ki| * rowsum_i(|W1|).
    net, layers = two_layer_net()
    s1, s2 = synflow_scores(net, (2,), layers=layers)
    np.testing.assert_allclose(s1.numpy(), [[3, 6], [0.5, 3], [2, 2]])
    np.testing.assert_allclose(s2.numpy(), [[6, 0, 2], [3, 3.5, 2]])


def test_synflow_ratios_hand_computed() -> None:
    # Scores ranked: 6 (L1), 6 (L2), 3.5 (L2), 3 (L1, first by position), ...
    net, layers = two_layer_net()
    scores = synflow_scores(net, (2,), layers=layers)
    # density 0.25 of 12 weights: keep 3 -> layer 1 keeps one of 6, layer 2 two of 6.
    np.testing.assert_allclose(layer_ratios(scores, 0.25), [1 / 6, 2 / 6])
    # density 0.3: 3.6 weights; the 0.6 remainder goes to the next-ranked weight (layer 1's 3).
    np.testing.assert_allclose(layer_ratios(scores, 0.3), [1.6 / 6, 2 / 6])
    masks = global_topk_masks(scores, 0.25)
    assert masks[0].tolist() == [[False, True], [False, False], [False, False]]
    assert masks[1].tolist() == [[True, False, False], [False, True, False]]


def test_synflow_respects_masks() -> None:
    net, layers = two_layer_net()
    m1 = torch.tensor([[True, False], [True, True], [True, True]])
    m2 = torch.ones(2, 3, dtype=torch.bool)
    s1, s2 = synflow_scores(net, (2,), layers=layers, masks=[m1, m2])
    # |W1| masked row sums: (1, 3.5, 2)
    np.testing.assert_allclose(s2.numpy(), [[2, 0, 2], [1, 3.5, 2]])
    assert s1[0, 1] == 0
    # the model itself is unchanged
    assert net[0].weight[0, 1].item() == -2.0


def test_snip_scores_match_manual_backprop() -> None:
    net, layers = two_layer_net()
    x = np.array([[1.0, 0.5], [-0.5, 2.0], [0.3, -1.0]])
    y = np.array([0, 1, 1])
    w1, w2 = np.array(W1), np.array(W2)
    # forward / backward of mean cross-entropy, by hand
    h = x @ w1.T
    a = np.maximum(h, 0)
    z = a @ w2.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(2)[y]) / len(y)
    dw2 = dz.T @ a
    dh = (dz @ w2) * (h > 0)
    dw1 = dh.T @ x
    s1, s2 = snip_scores(net, torch.tensor(x, dtype=torch.float32), torch.tensor(y), layers=layers)
    np.testing.assert_allclose(s1.numpy(), np.abs(w1 * dw1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(s2.numpy(), np.abs(w2 * dw2), rtol=1e-5, atol=1e-7)
    assert net[0].weight.grad is None


def test_magnitude_scores_and_mask_ratios() -> None:
    net, layers = two_layer_net()
    s1, s2 = magnitude_scores(net, layers=layers)
    np.testing.assert_allclose(s1.numpy(), np.abs(W1))
    # |w| ranked: 3 (L1), 2 (L1), 2 (L2), then the 1s in position order: L1[0,0], L1[2,0], L1[2,1].
    masks = global_topk_masks([s1, s2], 0.5)
    np.testing.assert_allclose(masks_ratios(masks), [5 / 6, 1 / 6])
    assert masks[1].tolist() == [[True, False, False], [False, False, False]]
    assert sum(int(m.sum()) for m in masks) == 6


@settings(max_examples=25)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    density=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_global_topk_exact_and_ratios_exact(sizes: list[int], density: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    scores = [torch.rand(n, 3, generator=g) for n in sizes]
    total = sum(s.numel() for s in scores)
    masks = global_topk_masks(scores, density)
    kept = sum(int(m.sum()) for m in masks)
    assert kept == round(density * total)
    kept_vals = torch.cat([s[m] for s, m in zip(scores, masks, strict=True)])
    dropped_vals = torch.cat([s[~m] for s, m in zip(scores, masks, strict=True)])
    if kept_vals.numel() and dropped_vals.numel():
        assert kept_vals.min() >= dropped_vals.max()
    ratios = layer_ratios(scores, density)
    m_l = np.array([s.numel() for s in scores])
    assert abs((ratios * m_l).sum() / m_l.sum() - density) < 1e-12
    assert ((ratios >= 0) & (ratios <= 1)).all()


def test_global_topk_within_candidates() -> None:
    g = torch.Generator().manual_seed(0)
    scores = [torch.rand(10, 10, generator=g), torch.rand(5, 10, generator=g)]
    cand = [torch.rand(10, 10, generator=g) < 0.4, torch.rand(5, 10, generator=g) < 0.4]
    n_cand = sum(int(c.sum()) for c in cand)
    masks = global_topk_masks(scores, 0.5, masks=cand)
    assert sum(int(m.sum()) for m in masks) == round(0.5 * n_cand)
    assert all(not (m & ~c).any() for m, c in zip(masks, cand, strict=True))


def test_iterative_synflow_exact_count_and_nested() -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(6, 8, bias=False), nn.ReLU(), nn.Linear(8, 4, bias=False))
    layers = [("0", net[0]), ("2", net[2])]
    masks = iterative_synflow_masks(net, (6,), 0.2, iterations=10, layers=layers)
    assert sum(int(m.sum()) for m in masks) == round(0.2 * 80)
    # one iteration equals one-shot SynFlow pruning
    one = iterative_synflow_masks(net, (6,), 0.2, iterations=1, layers=layers)
    ref = global_topk_masks(synflow_scores(net, (6,), layers=layers), 0.2)
    assert all(torch.equal(a, b) for a, b in zip(one, ref, strict=True))


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_bad_density_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="density"):
        layer_ratios([torch.ones(3)], bad)


def test_saliency_density_schemes_randomise_ratios(tmp_path: object) -> None:
    import json
    from pathlib import Path

    from ertrain.density import capped_proportional, layer_densities, layer_sizes
    from ertrain.masks import Masking
    from ertrain.models import build_model, maskable_layers

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("mlp", num_classes=3, in_features=6, hidden=(8, 5))
    shapes = [tuple(m.weight.shape) for _, m in maskable_layers(model)]
    sizes = layer_sizes(shapes)
    # ratios given: p_l proportional to them (one-weight floor for an emptied layer), mean exactly 0.2
    ratios = [0.1, 0.5, 0.0]
    p = layer_densities("snip", shapes, 0.2, ratios=ratios)
    floored = np.maximum(ratios, 1 / sizes)
    np.testing.assert_allclose(p, capped_proportional(floored, sizes, 0.2))
    assert abs(float(np.dot(p, sizes) / sizes.sum()) - 0.2) < 1e-12
    # SNIP from the model and a batch = the ratios of its global top-k mask, randomised
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
    expected = layer_ratios(snip_scores(model, x, y), 0.3)
    p = layer_densities("snip", shapes, 0.3, net=model, batch=(x, y))
    np.testing.assert_allclose(p, capped_proportional(np.maximum(expected, 1 / sizes), sizes, 0.3))
    # SynFlow through Masking.from_scheme: an ER mask whose layer ratios follow iterative SynFlow's
    g = torch.Generator().manual_seed(1)
    syn = masks_ratios(iterative_synflow_masks(model, (6,), 0.3, iterations=5))
    masking = Masking.from_scheme(model, "synflow", 0.3, g, net=model, input_shape=(6,), iterations=5)
    np.testing.assert_allclose(list(masking.requested_densities.values()),
                               capped_proportional(np.maximum(syn, 1 / sizes), sizes, 0.3))
    # ER-IMP from a finished IMP run's result.json
    run_dir = Path(str(tmp_path))
    # keys sorted as in result.json; layer_order gives the forward order
    result = {"method": "imp", "layer_densities": {"a": 0.4, "b": 0.2, "c": 0.8}, "layer_order": ["b", "c", "a"]}
    (run_dir / "result.json").write_text(json.dumps(result))
    p = layer_densities("imp", shapes, 0.25, run=str(run_dir))
    np.testing.assert_allclose(p, capped_proportional(np.array([0.2, 0.8, 0.4]), sizes, 0.25))
    with pytest.raises(ValueError, match="ratios"):
        layer_densities("snip", shapes, 0.2)
    (run_dir / "result.json").write_text(json.dumps({"method": "static"}))
    with pytest.raises(ValueError, match="not the result of an IMP run"):
        layer_densities("imp", shapes, 0.25, run=str(run_dir))


def test_apportion_exact_and_capped() -> None:
    from ertrain.scores import apportion

    assert apportion(10, [1, 1, 1], [10, 10, 10]).tolist() == [4, 3, 3]
    assert apportion(10, [1, 1, 8], [10, 10, 2]).tolist() == [4, 4, 2]
    assert apportion(0, [1, 2], [3, 3]).tolist() == [0, 0]
    with pytest.raises(ValueError, match="total"):
        apportion(7, [1, 1], [3, 3])


def test_scheme_options_completes_saliency_schemes_only() -> None:
    from ertrain.scores import scheme_options

    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    g = torch.Generator().manual_seed(0)
    x, y = torch.arange(40.0).reshape(10, 4), torch.arange(10) % 2
    opts = scheme_options("snip", {"a": 1}, net, x, y, 3, g)
    bx, by = opts["batch"]  # type: ignore[misc]
    assert opts["net"] is net and opts["a"] == 1 and bx.shape == (3, 4)
    rows = (bx[:, 0] / 4).long()  # which examples were drawn: labels must match them
    assert torch.equal(by, y[rows])
    assert scheme_options("synflow", {}, net, x, y, 3, g)["input_shape"] == (4,)
    assert scheme_options("erk", {"form": "text"}, net, x, y, 3, g) == {"form": "text"}
    assert scheme_options("snip", {"ratios": [0.5]}, net, x, y, 3, g) == {"ratios": [0.5]}
