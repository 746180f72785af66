"""Tests of ``ertheory.bounds``: hand-computed cases, the probability guarantee, monotonicity, errors."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ertheory import bounds

densities = st.floats(min_value=1e-3, max_value=1.0, allow_nan=False)
deltas = st.floats(min_value=1e-6, max_value=0.99, allow_nan=False)
widths_st = st.lists(st.integers(min_value=1, max_value=60), min_size=2, max_size=5)


def direct_q(target_widths: list[int], density: list[float], delta: float, m_T: list[int] | None = None) -> list[float]:
    """Theorem 2.2 written out with ``math`` (integer recursion), one layer at a time."""
    L = len(target_widths) - 1
    m = m_T or [target_widths[l + 1] * target_widths[l] for l in range(L)]
    q = [1.0] * (L + 1)
    for l in range(L - 1, -1, -1):
        p = density[l]
        factor = 0.0 if p == 1.0 else 1.0 / math.log(1.0 / (1.0 - p))
        q[l] = max(1.0, factor * math.log(L * m[l] * math.ceil(q[l + 1] * (1 - 1e-12)) / delta))
    return q


def log_success_probability(q_int: np.ndarray, m_T: list[int], density: list[float]) -> float:
    """log P(every layer realisable) = sum_l m_{T,l} q_l log(1 - (1 - p_l)^{q_{l-1}}) (proof of Thm 2.2)."""
    total = 0.0
    for l in range(1, len(q_int)):
        p = density[l - 1]
        miss = 0.0 if p == 1.0 else math.exp(int(q_int[l - 1]) * math.log1p(-p))
        total += m_T[l - 1] * int(q_int[l]) * math.log1p(-miss)
    return total


# ----------------------------------------------------------------------------------------------------------------
# values checked by hand


def test_theorem_2_1_figure2_setting_by_hand() -> None:
    # Target 784-128-10, p = 0.1 in every layer, delta = 0.001 (Figure 2 at sparsity 0.9).
    # m_{T,2} = 128 * 10 = 1280, log(1/(1-0.1)) = 0.1053605157,
    # q_1 = log(2 * 1280 / 0.001) / 0.1053605157 = 14.7555178 / 0.1053605157 = 140.0479  -> 141 copies,
    # n_{S,1} = 141 * 128 = 18048.
    # m_{T,1} = 784 * 128 = 100352, q_0 = log(2 * 100352 * 141 / 0.001) / 0.1053605157 = 24.066125 / 0.10536 = 228.417
    # -> 229 copies, n_{S,0} = 229 * 784 = 179536.
    r = bounds.theorem_2_1(784, 128, 10, 0.1, 0.001)
    assert r.theorem == "2.1"
    assert r.q[1] == pytest.approx(140.0479, abs=5e-4)
    assert r.q[0] == pytest.approx(228.417, abs=5e-3)
    assert r.q[2] == 1.0
    assert r.q_int.tolist() == [229, 141, 1]
    assert r.widths.tolist() == [179536, 18048, 10]
    assert r.q_int.dtype == np.int64 and r.widths.dtype == np.int64


def test_theorem_2_2_small_case_by_hand() -> None:
    # Target 2-3-1, p = 1/2 (so the width factor is 1/log 2 and q is a base-2 logarithm), delta = 1/2, L = 2:
    # q_1 = log2(2 * m_{T,2} * 1 / delta) = log2(2 * 3 * 2) = log2(12) = 3.585 -> 4 copies,
    # q_0 = log2(2 * m_{T,1} * 4 / delta) = log2(2 * 6 * 4 * 2) = log2(96) = 6.585 -> 7 copies.
    r = bounds.theorem_2_2([2, 3, 1], 0.5, 0.5)
    np.testing.assert_allclose(r.q, [math.log2(96), math.log2(12), 1.0], rtol=1e-12)
    assert r.q_int.tolist() == [7, 4, 1]
    assert r.widths.tolist() == [14, 12, 1]


def test_theorem_2_3_by_hand() -> None:
    # d = 1: log(1 / (1 - (1 - delta))) = log(1 / delta).  p = 1/2, delta = 0.01:
    # stated: log(100) / log 2 = 6.644 -> width 7;
    # proof:  log(100) / log(1 / (1 - 1/4)) = 4.60517 / 0.28768 = 16.008 -> width 17.
    lb = bounds.theorem_2_3(1, 0.5, 0.01)
    assert float(lb.paper_bound) == pytest.approx(math.log2(100), rel=1e-12)
    assert float(lb.proof_bound) == pytest.approx(16.0078, abs=1e-4)
    assert int(lb.paper_width) == 7 and int(lb.proof_width) == 17


def test_lemma_2_4_and_epsilon_l_by_hand() -> None:
    # Lemma 2.4, p = 1/2, epsilon = 0.01, delta = 0.1, C = 2: n = 2 * log2(1 / 0.01) = 13.2877 -> 14.
    assert float(bounds.lemma_2_4(0.5, 0.01, 0.1, C=2.0)) == pytest.approx(2 * math.log2(100), rel=1e-12)
    assert int(bounds.lemma_2_4_width(0.5, 0.01, 0.1, C=2.0)) == 14
    # the uniform form never drops below C * log(1 / min(delta, epsilon)); the stated one is 0 when dense
    assert float(bounds.lemma_2_4(1.0, 0.01, 0.1, form="uniform")) == pytest.approx(math.log(100))
    assert float(bounds.lemma_2_4(1.0, 0.01, 0.1)) == 0.0
    # Equation (3) with L = 2, eps = 0.2, norms (2, 3), B = (1, 4), n_out = 5; eps / L = 0.1:
    # eps_1 = 0.2 / (5 * 2) / [(1 + 1) * 1.1 * (3 + 0.1)] = 0.02 / 6.82,   eps_2 = 0.02 / [(1 + 4) * 1.1].
    e = bounds.epsilon_l(0.2, [2.0, 3.0], [1.0, 4.0], 5)
    np.testing.assert_allclose(e, [0.02 / 6.82, 0.02 / 5.5], rtol=1e-12)


def test_theorem_2_5_by_hand() -> None:
    # Target 1-2-1 (N_T = 2 + 2 = 4), p = 1/2, delta = 0.1, eps_l = (0.01, 0.02), C = 1, gamma = 1:
    # rho = 4^2 * (1 / log 2)^2 * log(1 / 0.01) = 16 * 2.0814 * 4.6052 = 153.37;  delta / rho = 6.52e-4 < eps_l,
    # q_0 = log2(rho / delta) = 10.583 -> 11,  q_1 = q_0 -> 11,  q_2 = 1.
    rho = 16 / math.log(2) ** 2 * math.log(100)
    r = bounds.theorem_2_5([1, 2, 1], 0.5, 0.1, [0.01, 0.02], C=1.0, gamma=1.0)
    assert float(r.inputs["rho"]) == pytest.approx(rho, rel=1e-12)
    np.testing.assert_allclose(r.q, [math.log2(rho / 0.1)] * 2 + [1.0], rtol=1e-12)
    assert r.widths.tolist() == [11, 22, 1]
    # Target 1-1-1 (N_T = 2) and delta = 0.999: rho = 4 / log(2)^2 * log(100) = 38.34, delta / rho = 0.026 > eps_l,
    # so the tolerances decide: layer 0 uses eps_1, layer 1 uses eps_2 (reading (c)).
    r = bounds.theorem_2_5([1, 1, 1], 0.5, 0.999, [0.01, 0.02], C=1.0, gamma=1.0)
    assert float(r.inputs["rho"]) == pytest.approx(4 / math.log(2) ** 2 * math.log(100), rel=1e-12)
    np.testing.assert_allclose(r.q[:2], [math.log2(100), math.log2(50)], rtol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# Theorem 2.1 = Theorem 2.2 at L = 2


@given(
    d=st.integers(1, 2000),
    hidden=st.integers(1, 500),
    out=st.integers(1, 50),
    p1=densities,
    p2=densities,
    delta=deltas,
)
def test_theorem_2_1_is_theorem_2_2_with_two_layers(
    d: int, hidden: int, out: int, p1: float, p2: float, delta: float
) -> None:
    """Theorem 2.1 is Theorem 2.2 with L = 2: its constants 2 m_{T,l} q_l / delta are L m_{T,l} q_l / delta, L = 2.

    Both agree with the formula written out independently (``direct_q``).
    """
    a = bounds.theorem_2_1(d, hidden, out, [p1, p2], delta)
    b = bounds.theorem_2_2([d, hidden, out], [p1, p2], delta)
    np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(a.widths, b.widths)
    np.testing.assert_allclose(a.q, direct_q([d, hidden, out], [p1, p2], delta), rtol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# the guarantee behind the bound


@given(widths=widths_st, data=st.data(), delta=deltas)
def test_integer_widths_reach_the_confidence(widths: list[int], data: st.DataObject, delta: float) -> None:
    """With the integer recursion the built source is realisable with probability >= 1 - delta (proof of Thm 2.2)."""
    L = len(widths) - 1
    dens = data.draw(st.lists(densities, min_size=L, max_size=L))
    r = bounds.theorem_2_2(widths, dens, delta)
    m_T = [widths[l + 1] * widths[l] for l in range(L)]
    assert log_success_probability(r.q_int, m_T, dens) >= math.log1p(-delta) - 1e-12
    np.testing.assert_allclose(r.q, direct_q(widths, dens, delta), rtol=1e-12)
    assert (r.q_int >= r.q * (1 - 1e-12)).all() and (r.q_int < r.q + 1).all()
    np.testing.assert_array_equal(r.widths, r.q_int * np.array(widths))
    assert (r.q >= 1.0).all() and r.q[-1] == 1.0


@given(widths=widths_st, p=densities, delta=deltas)
def test_real_recursion_never_exceeds_integer(widths: list[int], p: float, delta: float) -> None:
    real = bounds.theorem_2_2(widths, p, delta, recursion="real")
    integer = bounds.theorem_2_2(widths, p, delta)
    assert (real.q <= integer.q + 1e-12).all()
    np.testing.assert_allclose(real.q[-2:], integer.q[-2:], rtol=1e-15)  # q_{L-1} is fed q_L = 1 in both


def test_dense_case_is_one_copy_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = bounds.theorem_2_2([784, 128, 128, 10], 1.0, 1e-3)
        lb = bounds.theorem_2_3(10, 1.0, 0.1)
        assert bounds.width_factor(1.0) == 0.0
    np.testing.assert_array_equal(r.q, 1.0)
    assert r.widths.tolist() == [784, 128, 128, 10]
    assert float(lb.paper_bound) == 0.0 and int(lb.paper_width) == 1


def test_vectorised_call_matches_scalar_calls() -> None:
    dens = np.array([0.02, 0.3, 0.75, 1.0])[:, None]  # (4, 1): a uniform density per row
    delta = np.array([1e-4, 0.05, 0.5])[:, None]  # (3, 1) broadcasts against the leading (4,)
    r = bounds.theorem_2_2([20, 16, 8, 3], dens, delta)
    assert r.q.shape == (3, 4, 4) and r.widths.shape == (3, 4, 4)
    for i in range(3):
        for j in range(4):
            one = bounds.theorem_2_2([20, 16, 8, 3], float(dens[j, 0]), float(delta[i, 0]))
            np.testing.assert_array_equal(r.q[i, j], one.q)
    per_layer = bounds.theorem_2_2([20, 16, 8, 3], [0.1, 0.2, 0.3], 0.01)
    np.testing.assert_allclose(per_layer.q, direct_q([20, 16, 8, 3], [0.1, 0.2, 0.3], 0.01), rtol=1e-12)


def test_m_T_sparse_target_and_conv() -> None:
    # a sparse target layer needs fewer copies upstream
    dense = bounds.theorem_2_2([10, 10, 10], 0.2, 0.01)
    sparse = bounds.theorem_2_2([10, 10, 10], 0.2, 0.01, m_T=[100, 7])
    assert sparse.q[1] < dense.q[1] and sparse.q[0] < dense.q[0]
    np.testing.assert_allclose(sparse.q, direct_q([10, 10, 10], [0.2, 0.2], 0.01, [100, 7]), rtol=1e-12)
    # Theorem A.5: m_{T,l} = c_l c_{l-1} k_l; widths count channels
    conv = bounds.theorem_a5([3, 16, 32], [9, 9], [0.1, 0.05], 0.01)
    m_conv = [16 * 3 * 9, 32 * 16 * 9]
    np.testing.assert_allclose(conv.q, direct_q([3, 16, 32], [0.1, 0.05], 0.01, m_conv), rtol=1e-12)
    np.testing.assert_array_equal(conv.widths, conv.q_int * np.array([3, 16, 32]))
    assert conv.theorem == "A.5"
    assert log_success_probability(conv.q_int, m_conv, [0.1, 0.05]) >= math.log1p(-0.01)


# ----------------------------------------------------------------------------------------------------------------
# monotonicity


@given(widths=widths_st, p=densities, p_lower=densities, delta=deltas)
def test_widths_grow_with_sparsity(widths: list[int], p: float, p_lower: float, delta: float) -> None:
    lo, hi = sorted((p, p_lower))
    assert (bounds.theorem_2_2(widths, lo, delta).widths >= bounds.theorem_2_2(widths, hi, delta).widths).all()
    lb_lo, lb_hi = bounds.theorem_2_3(widths[0], lo, delta), bounds.theorem_2_3(widths[0], hi, delta)
    assert lb_lo.paper_bound >= lb_hi.paper_bound and lb_lo.proof_bound >= lb_hi.proof_bound


@given(widths=widths_st, p=densities, d1=deltas, d2=deltas)
def test_widths_shrink_with_delta(widths: list[int], p: float, d1: float, d2: float) -> None:
    lo, hi = sorted((d1, d2))
    assert (bounds.theorem_2_2(widths, p, lo).widths >= bounds.theorem_2_2(widths, p, hi).widths).all()
    assert bounds.theorem_2_3(widths[0], p, lo).paper_bound >= bounds.theorem_2_3(widths[0], p, hi).paper_bound


@given(widths=widths_st, data=st.data(), p=densities, delta=deltas)
def test_widths_grow_with_target_size(widths: list[int], data: st.DataObject, p: float, delta: float) -> None:
    i = data.draw(st.integers(0, len(widths) - 1))
    bigger = list(widths)
    bigger[i] += data.draw(st.integers(1, 40))
    small, big = bounds.theorem_2_2(widths, p, delta), bounds.theorem_2_2(bigger, p, delta)
    assert (big.q >= small.q).all() and (big.widths >= small.widths).all()


@given(d=st.integers(1, 10**6), p=densities, delta=deltas)
def test_lower_bound_proof_form_is_sharper(d: int, p: float, delta: float) -> None:
    lb = bounds.theorem_2_3(d, p, delta)
    assert lb.proof_bound >= lb.paper_bound and lb.proof_width >= lb.paper_width
    import mpmath

    with mpmath.workdps(50):  # the cancellation in 1 - (1 - delta)^(1/d) needs more than float64
        term = float(mpmath.log(1 / (1 - (1 - mpmath.mpf(delta)) ** (mpmath.mpf(1) / d))))
    if p < 1.0:
        assert float(lb.paper_bound) == pytest.approx(term / math.log(1.0 / (1.0 - p)), rel=1e-6)
    assert bounds.theorem_2_3(d + 1, p, delta).paper_bound >= lb.paper_bound


@settings(max_examples=30)
@given(eps=st.floats(1e-4, 0.5), scale=st.floats(1.0, 5.0))
def test_epsilon_l_shrinks_with_weight_norms(eps: float, scale: float) -> None:
    norms = np.array([1.5, 0.7, 2.0])
    base = bounds.epsilon_l(eps, norms, [1.0, 2.0, 3.0], 4)
    more = bounds.epsilon_l(eps, norms * scale, [1.0, 2.0, 3.0], 4)
    assert (more <= base * (1 + 1e-12)).all()
    assert base[-1] == pytest.approx(more[-1])  # the last layer has no downstream weights
    assert (base < eps).all()


# ----------------------------------------------------------------------------------------------------------------
# errors name the bad value


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: bounds.theorem_2_2([784, 128, 10], 0.0, 0.01), "density.*0.0"),
        (lambda: bounds.theorem_2_2([784, 128, 10], 1.5, 0.01), "density.*1.5"),
        (lambda: bounds.theorem_2_2([784, 128, 10], float("nan"), 0.01), "density.*nan"),
        (lambda: bounds.theorem_2_2([784, 128, 10], 0.1, 0.0), "delta.*0.0"),
        (lambda: bounds.theorem_2_2([784, 128, 10], 0.1, 1.0), "delta.*1.0"),
        (lambda: bounds.theorem_2_2([784, 0, 10], 0.1, 0.01), "target_widths.*0"),
        (lambda: bounds.theorem_2_2([784, -3, 10], 0.1, 0.01), "target_widths.*-3"),
        (lambda: bounds.theorem_2_2([784, 2.5, 10], 0.1, 0.01), "target_widths.*2.5"),
        (lambda: bounds.theorem_2_2([784], 0.1, 0.01), "at least two"),
        (lambda: bounds.theorem_2_2([784, 128, 10], [0.1, 0.2, 0.3], 0.01), "density.*length 1 or 2"),
        (lambda: bounds.theorem_2_2([4, 3, 2], 0.1, 0.01, m_T=[13, 6]), "m_T.*13"),
        (lambda: bounds.theorem_2_2([4, 3, 2], 0.1, 0.01, recursion="float"), "recursion.*float"),  # type: ignore[arg-type]
        (lambda: bounds.theorem_2_1(784, 0, 10, 0.1, 0.01), "0"),
        (lambda: bounds.theorem_a5([3, 16, 32], [9], 0.1, 0.01), "kernel_areas"),
        (lambda: bounds.theorem_2_3(0, 0.1, 0.01), "d.*0"),
        (lambda: bounds.lemma_2_4(0.1, 1.0, 0.01), "epsilon.*1.0"),
        (lambda: bounds.lemma_2_4(0.1, 0.1, 0.01, C=0.0), "C.*0.0"),
        (lambda: bounds.lemma_2_4(0.1, 0.1, 0.01, form="loose"), "form.*loose"),  # type: ignore[arg-type]
        (lambda: bounds.epsilon_l(0.1, [1.0, -2.0], [1.0, 1.0], 3), "weight_norms.*-2.0"),
        (lambda: bounds.theorem_2_5([4, 3, 2], 0.1, 0.01, [0.1, 0.1], gamma=0.0), "gamma.*0.0"),
        (lambda: bounds.theorem_2_5([4, 3, 2], 0.1, 0.01, [0.1, 2.0]), "epsilon_l.*2.0"),
        (lambda: bounds.theorem_2_2([10, 10], 1e-300, 0.01), "too large"),
    ],
)
def test_invalid_input_raises_naming_the_value(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_as_dict_is_json() -> None:
    import json

    r = bounds.theorem_2_5([5, 4, 2], [0.2, 0.3], 0.01, 0.05)
    again = json.loads(json.dumps(r.as_dict()))
    assert again["theorem"] == "2.5" and again["widths"] == r.widths.tolist()
    lb = json.loads(json.dumps(bounds.theorem_2_3([1, 10], 0.2, 0.05).as_dict()))
    assert lb["paper_width"] == [int(w) for w in bounds.theorem_2_3([1, 10], 0.2, 0.05).paper_width]


# ----------------------------------------------------------------------------------------------------------------
# huge targets: exact integer widths, or a refusal -- never a wrapped width below the target


def test_widths_beyond_int64_products_by_hand() -> None:
    # m_{T,1} = 1e22 does not fit int64; q_1 = log(2 * 1e12 / 1e-3) / log 2 = 50.83, q_0 = log(2e22 * 51 / 1e-3) / log 2
    r = bounds.theorem_2_1(10**11, 10**11, 10, 0.5, 0.001)
    q1 = math.log(2 * 10**12 / 0.001) / math.log(2)
    q0 = math.log(2 * 10**22 * 51 / 0.001) / math.log(2)
    np.testing.assert_allclose(r.q, [q0, q1, 1.0], rtol=1e-12)
    assert r.widths.tolist() == [90 * 10**11, 51 * 10**11, 10]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: bounds.theorem_2_2([99999999999999999999, 10], 0.5, 0.01), r"at most 2\*\*53 .* 99999999999999999999"),
        (lambda: bounds.theorem_2_2([2**52, 10], 0.5, 0.01), r"ceil\(q_l\) \* n_T,l = \d+ \* 4503599627370496"),
        (lambda: bounds.theorem_2_5([2**52, 4, 2], 0.5, 0.01, 0.1), r"exceeds the largest representable width"),
        (lambda: bounds.theorem_2_3(10**30, 0.5, 0.1), r"d must be integers at most 2\*\*53"),
    ],
)
def test_unrepresentable_widths_are_refused(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


@settings(max_examples=60, deadline=None)
@given(
    widths=st.lists(st.integers(min_value=1, max_value=2**53), min_size=2, max_size=4),
    p=st.floats(min_value=1e-3, max_value=1.0),
    delta=deltas,
)
def test_huge_targets_give_exact_widths_or_refuse(widths: list[int], p: float, delta: float) -> None:
    q = direct_q(widths, [p] * (len(widths) - 1), delta)
    q_int = [math.ceil(v * (1 - 1e-12)) for v in q]
    needed = [a * n for a, n in zip(q_int, widths, strict=True)]  # Python integers: exact
    try:
        r = bounds.theorem_2_2(widths, p, delta)
    except ValueError as exc:
        assert "2**53" in str(exc)
        assert max(needed) > 2**53 * (1 - 1e-9)  # a refusal only where a width really is that large
        return
    got = r.widths.tolist()
    assert got == [a * n for a, n in zip(r.q_int.tolist(), widths, strict=True)]
    assert all(w >= n for w, n in zip(got, widths, strict=True))
    np.testing.assert_allclose(r.q, q, rtol=1e-9)


def test_tiny_delta_and_density_stay_in_logarithms_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = bounds.theorem_2_1(784, 128, 10, 0.5, 1e-320)  # L m q / delta exceeds the float range
        q1 = (math.log(2 * 1280) - math.log(1e-320)) / math.log(2)
        q0 = (math.log(2 * 100352) + math.log(math.ceil(q1)) - math.log(1e-320)) / math.log(2)
        np.testing.assert_allclose(r.q, [q0, q1, 1.0], rtol=1e-12)
        lb = bounds.theorem_2_3(5, 0.5, 1e-320)  # 1 - (1 - delta)^(1/d) = delta / d below float range
        assert float(lb.paper_bound) == pytest.approx((math.log(5) - math.log(1e-320)) / math.log(2), rel=1e-12)
        big = bounds.theorem_2_5([5, 4, 2], 0.5, 0.01, 0.1, gamma=300.0)  # rho = e^1115 overflows, q does not
        # rho = C N_T^(1+g) (1/log 2)^(1+g) log(1/min(eps, delta)), N_T = 5*4 + 4*2 = 28
        log_rho = 301.0 * (math.log(28) - math.log(math.log(2))) + math.log(math.log(100))
        assert float(big.inputs["log_rho"]) == pytest.approx(log_rho, rel=1e-12)
        assert big.as_dict()["inputs"]["rho"] is None  # beyond the float range; JSON stays valid
        expected = (log_rho - math.log(0.01)) / math.log(2)
        np.testing.assert_allclose(big.q[:2], [expected, expected], rtol=1e-12)
        for call in (lambda: bounds.theorem_2_5([5, 4, 2], 0.5, 0.01, 0.1, gamma=1e308),
                     lambda: bounds.theorem_2_5([5, 4, 2], 0.5, 0.01, 0.1, C=1e308),
                     lambda: bounds.theorem_2_2([5, 4, 2], 1e-320, 0.01)):
            with pytest.raises(ValueError, match=r"coverage factor q = .*, too large for integer widths"):
                call()
