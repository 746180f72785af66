"""Tests of ertrain.density: exact global density for every scheme, checked against independent solvers."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from ertrain.density import DENSITY_SCHEMES, erk_raw, layer_densities, layer_sizes, overall_density
from ertrain.models import build_model, layer_weight, maskable_layers

shape_st = st.lists(st.integers(1, 48), min_size=2, max_size=4).map(tuple)
shapes_st = st.lists(shape_st, min_size=1, max_size=8)
density_st = st.floats(0.001, 1.0)


def weighted_mean(shapes: list[tuple[int, ...]], p: np.ndarray) -> float:
    m = np.array([np.prod(s, dtype=np.float64) for s in shapes])
    return float((m * p).sum() / m.sum())


def bisect_capped(raw: np.ndarray, sizes: np.ndarray, density: float) -> np.ndarray:
    """Independent solver: ``min(1, eps * raw)`` with ``eps`` found by bisection on the budget."""
    target = density * sizes.sum()

    def f(eps: float) -> float:
        return float((sizes * np.minimum(1.0, eps * raw)).sum() - target)

    hi = 1.0 / raw.min()  # every layer dense
    eps = brentq(f, 0.0, hi, xtol=1e-300, rtol=1e-15, maxiter=2000)
    return np.minimum(1.0, eps * raw)


@cache
def model_shapes(name: str) -> list[tuple[int, ...]]:
    model = build_model(name, num_classes=10)
    return [tuple(layer_weight(m).shape) for _, m in maskable_layers(model)]


@settings(max_examples=60)
@given(shapes=shapes_st, density=density_st, scheme=st.sampled_from(["uniform", "erk", "balanced", "pyramidal"]))
def test_every_scheme_meets_the_budget(shapes: list[tuple[int, ...]], density: float, scheme: str) -> None:
    try:
        p = layer_densities(scheme, shapes, density)
    except ValueError as exc:  # only pyramidal may be unreachable (underflow), and it must say so
        assert scheme == "pyramidal" and "underflow" in str(exc)
        return
    assert np.all((p > 0) & (p <= 1))
    assert abs(weighted_mean(shapes, p) - density) <= 1e-9


@settings(max_examples=60)
@given(shapes=shapes_st, density=density_st, form=st.sampled_from(["code", "text"]))
def test_erk_matches_bisection(shapes: list[tuple[int, ...]], density: float, form: str) -> None:
    raw = np.array([erk_raw(s, form) for s in shapes])
    expected = bisect_capped(raw, layer_sizes(shapes), density)
    np.testing.assert_allclose(layer_densities("erk", shapes, density, form=form), expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=60)
@given(shapes=shapes_st, density=density_st)
def test_balanced_equal_nonzeros_with_redistribution(shapes: list[tuple[int, ...]], density: float) -> None:
    m = layer_sizes(shapes)
    p = layer_densities("balanced", shapes, density)
    # independent: the common count x solves sum_l min(m_l, x) = p * sum m (bisection on x)
    x = brentq(lambda x: np.minimum(m, x).sum() - density * m.sum(), 0.0, m.max(), xtol=1e-12, rtol=1e-15)
    np.testing.assert_allclose(p * m, np.minimum(m, x), rtol=1e-8, atol=1e-6)
    free = p < 1
    if free.sum() > 1:
        nnz = p[free] * m[free]
        assert np.ptp(nnz) <= 1e-7 * nnz.max()


@settings(max_examples=60)
@given(shapes=shapes_st, density=density_st, data=st.data())
def test_from_scores_proportional(shapes: list[tuple[int, ...]], density: float, data: st.DataObject) -> None:
    scores = np.array(data.draw(st.lists(st.floats(0.01, 1.0), min_size=len(shapes), max_size=len(shapes))))
    p = layer_densities("from_scores", shapes, density, scores=scores)
    np.testing.assert_allclose(p, bisect_capped(scores, layer_sizes(shapes), density), rtol=1e-9, atol=1e-12)


def test_pyramidal_is_geometric_and_matches_polynomial_root() -> None:
    shapes = [(300, 784), (100, 300), (10, 100)]
    m = layer_sizes(shapes)
    p = layer_densities("pyramidal", shapes, 0.1)
    p1 = p[0]
    np.testing.assert_allclose(p, p1 ** np.arange(1, 4), rtol=1e-12)
    # the paper's way: the real root in (0, 1) of m_3 x^3 + m_2 x^2 + m_1 x - p sum m
    roots = np.roots([m[2], m[1], m[0], -0.1 * m.sum()])
    real = [r.real for r in roots if abs(r.imag) < 1e-12 and 0 < r.real < 1]
    assert len(real) == 1
    assert p1 == pytest.approx(real[0], rel=1e-10)


def test_erk_forms_by_hand() -> None:
    assert erk_raw((64, 3, 3, 3), "code") == pytest.approx((64 + 3 + 3 + 3) / (64 * 3 * 9))
    assert erk_raw((64, 3, 3, 3), "text") == pytest.approx((64 + 3 + 9) / (64 * 3 * 9))
    assert erk_raw((10, 512), "code") == erk_raw((10, 512), "text") == pytest.approx(522 / 5120)


def test_balanced_by_hand() -> None:
    # sizes 100, 1000, 10000; density 0.1 -> 1110 kept; x = 370 per layer would exceed 100, so layer 0 is dense
    # and the other two share 1010 equally: 505 each.
    shapes = [(10, 10), (100, 10), (100, 100)]
    p = layer_densities("balanced", shapes, 0.1)
    np.testing.assert_allclose(p, [1.0, 0.505, 0.0505], rtol=1e-12)


@pytest.mark.parametrize("model", ["vgg16", "resnet18", "resnet20", "resnet110", "resnet50", "vgg19", "mlp"])
@pytest.mark.parametrize("scheme", ["uniform", "erk", "balanced", "pyramidal"])
@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99])
def test_registered_models_exact(model: str, scheme: str, sparsity: float) -> None:
    shapes = model_shapes(model)
    p = layer_densities(scheme, shapes, 1 - sparsity)
    assert abs(overall_density(shapes, p) - (1 - sparsity)) <= 1e-9


def test_first_conv_and_classifier_capped_by_erk_on_vgg16() -> None:
    p = layer_densities("erk", model_shapes("vgg16"), 0.1)
    assert p[0] == 1.0 and p[-1] == 1.0 and p[-2] < 0.1


@pytest.mark.parametrize(
    ("scheme", "density", "opts", "match"),
    [
        ("nosuch", 0.5, {}, "valid names: .*balanced"),
        ("dense", 0.5, {}, "density must be 1"),
        ("uniform", 0.0, {}, "density must be in"),
        ("uniform", 1.5, {}, "density must be in"),
        ("from_scores", 0.5, {}, "needs scores"),
        ("from_scores", 0.5, {"scores": [1.0]}, "2 layers"),
        ("from_scores", 0.5, {"scores": [1.0, 0.0]}, "positive"),
        ("erk", 0.5, {"form": "other"}, "'code' or 'text'"),
        ("uniform", 0.5, {"bogus": 1}, "bad options"),
    ],
)
def test_bad_input_raises(scheme: str, density: float, opts: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        layer_densities(scheme, [(4, 4), (4, 4, 3, 3)], density, **opts)


def test_registry_lists_schemes() -> None:
    assert {"dense", "uniform", "erk", "pyramidal", "balanced", "from_scores"} <= set(DENSITY_SCHEMES)
    assert np.all(layer_densities("dense", [(3, 4)], 1.0) == 1.0)
    with pytest.raises(ValueError, match="shape"):
        layer_sizes([(3, 0)])
