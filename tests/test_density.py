"""Tests of ertrain.density: exact global density for every scheme, checked against independent solvers."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from ertrain.density import DENSITY_SCHEMES, erk_raw, layer_densities, layer_sizes, overall_density, plan_densities
from ertrain.models import build_model, layer_weight, maskable_layers

shape_st = st.lists(st.integers(1, 48), min_size=2, max_size=4).map(tuple)
shapes_st = st.lists(shape_st, min_size=1, max_size=8)
density_st = st.floats(0.001, 1.0)


def weighted_mean(shapes: list[tuple[int, ...]], p: np.ndarray) -> float:
    m = np.array([np.prod(s, dtype=np.float64) for s in shapes])
    return float((m * p).sum() / m.sum())


def bisect_capped(raw: np.ndarray, sizes: np.ndarray, density: float) -> np.ndarray:
    """Independent solver: ``min(1, eps * raw)`` with ``eps`` found by bisection on the budget."""
    if density >= 1.0:  # every layer dense; the budget root sits on the bracket's end
        return np.ones_like(raw)
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


# ---------------------------------------------------------------------------------------------- paper-code variants
# The paper's code's formulas, written out in plain Python (no numpy) over the layer shapes.


def code_balanced(shapes: list[tuple[int, ...]], density: float) -> list[float]:
    """ER_same_params_per_layer (ER_DST/sparselearning/core.py) / 'balanced' (STR/main.py): X = p * total / L."""
    numels = [math.prod(s) for s in shapes]
    x = density * sum(numels) / len(numels)
    return [x / n if x / n < 1 else 1.0 for n in numels]


def code_str_erk(shapes: list[tuple[int, ...]], density: float) -> list[float]:
    """'ERK' of STR/main.py: raw = sum(shape) / numel, C = kept / sum(raw * numel), clamp(C * raw, 0, 1)."""
    raws = [sum(s) / math.prod(s) for s in shapes]
    numels = [math.prod(s) for s in shapes]
    c = sum(numels) * density / sum(r * n for r, n in zip(raws, numels, strict=True))
    return [min(max(c * r, 0.0), 1.0) for r in raws]


def code_dst_erk(shapes: list[tuple[int, ...]], density: float) -> list[float]:
    """'ERK' of ER_DST/sparselearning/core.py: solve epsilon, make the largest raw score dense, repeat."""
    dense: set[int] = set()
    while True:
        divisor, rhs, raw = 0.0, 0.0, {}
        for i, s in enumerate(shapes):
            n = math.prod(s)
            if i in dense:
                rhs -= n * (1 - density)
            else:
                rhs += n * density
                raw[i] = sum(s) / n
                divisor += raw[i] * n
        epsilon = rhs / divisor
        top = max(raw.values())
        if top * epsilon > 1:
            dense |= {i for i, r in raw.items() if r == top}
        else:
            return [1.0 if i in dense else epsilon * raw[i] for i in range(len(shapes))]


def shapes_of(name: str, **options: object) -> list[tuple[int, ...]]:
    model = build_model(name, num_classes=10, **options)  # type: ignore[arg-type]
    return [tuple(layer_weight(m).shape) for _, m in maskable_layers(model)]


# ResNet18 of the paper's STR code (STR/models/resnet18.py): the classifier is a 1x1 conv, so its ERK score
# counts two more dimensions than a Linear(512, 10).
STR_RESNET18_CLASSIFIER = (10, 512, 1, 1)

PAPER_CODE_MODELS = {
    "vgg16-paper-code": lambda: shapes_of("vgg16", variant="paper-code"),
    "resnet18": lambda: shapes_of("resnet18"),
    "resnet18-str": lambda: shapes_of("resnet18")[:-1] + [STR_RESNET18_CLASSIFIER],
}


@pytest.mark.parametrize("model", sorted(PAPER_CODE_MODELS))
@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.95, 0.99])
def test_paper_code_balanced_and_str_erk_equal_the_codes_formulas(model: str, sparsity: float) -> None:
    shapes = PAPER_CODE_MODELS[model]()
    density = 1 - sparsity
    numels = [math.prod(s) for s in shapes]

    for scheme, opts, expected in (
        ("balanced", {"redistribute": False}, code_balanced(shapes, density)),
        ("erk", {"clamp_once": True}, code_str_erk(shapes, density)),
    ):
        plan = plan_densities(scheme, shapes, density, **opts)
        np.testing.assert_allclose(plan.layers, expected, rtol=1e-12, atol=0)
        realised = sum(p * n for p, n in zip(expected, numels, strict=True)) / sum(numels)
        assert plan.realised == pytest.approx(realised, rel=1e-12)
        assert plan.requested == density and not plan.exact_budget
        assert plan.realised <= density * (1 + 1e-12)
        np.testing.assert_array_equal(layer_densities(scheme, shapes, density, **opts), plan.layers)
    # the ER_DST path's ERK (used for the ratio tables) is the exact default of ``erk``
    np.testing.assert_allclose(layer_densities("erk", shapes, density), code_dst_erk(shapes, density), rtol=1e-9)


def test_paper_code_vgg16_balanced_misses_sparsity_09() -> None:
    """At sparsity 0.9 the code's balanced VGG16 caps the first three convs and the classifier: 0.0794 realised."""
    shapes = shapes_of("vgg16", variant="paper-code")
    plan = plan_densities("balanced", shapes, 0.1, redistribute=False)
    assert [i for i, p in enumerate(plan.layers) if p == 1.0] == [0, 1, 2, 13]
    x = 0.1 * sum(math.prod(s) for s in shapes) / 14
    kept = 1728 + 36864 + 73728 + 5120 + 10 * x
    assert plan.realised == pytest.approx(kept / sum(math.prod(s) for s in shapes), rel=1e-12)
    assert plan.differs() and plan.realised < 0.09
    exact = plan_densities("balanced", shapes, 0.1)
    assert exact.exact_budget and not exact.differs() and abs(exact.realised - 0.1) <= 1e-9


@settings(max_examples=60)
@given(shapes=shapes_st, density=density_st)
def test_paper_code_variants_never_exceed_and_agree_when_nothing_is_capped(
    shapes: list[tuple[int, ...]], density: float
) -> None:
    for scheme, opts in (("balanced", {"redistribute": False}), ("erk", {"clamp_once": True})):
        plan = plan_densities(scheme, shapes, density, **opts)
        assert np.all((plan.layers > 0) & (plan.layers <= 1))
        assert plan.realised <= density * (1 + 1e-12)
        if np.all(plan.layers < 1):  # no layer clamped: the same densities as the exact variant
            np.testing.assert_allclose(plan.layers, layer_densities(scheme, shapes, density), rtol=1e-9)
            assert abs(plan.realised - density) <= 1e-9


@pytest.mark.parametrize(
    ("scheme", "opts", "match"),
    [
        ("balanced", {"redistribute": "no"}, "redistribute must be true or false"),
        ("erk", {"clamp_once": 1}, "clamp_once must be true or false"),
        ("balanced", {"bogus": 1}, "bad options"),
    ],
)
def test_paper_code_options_validated(scheme: str, opts: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plan_densities(scheme, [(4, 4), (4, 4, 3, 3)], 0.5, **opts)
