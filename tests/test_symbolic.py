"""numpy (``ertheory.bounds``) against sympy (``ertheory.symbolic``), and the paper's asymptotic claims."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from ertheory import bounds, symbolic

densities = st.floats(min_value=1e-3, max_value=1.0, allow_nan=False)
deltas = st.floats(min_value=1e-6, max_value=0.99, allow_nan=False)
unit = st.floats(min_value=1e-5, max_value=0.99, allow_nan=False)


def floats(exprs: list[sp.Expr]) -> list[float]:
    return [float(e.evalf(30)) for e in exprs]


def test_width_factor_behaves_like_one_over_p() -> None:
    """The paper's claim 1 / log(1/(1-p)) ~ 1/p as p -> 0, and the proof's factor of Thm 2.3 ~ 1/p^2."""
    assert symbolic.width_factor_limit(1) == 1
    assert symbolic.width_factor_limit(2) == 1
    series = symbolic.width_factor_series(3).removeO()
    assert sp.simplify(series - (1 / symbolic.p - sp.Rational(1, 2) - symbolic.p / 12)) == 0
    # 1 - p is the sparsity s: the factor is 1 / log(1 / s), the abstract's form
    s = symbolic.s
    assert sp.simplify(symbolic.width_factor(1 - s) - 1 / sp.log(1 / s)) == 0


def test_layer_condition_gives_the_theorems_formula() -> None:
    """Solving (1 - p)^{q_{l-1}} = delta / (L m q) gives the q_{l-1} of Theorems 2.1/2.2/A.5."""
    p, delta, L, m, q = symbolic.p, symbolic.delta, symbolic.L, symbolic.m, symbolic.q
    derived = symbolic.layer_condition()
    stated = symbolic.width_factor(p) * sp.log(L * m * q / delta)
    for values in ({p: sp.Rational(1, 10), delta: sp.Rational(1, 1000), L: 3, m: 1280, q: 7},
                   {p: sp.Rational(9, 10), delta: sp.Rational(1, 2), L: 2, m: 5, q: 1}):
        assert abs(float((derived - stated).subs(values).evalf(40))) < 1e-30
    assert sp.simplify(sp.expand_log(derived - stated, force=True)) == 0


def test_bernoulli_step_of_the_proof() -> None:
    """(1 - delta/(L m q))^{m q} >= 1 - delta/L >= (1 - delta)^{1/L}: each layer meets its share of the budget."""
    for L, mq, dlt in ((2, 1280, 1e-3), (4, 7, 0.5), (3, 1, 0.9)):
        lhs = mq * math.log1p(-dlt / (L * mq))
        assert lhs >= math.log1p(-dlt / L) >= math.log1p(-dlt) / L


@settings(max_examples=25)
@given(widths=st.lists(st.integers(1, 300), min_size=2, max_size=4), data=st.data(), delta=deltas)
def test_theorem_2_2_numpy_matches_sympy(widths: list[int], data: st.DataObject, delta: float) -> None:
    L = len(widths) - 1
    dens = data.draw(st.lists(densities, min_size=L, max_size=L))
    for recursion in ("integer", "real"):
        num = bounds.theorem_2_2(widths, dens, delta, recursion=recursion)
        sym = floats(symbolic.theorem_2_2_q(widths, dens, delta, recursion=recursion))
        np.testing.assert_allclose(num.q, sym, rtol=1e-10)
        if all(abs(x - round(x)) > 1e-9 for x in sym):
            assert num.q_int.tolist() == [math.ceil(x) for x in sym]


@settings(max_examples=25)
@given(
    channels=st.lists(st.integers(1, 64), min_size=2, max_size=4),
    data=st.data(),
    p=densities,
    delta=deltas,
)
def test_theorem_a5_numpy_matches_sympy(channels: list[int], data: st.DataObject, p: float, delta: float) -> None:
    L = len(channels) - 1
    kernels = data.draw(st.lists(st.integers(1, 25), min_size=L, max_size=L))
    m_T = [channels[l + 1] * channels[l] * kernels[l] for l in range(L)]
    num = bounds.theorem_a5(channels, kernels, p, delta)
    np.testing.assert_allclose(num.q, floats(symbolic.theorem_2_2_q(channels, p, delta, m_T=m_T)), rtol=1e-10)


@settings(max_examples=30)
@given(d=st.integers(1, 10**5), p=densities, delta=deltas)
def test_theorem_2_3_numpy_matches_sympy(d: int, p: float, delta: float) -> None:
    paper, proof = symbolic.theorem_2_3_bounds(d, p, delta)
    lb = bounds.theorem_2_3(d, p, delta)
    assert float(lb.paper_bound) == pytest.approx(float(paper.evalf(30)), rel=1e-9, abs=1e-12)
    assert float(lb.proof_bound) == pytest.approx(float(proof.evalf(30)), rel=1e-9, abs=1e-12)


@settings(max_examples=30)
@given(p=densities, eps=unit, delta=unit, C=st.floats(0.1, 10.0))
def test_lemma_2_4_numpy_matches_sympy(p: float, eps: float, delta: float, C: float) -> None:
    expected = float(symbolic.lemma_2_4(p, eps, delta, C).evalf(30))
    assert float(bounds.lemma_2_4(p, eps, delta, C)) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@settings(max_examples=30)
@given(
    eps=unit,
    norms=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=5),
    data=st.data(),
    n_out=st.integers(1, 100),
)
def test_epsilon_l_numpy_matches_sympy(eps: float, norms: list[float], data: st.DataObject, n_out: int) -> None:
    B = data.draw(st.lists(st.floats(0.0, 100.0), min_size=len(norms), max_size=len(norms)))
    np.testing.assert_allclose(
        bounds.epsilon_l(eps, norms, B, n_out), floats(symbolic.epsilon_l(eps, norms, B, n_out)), rtol=1e-10
    )


@settings(max_examples=25)
@given(
    widths=st.lists(st.integers(1, 200), min_size=2, max_size=4),
    data=st.data(),
    delta=deltas,
    C=st.floats(0.1, 5.0),
    gamma=st.floats(0.01, 2.0),
)
def test_theorem_2_5_numpy_matches_sympy(
    widths: list[int], data: st.DataObject, delta: float, C: float, gamma: float
) -> None:
    L = len(widths) - 1
    dens = data.draw(st.lists(densities, min_size=L, max_size=L))
    eps = data.draw(st.lists(unit, min_size=L, max_size=L))
    num = bounds.theorem_2_5(widths, dens, delta, eps, C=C, gamma=gamma)
    qs, rho = symbolic.theorem_2_5_q(widths, dens, delta, eps, C=C, gamma=gamma)
    assert float(num.inputs["rho"]) == pytest.approx(float(rho.evalf(30)), rel=1e-9)
    np.testing.assert_allclose(num.q, floats(qs), rtol=1e-9)
