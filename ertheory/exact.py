"""Exact probabilities of the events the proofs use, and the exact minimal widths they give (no Monte-Carlo).

Three events are computed exactly, in log space (``log1p``/``expm1``/``logsumexp``), so that both a success
probability close to 1 (through its failure probability) and one close to 0 (through its logarithm) are
accurate:

* **The proof event** of Theorems 2.1 / 2.2 (= A.4) / A.5.  The source has ``q_l`` copies of every target
  neuron (channel) of layer ``l`` (``q_L = 1``) and the construction layer ``l = 0`` holds ``q_0`` univariate
  copies of every input.  Layer ``l = 1..L`` is *realisable* when every copy ``i'`` of every target neuron
  ``i`` finds, for every non-zero target weight ``w_{T,ij}``, at least one unmasked edge to the block of the
  ``q_{l-1}`` copies of ``j``.  One (edge, copy) pair uses its own ``q_{l-1}`` mask entries, so

      P(layer l realisable) = (1 - (1 - p_l)^{q_{l-1}})^{m_{T,l} q_l},

  and the layers use disjoint masks, so the proof event has probability ``prod_{l=1}^{L}`` of these
  (DIGEST section 4, with the product starting at ``l = 1``).  For a convolutional target (Theorem A.5) the
  same formula holds with ``m_{T,l}`` the number of non-zero filter elements: an element ``(i, j, k)`` of copy
  ``i'`` needs one of the ``q_{l-1}`` entries ``(i', j', k)``, ``j'`` in block ``j``.

* **The tighter construction's event** (beyond the paper; depth-2 targets, Theorem 2.1's setting).  The proofs
  discard nothing: every copy must be valid.  The construction of :mod:`ertheory.construct` with
  ``mode="tight"`` instead calls a copy *valid* when it can carry its target neuron exactly, and gives the
  copies that are not valid zero outgoing weights.  It succeeds when every output neuron is valid.
  See :func:`tight_log_success` for its exact probability and the independence it rests on.

* **The lower-bound event** of Theorem 2.3 (= A.6): every input of a one-hidden-layer ER(p) source has a path
  to the output.  See :func:`lower_bound_log_success` for the derivation of its exact probability.

The construction layer ``l = 0`` is taken to hold its univariate copies (the theorems put no condition on its
density ``p_0``); densities ``p_1..p_L`` are those of the layers that carry the target's weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ertheory._special import binom_logpmf_rows, logsumexp, xlog1py
from ertheory._validate import as_float_array, check_density, check_open_unit, check_positive_int

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_LN2 = float(np.log(2.0))
#: Exponent of the Bernstein tail bound used to cut binomial sums: the mass left out is below ``2 e^{-230}``.
_TAIL_EXPONENT = 230.0
#: Binomial sums over at most this many terms are taken in full, without a window.
_FULL_SUM_MAX = 2048
#: Rows of binomial sums are processed in groups of at most about this many terms (bounds the memory: each
#: term holds a few float64 temporaries, ~0.2 GB at this size).
_GROUP_TERMS = 2**22
#: Most binomial terms one evaluation of the depth-2 joint search may sum (a search makes 20-60 evaluations,
#: about 1 s per 1e7 terms on one core); larger searches are refused before they start.
MAX_SEARCH_TERMS = 10**7
#: Most values of ``q1`` the depth-2 joint search considers (a few arrays of this length are held).
MAX_Q1_CANDIDATES = 10**7


# ----------------------------------------------------------------------------------------------------------------
# numerics


def log1mexp(x: ArrayLike) -> FloatArray:
    """``log(1 - exp(x))`` for ``x <= 0``, accurate for ``x`` near 0 and for very negative ``x``.

    Uses ``log(-expm1(x))`` for ``x > -log 2`` and ``log1p(-exp(x))`` otherwise (Maechler's switch);
    ``log1mexp(0) = -inf`` and ``log1mexp(-inf) = 0``.
    """
    a = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(a > -_LN2, np.log(-np.expm1(a)), np.log1p(-np.exp(a)))
    return out


def log_block_hit(density: ArrayLike, copies: ArrayLike) -> FloatArray:
    """``log(1 - (1 - p)^k)``: the log-probability that ``k`` independent Ber(p) mask entries hold a 1."""
    p = np.asarray(density, dtype=np.float64)
    k = np.asarray(copies, dtype=np.float64)
    return log1mexp(xlog1py(k, -p))


def _bernstein_window(n: FloatArray, r: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``[lo, hi]`` holding all but ``2 exp(-230)`` of the mass of ``Binomial(n, r)`` (Bernstein's inequality).

    For a sum of ``n`` independent terms bounded by 1 with variance ``s2``,
    ``P(|K - n r| >= t) <= 2 exp(-t^2 / (2 (s2 + t / 3)))``; ``t`` solves ``t^2 = 2 c (s2 + t / 3)`` with
    ``c = 230``.
    """
    s2 = n * r * (1.0 - r)
    c = _TAIL_EXPONENT
    t = c / 3.0 + np.sqrt((c / 3.0) ** 2 + 2.0 * c * s2)
    lo = np.maximum(0.0, np.floor(n * r - t))
    hi = np.minimum(n, np.ceil(n * r + t))
    return lo, hi


def binomial_expectation_log(n: ArrayLike, r: ArrayLike, a: ArrayLike, c: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``log E[f(K)]`` and ``log E[1 - f(K)]`` for ``K ~ Binomial(n, r)`` and ``f(k) = (1 - (1 - a)^k)^c``.

    Both are sums of non-negative terms (no cancellation): the second is the failure probability when ``f``
    is a conditional success probability, accurate even when it is far below machine epsilon.  All arguments
    broadcast.  Sums of more than 2048 terms are restricted to a Bernstein window around ``n r`` that leaves
    out less than ``2 e^{-230}`` (about ``1e-100``) of the binomial mass: an absolute error that only matters
    for probabilities that are themselves below about ``1e-90``.
    """
    n_, r_, a_, c_ = np.broadcast_arrays(
        np.asarray(n, dtype=np.float64),
        np.asarray(r, dtype=np.float64),
        np.asarray(a, dtype=np.float64),
        np.asarray(c, dtype=np.float64),
    )
    shape = n_.shape
    n_, r_, a_, c_ = (v.reshape(-1) for v in (n_, r_, a_, c_))
    if n_.size and n_.max() + 1 <= _FULL_SUM_MAX:
        lo = np.zeros_like(n_)
        hi = n_.copy()
    else:
        lo, hi = _bernstein_window(n_, r_)
    log_s = np.empty(n_.size)
    log_q = np.empty(n_.size)
    # rows sorted by window length and cut into groups, so that short windows are not padded to the longest
    order = np.argsort(hi - lo, kind="stable")
    for part in np.array_split(order, min(8, max(1, n_.size // 16))):
        # a group too large for memory is cut further (rows of a group are independent)
        pieces = max(1, -(-part.size * (int((hi - lo)[part].max(initial=0)) + 1) // _GROUP_TERMS)) if part.size else 1
        for piece in np.array_split(part, min(pieces, max(1, part.size))):
            if piece.size:
                log_s[piece], log_q[piece] = _window_sums(
                    n_[piece], r_[piece], a_[piece], c_[piece], lo[piece], hi[piece]
                )
    return log_s.reshape(shape), log_q.reshape(shape)


def window_terms(n: ArrayLike) -> FloatArray:
    """Number of binomial terms :func:`binomial_expectation_log` sums for ``Binomial(n, r)`` at the worst ``r``
    (``r (1 - r) = 1/4``): ``n + 1`` up to 2048 terms, else the Bernstein window (the cost model of the
    exact searches)."""
    nn = np.asarray(n, dtype=np.float64)
    c = _TAIL_EXPONENT
    bernstein = np.minimum(nn + 1, 2.0 * np.ceil(c / 3.0 + np.sqrt((c / 3.0) ** 2 + 2.0 * c * nn / 4.0)) + 1)
    out: FloatArray = np.where(nn + 1 <= _FULL_SUM_MAX, nn + 1, bernstein)
    return out


def _window_sums(
    n: FloatArray, r: FloatArray, a: FloatArray, c: FloatArray, lo: FloatArray, hi: FloatArray
) -> tuple[FloatArray, FloatArray]:
    width = int((hi - lo).max()) + 1
    k = lo[:, None] + np.arange(width, dtype=np.float64)[None, :]
    inside = k <= hi[:, None]
    k = np.minimum(k, hi[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        logpmf = np.where(inside, binom_logpmf_rows(n, r, lo, width), -np.inf)
        log_f = c[:, None] * log_block_hit(a[:, None], k)
        log_f = np.where(c[:, None] == 0, 0.0, log_f)
        log_not_f = log1mexp(log_f)
        # the window holds all but ~1e-100 of the mass: normalise away the rounding of the log-probabilities
        logpmf = logpmf - logsumexp(logpmf, axis=1, keepdims=True)
        log_s = logsumexp(logpmf + log_f, axis=1)
        log_q = logsumexp(logpmf + log_not_f, axis=1)
        # near 1, the success side is accurate through the failure side, and vice versa
        small_s = log_s < -_LN2
        log_s = np.where(log_q < -_LN2, np.log1p(-np.exp(np.minimum(log_q, 0.0))), log_s)
        log_q = np.where(small_s, log1mexp(np.minimum(log_s, 0.0)), log_q)
    return np.asarray(log_s), np.asarray(log_q)


# ----------------------------------------------------------------------------------------------------------------
# the proof event (Theorems 2.1, 2.2 = A.4, A.5)


def proof_layer_log_success(q: ArrayLike, m_T: ArrayLike, density: ArrayLike) -> FloatArray:
    """Per-layer ``log P(layer l realisable) = m_{T,l} q_l log(1 - (1 - p_l)^{q_{l-1}})`` (proof of Thm 2.2).

    ``q`` has shape ``(..., L + 1)`` (``q_0..q_L``), ``m_T`` and ``density`` shape ``(..., L)`` or broadcast to
    it (a scalar density means the same ``p`` in every layer).  Returns shape ``(..., L)``.
    """
    qa = as_float_array(q, "q")
    if qa.ndim == 0 or qa.shape[-1] < 2:
        raise ValueError(f"q needs a trailing axis q_0..q_L with L >= 1, got {q!r}")
    check_positive_int(qa, "q")
    m = as_float_array(m_T, "m_T")
    if (m < 0).any() or (m != np.round(m)).any():
        raise ValueError(f"m_T must be non-negative integers, got {m_T!r}")
    p = check_density(density)
    out: FloatArray = m * qa[..., 1:] * log_block_hit(p, qa[..., :-1])
    return np.where(m == 0, 0.0, out)


def proof_log_success(q: ArrayLike, m_T: ArrayLike, density: ArrayLike) -> FloatArray:
    """``log P(proof event)``: the sum over ``l = 1..L`` of :func:`proof_layer_log_success` (layers independent)."""
    out: FloatArray = proof_layer_log_success(q, m_T, density).sum(axis=-1)
    return out


def proof_success_probability(q: ArrayLike, m_T: ArrayLike, density: ArrayLike) -> FloatArray:
    """Probability that the construction of Theorems 2.1/2.2/A.5 goes through for the given ``q``."""
    out: FloatArray = np.exp(proof_log_success(q, m_T, density))
    return out


def proof_failure_probability(q: ArrayLike, m_T: ArrayLike, density: ArrayLike) -> FloatArray:
    """``1 - P(proof event)``, computed as ``-expm1(log P)``: accurate when it is tiny."""
    out: FloatArray = -np.expm1(proof_log_success(q, m_T, density))
    return out


def proof_min_q(m_T: ArrayLike, density: ArrayLike, delta: ArrayLike) -> IntArray:
    """Exact per-layer minimal copies for the proof event, with the proof's budget split (Theorem 2.2).

    The proof asks every layer to be realisable with probability ``(1 - delta)^(1/L)``.  Backwards from
    ``q_L = 1``, this returns the smallest integer ``q_{l-1}`` with
    ``(1 - (1 - p_l)^{q_{l-1}})^{m_{T,l} q_l} >= (1 - delta)^{1/L}``, i.e.
    ``q_{l-1} = ceil(log(1 - (1 - delta)^{1/(L m_{T,l} q_l)}) / log(1 - p_l))`` (at least 1), where the theorem
    uses the union-bound step ``1 - x/(m q L) >= (1 - x)^{1/(m q L)}``.  The gap to the theorem's ``q`` is
    what that step (and the rounding) wastes.  ``m_T`` has shape ``(..., L)``; returns ``(..., L + 1)``.
    """
    m = check_positive_int(m_T, "m_T").astype(np.float64)
    if m.ndim == 0:
        m = m[None]
    L = m.shape[-1]
    p = np.broadcast_to(check_density(density), m.shape) if np.ndim(density) == 0 else check_density(density)
    dlt = check_open_unit(delta, "delta")
    batch = np.broadcast_shapes(m.shape[:-1], p.shape[:-1], dlt.shape)
    m = np.broadcast_to(m, batch + (L,))
    p = np.broadcast_to(p, batch + (L,))
    dlt = np.broadcast_to(dlt, batch)
    q = np.ones(batch + (L + 1,), dtype=np.int64)
    log_budget = np.log1p(-dlt) / L
    for l in range(L, 0, -1):
        pl = p[..., l - 1]
        # (1 - p)^q <= 1 - exp(log_budget / (m q_l))  <=>  q >= log(-expm1(...)) / log1p(-p)
        log_t = np.log(-np.expm1(log_budget / (m[..., l - 1] * q[..., l])))
        with np.errstate(divide="ignore", invalid="ignore"):
            guess = np.where(pl >= 1.0, 1.0, np.ceil(log_t / np.log1p(-pl)))
        cand = np.maximum(1, guess).astype(np.int64)

        def ok(c: IntArray, pl: FloatArray = pl, l: int = l) -> NDArray[np.bool_]:
            lp = m[..., l - 1] * q[..., l] * log_block_hit(pl, c)
            return np.asarray(lp >= log_budget)

        # floating-point rounding can put the ceiling one off either way: fix it by direct evaluation
        cand = np.where(ok(cand), cand, cand + 1)
        lower = np.maximum(1, cand - 1)
        cand = np.where((cand > 1) & ok(lower), lower, cand)
        q[..., l - 1] = cand
    return q


# ----------------------------------------------------------------------------------------------------------------
# the tighter construction (depth-2 targets)


def tight_log_success(
    q0: ArrayLike,
    q1: ArrayLike,
    density_1: ArrayLike,
    density_2: ArrayLike,
    in_degree: ArrayLike,
    out_degree: ArrayLike,
) -> tuple[FloatArray, FloatArray]:
    """``(log P, log (1 - P))`` of the tighter construction's event for a depth-2 target (beyond the paper).

    Target ``W2 relu(W1 x + b1) + b2`` with ``n_{T,1}`` hidden neurons; ``in_degree[j]`` is the number of
    non-zero weights into hidden neuron ``j`` (row ``j`` of ``W1``), ``out_degree[j]`` the number out of it
    (column ``j`` of ``W2``); for a convolutional target count non-zero filter elements instead.  The source
    has ``q0`` univariate copies of every input, ``q1`` copies of every hidden neuron, one of every output.

    *Event.*  A hidden copy ``j'`` of ``j`` is valid when, for every non-zero ``w^{(1)}_{T,jk}``, its mask row
    has an edge into the block of input ``k``; it then carries ``j`` exactly.  An output neuron ``i`` is
    valid when, for every non-zero ``w^{(2)}_{T,ij}``, it has an edge from at least one *valid* copy of ``j``.
    The construction succeeds when every output neuron is valid (invalid hidden copies get zero weights out).

    *Probability.*  Let ``K_j`` be the number of valid copies of ``j``.

    1. Copy ``j'`` is valid with probability ``r_j = (1 - (1 - p_1)^{q0})^{in_degree[j]}``, and different copies
       are independent: their validity is a function of disjoint rows of the layer-1 mask, whose entries are
       independent.  So ``K_j ~ Binomial(q1, r_j)``, and ``K_1, ..., K_{n_{T,1}}`` are independent (disjoint
       sets of rows again).
    2. Given the layer-1 mask, output ``i`` finds a valid copy of ``j`` with probability
       ``1 - (1 - p_2)^{K_j}``; the (i, j) pairs use disjoint entries of the layer-2 mask, which is independent
       of the layer-1 mask.  So ``P(success | K) = prod_j (1 - (1 - p_2)^{K_j})^{out_degree[j]}``.
    3. The outputs share the ``K_j``, so they are *not* independent; but by 1 the factors of ``j`` are
       independent, and ``P = prod_j E[(1 - (1 - p_2)^{K_j})^{out_degree[j]}]`` exactly: one binomial sum
       per distinct ``(in_degree, out_degree)`` pair.

    ``q0, q1, density_1, density_2`` broadcast; ``in_degree``/``out_degree`` are 1-D over hidden neurons.
    """
    return tight_log_success_from_table(q0, q1, density_1, density_2, DegreeTable.from_degrees(in_degree, out_degree))


@dataclass(frozen=True)
class DegreeTable:
    """The distinct ``(in_degree, out_degree)`` pairs of a target's hidden neurons with their multiplicities.

    The tight event's probability is one binomial sum per distinct pair (:func:`tight_log_success`), so this
    table is all it needs: built once per target, it makes the probability independent of the hidden width.
    ``m1`` and ``m2`` are the target's edge counts ``sum in_degree`` and ``sum out_degree``.
    """

    pairs: IntArray
    counts: IntArray
    m1: int
    m2: int

    @classmethod
    def from_degrees(cls, in_degree: ArrayLike, out_degree: ArrayLike) -> DegreeTable:
        ind = np.asarray(in_degree, dtype=np.int64).reshape(-1)
        outd = np.asarray(out_degree, dtype=np.int64).reshape(-1)
        if ind.shape != outd.shape or ind.size == 0 or (ind < 0).any() or (outd < 0).any():
            raise ValueError(
                f"in_degree and out_degree must be equal-length non-negative, got {in_degree!r}, {out_degree!r}"
            )
        pairs, counts = np.unique(np.stack([ind, outd], axis=1), axis=0, return_counts=True)
        return cls(pairs, counts.astype(np.int64), int(ind.sum()), int(outd.sum()))

    @classmethod
    def dense(cls, d: int, n_hidden: int, n_out: int) -> DegreeTable:
        """The table of a dense ``d - n_hidden - n_out`` target (one pair), without building per-neuron arrays."""
        return cls(np.array([[d, n_out]], dtype=np.int64), np.array([n_hidden], dtype=np.int64),
                   d * n_hidden, n_hidden * n_out)


def tight_log_success_from_table(
    q0: ArrayLike, q1: ArrayLike, density_1: ArrayLike, density_2: ArrayLike, table: DegreeTable
) -> tuple[FloatArray, FloatArray]:
    q0a = check_positive_int(q0, "q0").astype(np.float64)
    q1a = check_positive_int(q1, "q1").astype(np.float64)
    p1 = check_density(density_1, "density_1")
    p2 = check_density(density_2, "density_2")
    shape = np.broadcast_shapes(q0a.shape, q1a.shape, p1.shape, p2.shape)
    total = np.zeros(shape)
    log_hit0 = log_block_hit(p1, q0a)
    for (deg_in, deg_out), mult in zip(table.pairs, table.counts, strict=True):
        if deg_out == 0:
            continue
        r = np.exp(deg_in * log_hit0) if deg_in else np.ones(shape)
        log_s, log_q = binomial_expectation_log(q1a, r, p2, deg_out)
        # log E is log(1 - Q); use the failure side when it is the accurate one
        with np.errstate(divide="ignore"):
            log_e = np.where(log_q < -_LN2, np.log1p(-np.exp(log_q)), log_s)
        total = total + mult * log_e
    return total, log1mexp(total)


def dense_degrees(d: int, n_hidden: int, n_out: int) -> tuple[IntArray, IntArray]:
    """In- and out-degrees of the hidden neurons of a dense ``d - n_hidden - n_out`` target."""
    return np.full(n_hidden, d, dtype=np.int64), np.full(n_hidden, n_out, dtype=np.int64)


@dataclass(frozen=True)
class Depth2Widths:
    """Jointly minimal copies ``(q0, q1)`` of a depth-2 target for one event, and the source widths they give.

    ``q0`` and ``q1`` minimise ``n_{S,0} + n_{S,1} = q0 d + q1 n_{T,1}`` subject to ``P(event) >= 1 - delta``;
    ``probability`` is ``P(event)`` there.
    """

    event: str
    q0: int
    q1: int
    n_S0: int
    n_S1: int
    probability: float


def _depth2_log_q(event: str, q0: IntArray, q1: IntArray, p1: float, p2: float, table: DegreeTable) -> FloatArray:
    if event == "proof":
        lp = float(table.m1) * q1 * log_block_hit(p1, q0) + float(table.m2) * log_block_hit(p2, q1)
        out: FloatArray = log1mexp(lp)
        return out
    return tight_log_success_from_table(q0, q1, p1, p2, table)[1]


_DEPTH2_EVENTS = ("proof", "tight")


@dataclass(frozen=True)
class _Depth2Search:
    """The fixed data of one depth-2 joint search: the event, the densities, the degree table, ``log delta``."""

    event: str
    p1: float
    p2: float
    table: DegreeTable
    log_delta: float

    def log_q(self, q0: IntArray, q1: IntArray) -> FloatArray:
        """``log`` of the failure probability of the event at ``(q0, q1)``."""
        return _depth2_log_q(self.event, q0, q1, self.p1, self.p2, self.table)

    def min_q0(self, q1: IntArray) -> tuple[IntArray, IntArray]:
        """The smallest feasible ``q0`` for each ``q1`` (doubling, then bisection); ``q1`` that no ``q0 < 2^62``
        makes feasible are dropped."""
        hi = np.ones_like(q1)
        for _ in range(62):
            bad = self.log_q(hi, q1) > self.log_delta
            if not bad.any():
                break
            hi = np.where(bad, hi * 2, hi)
        else:
            bad_any = self.log_q(hi, q1) > self.log_delta
            q1, hi = q1[~bad_any], hi[~bad_any]
        lo = hi // 2  # infeasible (or 0)
        while (hi - lo > 1).any():
            mid = (lo + hi) // 2
            active = hi - lo > 1
            ok = self.log_q(np.maximum(mid, 1), q1) <= self.log_delta
            hi = np.where(active & ok, mid, hi)
            lo = np.where(active & ~ok, mid, lo)
        return q1, hi


def _default_q1_max(p2: float, dlt: float, m2: int) -> int:
    """Twice the ``q1`` that covers the output layer alone with failure ``delta`` (plus 2), capped at ``2^62``."""
    base = 1.0 if p2 >= 1.0 else np.log(-np.expm1(np.log1p(-dlt) / max(1, m2))) / np.log1p(-p2)
    return int(min(2 * max(1.0, np.ceil(base)) + 2, 2.0**62))


def _feasible_q1(q1_max: int, p2: float, dlt: float, table: DegreeTable) -> IntArray:
    """The ``q1`` in ``1..q1_max`` feasible as ``q0 -> infinity`` (every hidden copy valid: the output layer alone)."""
    if q1_max > MAX_Q1_CANDIDATES:
        raise ValueError(
            f"the joint search at density {p2!r} would try q1 up to {q1_max}, above the cap of "
            f"{MAX_Q1_CANDIDATES:.0e} candidates; use a larger density"
        )
    q1 = np.arange(1, q1_max + 1, dtype=np.int64)
    log_q_inf = log1mexp(float(table.m2) * log_block_hit(p2, q1))
    feasible = log_q_inf < np.log(dlt)
    if not feasible.any():
        raise ValueError(f"no q1 <= q1_max={q1_max} reaches 1 - delta={1 - dlt!r}; raise q1_max")
    out: IntArray = q1[feasible]
    return out


def _check_tight_terms(q1: IntArray, p2: float, table: DegreeTable) -> None:
    """Refuse a tight-event search whose every step would sum more than :data:`MAX_SEARCH_TERMS` terms."""
    terms = float(window_terms(q1).sum()) * len(table.counts)
    if terms > MAX_SEARCH_TERMS:
        raise ValueError(
            f"the joint minimum of the tight event at density {p2!r} would sum about {terms:.3g} binomial terms "
            f"per step of its search (q1 up to {int(q1.max())}), above the cap of {MAX_SEARCH_TERMS:.0e}; use a "
            f"larger density or skip the joint minimum"
        )


def depth2_min_widths(
    d: int,
    n_hidden: int,
    n_out: int,
    density: float | tuple[float, float],
    delta: float,
    event: str = "tight",
    degrees: tuple[ArrayLike, ArrayLike] | None = None,
    q1_max: int | None = None,
) -> Depth2Widths:
    """Minimal source widths of a depth-2 target (Theorem 2.1's setting) for the exact ``event``.

    ``event="proof"``: the proof event, its exact probability, no budget split between the layers;
    ``event="tight"``: the tighter construction (:func:`tight_log_success`).  Both probabilities increase with
    ``q0``; the tight one also with ``q1`` (more copies can only add valid ones).  For every ``q1`` in
    ``1..q1_max`` (default: twice the ``q1`` that covers the output layer alone with ``delta``) whose hidden
    layer does not already cost more than the smallest feasible ``q1``'s total, the smallest feasible ``q0``
    is found by a vectorised doubling-and-bisection search, then the pair with the fewest source neurons
    ``q0 d + q1 n_hidden`` is kept.  ``degrees`` = (in, out) degrees of the hidden neurons (default dense);
    they enter only through their :class:`DegreeTable`, so the time does not grow with ``n_hidden``.
    """
    if event not in _DEPTH2_EVENTS:
        raise ValueError(f"event must be one of {', '.join(_DEPTH2_EVENTS)}, got {event!r}")
    dens = np.broadcast_to(check_density(density), (2,))
    p1, p2 = float(dens[0]), float(dens[1])
    dlt = float(check_open_unit(delta, "delta"))
    # the degree table is all the events need, and it never changes during the search: build it once
    table = (
        DegreeTable.dense(int(d), int(n_hidden), int(n_out))
        if degrees is None
        else DegreeTable.from_degrees(degrees[0], degrees[1])
    )
    if q1_max is None:
        q1_max = _default_q1_max(p2, dlt, table.m2)
    q1 = _feasible_q1(q1_max, p2, dlt, table)
    search = _Depth2Search(event, p1, p2, table, float(np.log(dlt)))
    # The smallest feasible q1 gives an upper bound on the best total; a q1 costs at least q1 n_hidden + d
    # (q0 >= 1), so only the q1 below that bound can still win.  This keeps wide targets (large n_hidden)
    # from searching hundreds of q1 whose hidden layer alone already costs more.
    first_q1, first_q0 = search.min_q0(q1[:1])
    if first_q1.size:
        q1 = q1[q1 * n_hidden + d <= int(first_q0[0]) * d + int(first_q1[0]) * n_hidden]
    if event == "tight":
        _check_tight_terms(q1, p2, table)
    q1, hi = search.min_q0(q1)
    total = hi * d + q1 * n_hidden
    best = int(np.argmin(total))
    q0b, q1b = int(hi[best]), int(q1[best])
    prob = float(-np.expm1(search.log_q(np.array([q0b]), np.array([q1b]))[0]))
    return Depth2Widths(event, q0b, q1b, q0b * d, q1b * n_hidden, prob)


# ----------------------------------------------------------------------------------------------------------------
# the lower bound (Theorem 2.3 = A.6)


def lower_bound_log_success(d: ArrayLike, n: ArrayLike, density: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``(log P, log (1 - P))``, ``P`` = probability that every input has a path to the output (Theorem 2.3).

    Source: ``d`` inputs, one hidden layer of width ``n``, one output; masks ``A`` (``n x d``, input to hidden)
    and ``B`` (``n``, hidden to output) with i.i.d. Ber(p) entries.  Input ``j`` has a path when some hidden
    unit ``h`` has ``A_{hj} = B_h = 1``.  A target ``relu(w^T x + b)`` with all ``w_j != 0`` needs every input
    to have a path, so ``P`` bounds the probability that the source can represent it.

    *Derivation.*  Let ``K = sum_h B_h ~ Binomial(n, p)``, the number of hidden units connected to the output.
    ``A`` is independent of ``B``, and given ``B`` input ``j`` has a path iff one of the ``K`` entries
    ``A_{hj}``, ``B_h = 1``, is 1: probability ``1 - (1 - p)^K``.  These events use disjoint columns of ``A``,
    so given ``K`` they are independent:

        P = E[(1 - (1 - p)^K)^d] = sum_{k=0}^{n} C(n, k) p^k (1 - p)^{n-k} (1 - (1 - p)^k)^d.

    The proof of the theorem uses ``[1 - (1 - p^2)^n]^d`` instead, treating the inputs as independent.
    ``(1 - y)^d`` is convex in ``y`` and ``E[(1 - p)^K] = (1 - p^2)^n``, so by Jensen's inequality
    ``P >= [1 - (1 - p^2)^n]^d``, with equality for ``d = 1``: the exact minimal width is at most the proof's.

    *Monotonicity in n.*  ``Binomial(n + 1, p)`` dominates ``Binomial(n, p)`` stochastically and
    ``k -> (1 - (1 - p)^k)^d`` is increasing, so ``P`` is non-decreasing in ``n`` (what the search in
    :func:`lower_bound_min_width` relies on).
    """
    dd = check_positive_int(d, "d")
    nn = np.asarray(as_float_array(n, "n"))
    if (nn < 0).any() or (nn != np.round(nn)).any():
        raise ValueError(f"n must be non-negative integers, got {n!r}")
    p = check_density(density)
    return binomial_expectation_log(nn, p, p, dd)


def lower_bound_success_probability(d: ArrayLike, n: ArrayLike, density: ArrayLike) -> FloatArray:
    """``P(every input has a path to the output)``; see :func:`lower_bound_log_success`."""
    out: FloatArray = np.exp(lower_bound_log_success(d, n, density)[0])
    return out


def lower_bound_min_width(d: ArrayLike, density: ArrayLike, delta: ArrayLike) -> IntArray:
    """Exact ``n_min(d, p, delta)``: the smallest hidden width at which ``P >= 1 - delta`` (Theorem 2.3).

    Below it the source misses some input's path, hence fails to represent the target, with probability
    greater than ``delta``.  ``P`` is non-decreasing in ``n`` (see :func:`lower_bound_log_success`), so a
    vectorised bisection finds it for all broadcast settings at once, in the bracket
    ``[n_min(1, p, delta), ceil(proof bound)]``: ``P`` falls with ``d`` (more inputs, more conditions), and by
    Jensen's inequality the proof's bound is feasible.  The bracket ends are checked, not assumed.
    """
    dd = check_positive_int(d, "d")
    p = check_density(density)
    dlt = check_open_unit(delta, "delta")
    dd, p, dlt = np.broadcast_arrays(dd, p, dlt)
    shape = dd.shape
    dd, p, dlt = dd.reshape(-1), p.reshape(-1), dlt.reshape(-1)
    log_delta = np.log(dlt)
    # bracket: the exact width is at least the d = 1 width (P falls with d) and at most the proof's (Jensen)
    lo_f = np.ceil(np.log(dlt) / np.log1p(-p * p)) - 1
    hi_f = np.ceil(np.log(-np.expm1(np.log1p(-dlt) / dd)) / np.log1p(-p * p)) + 1
    if not (hi_f <= 2.0**53).all():
        at = int(np.argmax(~(hi_f <= 2.0**53)))
        raise ValueError(
            f"the proof's width at d={int(dd[at])}, density {float(p[at])!r}, delta {float(dlt[at])!r} is about "
            f"{float(hi_f[at]):.3g}, beyond the exact integers of float64 (2**53); use a larger density"
        )
    lo = lo_f.astype(np.int64)
    hi = hi_f.astype(np.int64)
    lo = np.maximum(lo, 0)

    def feasible(idx: IntArray, n: IntArray) -> NDArray[np.bool_]:
        return np.asarray(lower_bound_log_success(dd[idx], n, p[idx])[1] <= log_delta[idx])

    everything = np.arange(dd.size)
    lo = np.where((lo > 0) & feasible(everything, np.maximum(lo, 1)), 0, lo)
    for _ in range(62):
        bad = np.flatnonzero(~feasible(everything, hi))
        if not bad.size:
            break
        hi[bad] *= 2
    while True:
        active = np.flatnonzero(hi - lo > 1)
        if not active.size:
            break
        mid = (lo[active] + hi[active]) // 2
        ok = feasible(active, mid)
        hi[active] = np.where(ok, mid, hi[active])
        lo[active] = np.where(ok, lo[active], mid)
    return hi.reshape(shape)
