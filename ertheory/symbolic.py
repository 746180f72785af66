"""The width bounds of ``ertheory.bounds`` in sympy: derivations, asymptotics and exact cross-checks.

Every numeric function here takes plain Python/numpy numbers, converts them to exact rationals
(``sympy.Rational`` of the float) and returns sympy expressions, so that ``expr.evalf(n)`` gives the
bound to any precision.  They implement the same statements (and the same readings of the garbled
ones) as ``ertheory.bounds``, written independently from the paper's formulas:

* Theorem 2.2 / A.4 / A.5 (and 2.1 = the case ``L = 2``): :func:`theorem_2_2_q`;
* Theorem 2.3: :func:`theorem_2_3_bounds`;  Lemma 2.4: :func:`lemma_2_4`;
* equation (3): :func:`epsilon_l`;  Theorem 2.5: :func:`theorem_2_5_q`.

Symbolic facts: :func:`layer_condition` solves the proof's per-layer event for ``q_{l-1}``;
:func:`width_factor_limit` and :func:`width_factor_series` give the paper's asymptotic claim
``1 / log(1 / (1 - p)) ~ 1 / p`` as ``p -> 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

#: Symbols used by the symbolic statements.
p, s, delta, epsilon = sp.symbols("p s delta epsilon", positive=True)
q, q_prev, m, L = sp.symbols("q q_prev m L", positive=True)

Number = float | int


def _exact(x: Number) -> sp.Rational:
    """The exact rational value of a float (or int)."""
    return sp.Rational(x)


#: Decimal digits used to decide comparisons (max/min/ceiling) between exact expressions.
_DPS = 50


def _larger(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """The larger of two exact real expressions (decided numerically at ``_DPS`` digits; kept exact)."""
    return a if sp.Float((a - b).evalf(_DPS), _DPS) >= 0 else b


def _smaller(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    return b if _larger(a, b) is a else a


def _ceiling(a: sp.Expr) -> sp.Integer:
    return sp.Integer(int(sp.ceiling(a.evalf(_DPS))))


def width_factor(density: sp.Expr | Number = p) -> sp.Expr:
    """``1 / log(1 / (1 - p))``: the width factor of Theorems 2.1-2.5 (0 at ``p = 1``)."""
    pe = density if isinstance(density, sp.Basic) else _exact(density)
    if pe == 1:
        return sp.Integer(0)
    return 1 / sp.log(1 / (1 - pe))


def proof_width_factor(density: sp.Expr | Number = p) -> sp.Expr:
    """``1 / log(1 / (1 - p^2))``: the factor of the sharper bound in the proof of Theorem 2.3."""
    pe = density if isinstance(density, sp.Basic) else _exact(density)
    if pe == 1:
        return sp.Integer(0)
    return 1 / sp.log(1 / (1 - pe**2))


def width_factor_limit(order: int = 1) -> sp.Expr:
    """``lim_{p -> 0+} p^order * width_factor(p)`` for the paper's factor (``order=1``: the limit is 1,
    i.e. ``1 / log(1/(1-p)) ~ 1/p``); ``order=2`` gives the same limit for :func:`proof_width_factor`."""
    factor = width_factor(p) if order == 1 else proof_width_factor(p)
    return sp.limit(p**order * factor, p, 0, "+")


def width_factor_series(n: int = 3) -> sp.Expr:
    """Laurent series of ``1 / log(1/(1-p))`` at ``p = 0``: ``1/p - 1/2 - p/12 + O(p^2)`` (to ``O(p^(n-1))``)."""
    return sp.series(width_factor(p), p, 0, n - 1)


def layer_condition() -> sp.Expr:
    """Solve the proof's per-layer requirement for ``q_{l-1}`` (Theorems 2.1, 2.2, A.5).

    Layer ``l`` is realisable with probability ``(1 - (1 - p)^{q_{l-1}})^{m q}`` (``m = m_{T,l}``, ``q = q_l``);
    it is at least ``(1 - delta)^(1/L)`` once ``(1 - p)^{q_{l-1}} <= delta / (L m q)``.  Returns the ``q_{l-1}``
    at which this holds with equality, ``log(delta / (L m q)) / log(1 - p)``.
    """
    (solution,) = sp.solve(sp.Eq((1 - p) ** q_prev, delta / (L * m * q)), q_prev)
    return sp.simplify(solution)


def theorem_2_2_q(
    target_widths: Sequence[int],
    density: Sequence[Number] | Number,
    delta_value: Number,
    m_T: Sequence[int] | None = None,
    recursion: str = "integer",
) -> list[sp.Expr]:
    """``[q_0, ..., q_L]`` of Theorem 2.2 (= A.4; Theorem 2.1 when ``L = 2``; Theorem A.5 with conv ``m_T``).

    ``q_L = 1``, ``q_l = max(1, log(L m_{T,l+1} q'_{l+1} / delta) / log(1 / (1 - p_{l+1})))`` where ``q'`` is
    ``ceiling(q)`` (``recursion="integer"``) or ``q`` itself (``"real"``); ``m_T`` defaults to dense layers.
    """
    widths = [int(w) for w in target_widths]
    depth = len(widths) - 1
    dens = [density] * depth if isinstance(density, (int, float)) else list(density)
    if len(dens) == 1:
        dens = dens * depth
    counts = [widths[i + 1] * widths[i] for i in range(depth)] if m_T is None else [int(c) for c in m_T]
    dlt = _exact(delta_value)
    qs: list[sp.Expr] = [sp.Integer(1)] * (depth + 1)
    for l in range(depth - 1, -1, -1):
        feed = _ceiling(qs[l + 1]) if recursion == "integer" else qs[l + 1]
        qs[l] = _larger(sp.Integer(1), width_factor(dens[l]) * sp.log(depth * counts[l] * feed / dlt))
    return qs


def theorem_2_3_bounds(d: int, density: Number, delta_value: Number) -> tuple[sp.Expr, sp.Expr]:
    """``(paper_bound, proof_bound)`` of Theorem 2.3: ``log(1 / (1 - (1 - delta)^(1/d)))`` times
    ``1 / log(1/(1-p))`` (stated) or ``1 / log(1/(1-p^2))`` (the proof's sharper form)."""
    term = sp.log(1 / (1 - (1 - _exact(delta_value)) ** sp.Rational(1, int(d))))
    return width_factor(density) * term, proof_width_factor(density) * term


def lemma_2_4(density: Number, epsilon_value: Number, delta_value: Number, C: Number = 1) -> sp.Expr:
    """Equation (1) of Lemma 2.4: ``C / log(1/(1-p)) * log(1 / min(delta, epsilon))``."""
    return _exact(C) * width_factor(density) * sp.log(1 / min(_exact(delta_value), _exact(epsilon_value)))


def epsilon_l(
    epsilon_value: Number, weight_norms: Sequence[Number], B: Sequence[Number], n_out: int
) -> list[sp.Expr]:
    """Equation (3), corrected placement: ``eps_l = eps / (n_{T,L} L) / [(1 + B_{l-1}) (1 + eps/L)^(L-1)
    prod_{k=l+1..L} (||W^(k)|| + eps/L)]`` for ``l = 1..L``."""
    eps = _exact(epsilon_value)
    depth = len(weight_norms)
    out = []
    for l in range(1, depth + 1):
        downstream = sp.Mul(*[_exact(weight_norms[k - 1]) + eps / depth for k in range(l + 1, depth + 1)])
        bracket = (1 + _exact(B[l - 1])) * (1 + eps / depth) ** (depth - 1) * downstream
        out.append(eps / (int(n_out) * depth) / bracket)
    return out


def theorem_2_5_q(
    target_widths: Sequence[int],
    density: Sequence[Number],
    delta_value: Number,
    eps_l: Sequence[Number],
    C: Number = 1,
    gamma: Number = 0.1,
) -> tuple[list[sp.Expr], sp.Expr]:
    """``([q_0, ..., q_L], rho)`` of Theorem 2.5 with the readings (a)-(e) of ``ertheory.bounds.theorem_2_5``."""
    widths = [int(w) for w in target_widths]
    depth = len(widths) - 1
    c, g, dlt = _exact(C), _exact(gamma), _exact(delta_value)
    ps = [_exact(x) for x in density]
    es = [_exact(x) for x in eps_l]
    n_total = sum(widths[i + 1] * widths[i] for i in range(depth))
    # the power 1 + gamma is a float's rational (denominator up to 2^52): evaluate it at _DPS digits, since an
    # exact power of that kind is far too expensive for sympy
    power = 1 + sp.Float(g, _DPS)
    scale = (sp.Float(n_total, _DPS) * width_factor(min(ps)).evalf(_DPS)) ** power
    rho = c * scale * sp.log(1 / min(min(es), dlt))
    rho = _larger(sp.Integer(1), rho)
    qs: list[sp.Expr] = [
        _larger(sp.Integer(1), c * width_factor(ps[l]) * sp.log(1 / _smaller(es[l], dlt / rho))) for l in range(depth)
    ]
    return qs + [sp.Integer(1)], rho
