"""Exact random subset sum, the engine of Lemma 2.4 (= A.1) and Theorem 2.5 (= A.2).

Lemma 2.4 (eq. (1)): with ``X_1..X_n ~ U[-1, 1]`` and an ER mask ``M_i ~ Ber(p)``, some subset of the kept
variables sums to within ``epsilon`` of any ``z`` in [-1, 1] with probability at least ``1 - delta`` once

    n >= C_1 / log(1 / (1 - p)) * log(1 / min(delta, epsilon)).

This module answers the underlying questions exactly and measures ``C_1``:

* :func:`best_subset` -- the subset minimising ``|sum - z|`` for a batch of targets (meet in the middle: the
  sorted subset sums of two halves, one lookup per (target, half-sum); the larger half is sorted once for all
  targets).  Exact up to floating-point rounding of the sums.
* :func:`coverage` -- whether *every* ``z`` in [-1, 1] lies within ``epsilon`` of a subset sum.  The decision is
  exact for any ``n`` without enumerating the ``2^n`` sums: the covered set ``S_k + [-eps, eps]`` of the first
  ``k`` values is a union of intervals and obeys ``C_{k+1} = C_k U (C_k + x_{k+1})``; overlapping intervals are
  merged and parts that no remaining shift can bring back into [-1, 1] are clipped, so at most about
  ``(2 + sum |x|) / (2 eps)`` intervals are kept.  ``max_gap`` (twice the covering radius) is computed by
  direct enumeration of the sums for ``n <= max_direct`` (26 by default).
* :func:`cover_counts`, :func:`coverage_probability`, :func:`required_n`, :func:`scaling_experiment` and
  :func:`fit_c1` -- the smallest ``n`` at which coverage holds with probability ``>= 1 - delta`` for an ER
  mask of density ``p``, and the fitted constant ``C_1`` with a bootstrap confidence interval.

Coverage of all of [-1, 1] at once is a stronger event than the lemma's "for any (fixed) z"; the measured
``n`` is therefore an upper estimate of what eq. (1) needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ertheory._sumsets import (
    MAX_SORTED,
    SortedSums,
    check_threads,
    resolve_engine,
    sorted_sums_in,
    sorted_with_codes,
    sums_beyond,
)
from ertheory._validate import as_float_array, check_density, check_open_unit, check_positive

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Largest ``n`` :func:`best_subset` accepts (two halves of at most 24 values each).
MAX_EXACT_N = 48

# --------------------------------------------------------------------------------------------------------------
# Distributions of the random values (a registry)
# --------------------------------------------------------------------------------------------------------------

Sampler = Callable[[np.random.Generator, tuple[int, ...]], FloatArray]

_DISTRIBUTIONS: dict[str, Sampler] = {}


def register_distribution(name: str, sampler: Sampler) -> None:
    """Register ``sampler(rng, shape) -> values`` under ``name`` for :func:`draw_er_values` and friends."""
    if not name or not isinstance(name, str):
        raise ValueError(f"distribution name must be a non-empty string, got {name!r}")
    _DISTRIBUTIONS[name] = sampler


def get_distribution(name: str) -> Sampler:
    try:
        return _DISTRIBUTIONS[name]
    except KeyError:
        raise ValueError(f"unknown distribution {name!r}; known: {', '.join(sorted(_DISTRIBUTIONS))}") from None


register_distribution("uniform", lambda rng, shape: rng.uniform(-1.0, 1.0, size=shape))
register_distribution("normal", lambda rng, shape: rng.standard_normal(size=shape))


def draw_er_values(
    n: int, density: float, rng: np.random.Generator, distribution: str = "uniform"
) -> tuple[FloatArray, BoolArray]:
    """``n`` random values (the lemma's ``X_i``, uniform on [-1, 1] by default) and their ER mask ``M_i ~ Ber(p)``."""
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    p = float(check_density(density))
    values = get_distribution(distribution)(rng, (int(n),))
    present = rng.random(int(n)) < p
    return values, present


# --------------------------------------------------------------------------------------------------------------
# Enumeration of subset sums
# --------------------------------------------------------------------------------------------------------------


def _check_values(values: ArrayLike, name: str = "values") -> FloatArray:
    arr = as_float_array(values, name)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def sorted_subset_sums(values: ArrayLike) -> tuple[FloatArray, IntArray]:
    """All ``2^n`` subset sums in increasing order, with the bit mask (bit ``i`` = value ``i`` used) of each.

    Built by merging: the sums of ``k + 1`` values are the sorted sums of ``k`` values merged with the same list
    shifted by ``x_{k+1}``; a stable merge of two sorted runs costs linear time.  ``n <= 24``.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size > MAX_SORTED:
        raise ValueError(f"sorted_subset_sums enumerates 2^n sums; n must be <= {MAX_SORTED}, got n={x.size}")
    if x.size <= 12:  # small: enumerate directly and sort once
        codes = np.arange(1 << x.size, dtype=np.int64)
        sums = _decode(codes, x.size).astype(np.float64) @ x
        order = np.argsort(sums, kind="stable")
        return sums[order], codes[order]
    sums = np.zeros(1)
    codes = np.zeros(1, dtype=np.int64)
    for i, xi in enumerate(x):
        sums = np.concatenate([sums, sums + xi])
        codes = np.concatenate([codes, codes | np.int64(1 << i)])
        order = np.argsort(sums, kind="stable")
        sums = sums[order]
        codes = codes[order]
    return sums, codes


def _decode(codes: IntArray, n_bits: int) -> BoolArray:
    bits = np.arange(n_bits, dtype=np.int64)
    return ((codes[..., None] >> bits) & 1).astype(bool)


@dataclass(frozen=True)
class SubsetSumResult:
    """Best subsets for a batch of targets (Lemma 2.4's ``I`` with ``|z - sum_I x_i|`` minimal).

    ``masks[..., i]`` says whether value ``i`` is used; ``sums`` and ``errors = |sums - targets|`` have the
    shape of ``targets``; ``engine`` is the engine that searched (``numpy`` or ``numba``).
    """

    targets: FloatArray
    masks: BoolArray
    sums: FloatArray
    errors: FloatArray
    engine: str = "numpy"

    def indices(self, k: int = 0) -> IntArray:
        """Sorted 0-based indices of the subset chosen for the ``k``-th target (flattened order)."""
        flat = self.masks.reshape(-1, self.masks.shape[-1])
        return np.flatnonzero(flat[k]).astype(np.int64)


#: Cost of one sum of the sorted half relative to one lookup (measured with benchmarks/bench_subsetsum.py:
#: building and indexing a sorted sum costs about as much as one nearest-sum lookup).
_BUILD_PER_LOOKUP = 1.0


def _split(n: int, n_targets: int) -> int:
    """Size of the sorted half: minimises building ``2^nb`` sorted sums plus ``n_targets * 2^(n - nb)`` lookups,
    with both halves at most ``MAX_SORTED`` values."""
    lo = max(1, n - MAX_SORTED)
    hi = min(n, MAX_SORTED)
    if lo > hi:
        raise ValueError(f"n={n} is too large for the exact method (at most {MAX_EXACT_N} values)")
    nbs = np.arange(lo, hi + 1)
    cost = _BUILD_PER_LOOKUP * 2.0**nbs + n_targets * 2.0 ** (n - nbs)
    return int(nbs[np.argmin(cost)])


def best_subset(values: ArrayLike, targets: ArrayLike, engine: str = "auto", threads: int = 1) -> SubsetSumResult:
    """The subset of ``values`` whose sum is closest to each target (exact; meet in the middle).

    ``values``: 1-D, finite, ``1 <= n <= 48``.  ``targets``: any shape, finite.  The values are split into a
    small half ``A`` and a sorted half ``B`` (:class:`ertheory._sumsets.SortedSums`: its ``2^|B|`` sums sorted
    once and indexed by a uniform grid).  The targets are sorted once; tiles of neighbouring targets times a
    block of the sums ``a`` of ``A`` are looked up together (each query ``z - a`` finds its nearest sum of ``B``
    by a few branch-free vectorised passes), and each target keeps the pair with the smallest error.
    Cost ``O(2^|B| + T 2^|A|)``; among pairs of equal error the smallest sum of ``A`` wins.

    ``engine``: ``numpy``, ``numba`` (compiled kernels, the optional extra ``ertoolkit[fast]``; the same
    results bit for bit, several times faster) or ``auto`` (``numba`` where installed); the result records
    which one ran.  ``threads`` > 1 shares the targets' lookups between threads (``numba`` engine only).
    """
    engine = resolve_engine(engine)
    threads = check_threads(threads)
    if threads > 1 and engine != "numba":
        raise ValueError(f"threads={threads} needs the numba engine (got engine {engine!r}); use threads=1")
    x = _check_values(values)
    z = as_float_array(targets, "targets")
    n = x.size
    if n > MAX_EXACT_N:
        raise ValueError(f"n={n} values is too large for the exact method (at most {MAX_EXACT_N})")
    with np.errstate(over="ignore"):
        magnitude = np.sum(np.abs(x))
    if not np.isfinite(magnitude):
        raise ValueError(f"values must have a finite sum of magnitudes, got values up to {np.max(np.abs(x))!r}")
    zf = z.ravel()
    with np.errstate(over="ignore"):
        reach = (np.max(np.abs(zf)) if zf.size else 0.0) + 2.0 * magnitude
    if not np.isfinite(reach):  # a query z - a, minus the grid's base, must stay finite
        raise ValueError(f"targets up to {np.max(np.abs(zf))!r} with values whose magnitudes sum to {magnitude!r} "
                         "overflow float64; scale both down")
    nb = _split(n, zf.size)
    na = n - nb
    table = SortedSums.build(x[na:], engine)
    sa, ca = sorted_with_codes(x[:na])
    order = np.argsort(zf, kind="stable")
    best_a, best_b = table.best_pairs(zf[order], sa, engine, threads)
    code_a = np.empty(zf.size, dtype=np.int64)
    code_b = np.empty(zf.size, dtype=np.int64)
    code_a[order] = ca[best_a]
    code_b[order] = table.codes_of(table.sums_at(best_b), engine)
    masks = np.concatenate([_decode(code_a, na), _decode(code_b, nb)], axis=-1)
    sums = masks.astype(np.float64) @ x
    masks = masks.reshape(z.shape + (n,))
    sums = sums.reshape(z.shape)
    return SubsetSumResult(targets=z, masks=masks, sums=sums, errors=np.abs(sums - z), engine=engine)


def best_subset_er(
    values: ArrayLike, present: ArrayLike, targets: ArrayLike, engine: str = "auto"
) -> SubsetSumResult:
    """:func:`best_subset` restricted to the values an ER mask keeps (Lemma 2.4's ``M_i X_i``).

    The returned masks refer to the original positions and are ``False`` wherever ``present`` is ``False``.
    """
    x = _check_values(values)
    m = np.asarray(present, dtype=bool)
    if m.shape != x.shape:
        raise ValueError(f"present must have the shape of values {x.shape}, got {m.shape}")
    z = as_float_array(targets, "targets")
    keep = np.flatnonzero(m)
    masks = np.zeros(z.shape + (x.size,), dtype=bool)
    if keep.size == 0:
        sums = np.zeros(z.shape)
        return SubsetSumResult(targets=z, masks=masks, sums=sums, errors=np.abs(z), engine=resolve_engine(engine))
    res = best_subset(x[keep], z, engine)
    masks[..., keep] = res.masks
    return SubsetSumResult(targets=z, masks=masks, sums=res.sums, errors=res.errors, engine=res.engine)


def brute_force_best_subset(values: ArrayLike, target: float) -> tuple[IntArray, float]:
    """Reference: enumerate all ``2^n`` subsets (``n <= 20``); returns (indices, error)."""
    x = _check_values(values)
    if x.size > 20:
        raise ValueError(f"brute force is limited to n <= 20, got n={x.size}")
    bits = _decode(np.arange(1 << x.size, dtype=np.int64), x.size)
    sums = bits.astype(np.float64) @ x
    err = np.abs(sums - float(target))
    k = int(np.argmin(err))
    return np.flatnonzero(bits[k]).astype(np.int64), float(err[k])


# --------------------------------------------------------------------------------------------------------------
# Coverage of [-1, 1]
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """Whether every ``z`` in ``[lo, hi]`` is within ``epsilon`` of a subset sum.

    ``covered`` is exact (interval method).  ``radius = sup_z min_I |z - sum_I|`` and ``max_gap = 2 * radius``
    (the largest gap between consecutive subset sums as seen from ``[lo, hi]``; an end of the interval counts
    twice its distance to the nearest sum) are exact when ``n <= max_direct`` and ``None`` otherwise; then
    ``covered == (max_gap <= 2 * epsilon)``.  ``uncovered`` lists the maximal uncovered sub-intervals.
    """

    covered: bool
    epsilon: float
    n: int
    max_gap: float | None
    radius: float | None
    uncovered: FloatArray = field(repr=False)


def _merge(starts: FloatArray, ends: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Merge closed intervals given sorted by start (touching intervals merge)."""
    run_end = np.maximum.accumulate(ends)
    new = starts[1:] > run_end[:-1]
    first = np.concatenate([[True], new])
    last = np.concatenate([new, [True]])
    return starts[first], run_end[last]


def covered_set(values: ArrayLike, epsilon: float, lo: float = -1.0, hi: float = 1.0) -> tuple[FloatArray, FloatArray]:
    """The set ``{z in [lo, hi] : min_I |z - sum_I x_i| <= epsilon}`` as disjoint closed intervals (starts, ends).

    Exact, for any ``n``: propagates ``C_{k+1} = C_k U (C_k + x_{k+1})`` from ``C_0 = [-eps, eps]`` and clips
    each ``C_k`` to ``[lo - P_k, hi - N_k]`` where ``P_k >= 0 >= N_k`` are the sums of the positive and negative
    values still to come (nothing outside that window can be shifted back into ``[lo, hi]``).
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    pos_rem = np.concatenate([np.cumsum(np.maximum(x, 0.0)[::-1])[::-1][1:], [0.0]])
    neg_rem = np.concatenate([np.cumsum(np.minimum(x, 0.0)[::-1])[::-1][1:], [0.0]])
    starts = np.array([-epsilon])
    ends = np.array([epsilon])
    for k, xk in enumerate(x):
        s = np.concatenate([starts, starts + xk])
        e = np.concatenate([ends, ends + xk])
        order = np.argsort(s, kind="stable")
        starts, ends = _merge(s[order], e[order])
        wlo, whi = lo - pos_rem[k], hi - neg_rem[k]
        keep = (ends >= wlo) & (starts <= whi)
        starts = np.maximum(starts[keep], wlo)
        ends = np.minimum(ends[keep], whi)
    keep = (ends >= lo) & (starts <= hi)
    return np.maximum(starts[keep], lo), np.minimum(ends[keep], hi)


def _uncovered(starts: FloatArray, ends: FloatArray, lo: float, hi: float) -> FloatArray:
    edges_lo = np.concatenate([[lo], ends])
    edges_hi = np.concatenate([starts, [hi]])
    gap = edges_hi > edges_lo
    gap[0] = gap[0] and (starts.size == 0 or starts[0] > lo)
    gap[-1] = gap[-1] and (ends.size == 0 or ends[-1] < hi)
    return np.stack([edges_lo[gap], edges_hi[gap]], axis=-1)


#: Largest ``n`` whose covering radius (``max_gap``) is computed by enumeration: ``2^32`` sums, minutes of work.
MAX_GAP_N = 32


def covering_radius(values: ArrayLike, lo: float = -1.0, hi: float = 1.0, max_direct: int = 26) -> float:
    """``sup_{z in [lo, hi]} min_I |z - sum_I x_i|`` by enumeration of the sums (``n <= max_direct <= 32``).

    The sums inside ``[lo, hi]`` are enumerated in increasing order in chunks of bounded size
    (:func:`ertheory._sumsets.sorted_sums_in`, from the sorted sums of two halves), with the nearest sum below
    ``lo`` and above ``hi`` (:func:`ertheory._sumsets.sums_beyond`).  Between consecutive sums ``s < t`` the
    farthest point of ``[lo, hi]`` is their midpoint, or the end of ``[lo, hi]`` that cuts the pair; the largest
    such distance is carried across chunks.  Memory ``O(2^{n/2})`` plus one chunk; time ``O(2^n log)``.
    """
    x = _check_values(values) if np.size(values) else np.zeros(0)
    if x.size > max_direct:
        raise ValueError(f"n={x.size} is too large for direct enumeration (max_direct={max_direct})")
    if x.size > MAX_GAP_N:
        raise ValueError(f"n={x.size} is too large for direct enumeration: 2^n sums, at most n={MAX_GAP_N}")
    x = x[x != 0.0]  # zeros add no new sums
    below, above = sums_beyond(x, lo, hi)
    radius = 0.0
    prev = below
    for chunk in sorted_sums_in(x, lo, hi):
        if prev is not None:
            radius = max(radius, _gap_radius(prev, float(chunk[0]), lo, hi))
        elif chunk[0] > lo:
            radius = max(radius, float(chunk[0]) - lo)
        if chunk.size > 1:
            radius = max(radius, 0.5 * float(np.max(np.diff(chunk))))
        prev = float(chunk[-1])
    if above is not None:
        if prev is None:  # no sum at all in [lo, hi] and none below it
            return above - lo
        return max(radius, _gap_radius(prev, above, lo, hi))
    assert prev is not None  # some sum lies in or below [lo, hi] when none lies above it
    return max(radius, hi - prev)


def _gap_radius(s: float, t: float, lo: float, hi: float) -> float:
    """``sup_{z in [lo, hi] cap [s, t]} min(z - s, t - z)`` for consecutive sums ``s < t`` (0 if they miss)."""
    u, v = max(s, lo), min(t, hi)
    if u > v:
        return 0.0
    m = 0.5 * (s + t)
    return t - u if m < u else v - s if m > v else 0.5 * (t - s)


def coverage(
    values: ArrayLike, epsilon: float, *, lo: float = -1.0, hi: float = 1.0, max_direct: int = 26
) -> Coverage:
    """Decide exactly whether every ``z`` in ``[lo, hi]`` (default [-1, 1]) is within ``epsilon`` of a subset sum.

    See :class:`Coverage` and :func:`covered_set`.  ``values`` must be non-empty and finite, ``epsilon > 0``.
    """
    x = _check_values(values)
    eps = float(check_positive(epsilon, "epsilon"))
    if not lo < hi:
        raise ValueError(f"need lo < hi, got lo={lo!r}, hi={hi!r}")
    starts, ends = covered_set(x, eps, lo, hi)
    covered = bool(starts.size == 1 and starts[0] <= lo and ends[0] >= hi)
    radius = covering_radius(x, lo, hi, max_direct) if x.size <= max_direct else None
    return Coverage(
        covered=covered,
        epsilon=eps,
        n=int(x.size),
        max_gap=None if radius is None else 2.0 * radius,
        radius=radius,
        uncovered=_uncovered(starts, ends, lo, hi),
    )


# --------------------------------------------------------------------------------------------------------------
# Empirical scaling of Lemma 2.4 and the constant C_1
# --------------------------------------------------------------------------------------------------------------


def cover_counts(
    epsilon: float,
    draws: int,
    rng: np.random.Generator,
    k_max: int = 64,
    distribution: str = "uniform",
) -> IntArray:
    """For ``draws`` independent sequences ``X_1, X_2, ...``, the smallest ``k`` such that the first ``k`` values
    cover [-1, 1] at tolerance ``epsilon`` (``k_max + 1`` if ``k_max`` values do not).

    Coverage only grows when values are added (the old sums stay), so ``P(k values cover) = P(K* <= k)``.
    """
    eps = float(check_open_unit(epsilon, "epsilon"))
    if draws < 1 or k_max < 1:
        raise ValueError(f"draws and k_max must be >= 1, got draws={draws!r}, k_max={k_max!r}")
    xs = get_distribution(distribution)(rng, (int(draws), int(k_max)))
    out = np.full(int(draws), k_max + 1, dtype=np.int64)
    for d in range(int(draws)):
        x = xs[d]
        pos_rem = np.concatenate([np.cumsum(np.maximum(x, 0.0)[::-1])[::-1][1:], [0.0]])
        neg_rem = np.concatenate([np.cumsum(np.minimum(x, 0.0)[::-1])[::-1][1:], [0.0]])
        starts, ends = np.array([-eps]), np.array([eps])
        for k, xk in enumerate(x):
            s = np.concatenate([starts, starts + xk])
            e = np.concatenate([ends, ends + xk])
            order = np.argsort(s, kind="stable")
            starts, ends = _merge(s[order], e[order])
            wlo, whi = -1.0 - pos_rem[k], 1.0 - neg_rem[k]
            keep = (ends >= wlo) & (starts <= whi)
            starts, ends = np.maximum(starts[keep], wlo), np.minimum(ends[keep], whi)
            inside = (starts <= -1.0) & (ends >= 1.0)
            if inside.any():
                out[d] = k + 1
                break
    return out


def _cover_cdf(counts: ArrayLike, k_max: int | None) -> tuple[FloatArray, int]:
    """``P(K* <= k)`` for ``k = 0..k_top`` from the counts; counts above ``k_max`` (censored) never cover."""
    c = np.sort(np.asarray(counts, dtype=np.int64).ravel())
    if c.size == 0 or c[0] < 0:
        raise ValueError(f"counts must be a non-empty array of non-negative integers, got {counts!r}")
    k_top = int(c[-1]) if k_max is None else min(int(c[-1]), int(k_max))
    cdf = np.searchsorted(c, np.arange(k_top + 1), side="right") / c.size
    return cdf, k_top


def _mixture(cdf: FloatArray, k_top: int, n: ArrayLike, p: ArrayLike) -> FloatArray:
    from scipy import stats  # imported here: it costs most of a second at start-up

    k = np.arange(k_top + 1)
    nn = np.asarray(n)[..., None]
    pp = np.asarray(p)[..., None]
    body = np.sum(stats.binom.pmf(k, nn, pp) * cdf, axis=-1)
    out: FloatArray = body + stats.binom.sf(k_top, nn[..., 0], pp[..., 0]) * cdf[-1]
    return out


def coverage_probability(
    counts: ArrayLike, n: ArrayLike, density: ArrayLike, k_max: int | None = None
) -> FloatArray:
    """``P(n ER-masked values cover)`` = ``sum_k Bin(k; n, p) * P(K* <= k)``, with ``P(K* <= k)`` estimated from
    the ``counts`` of :func:`cover_counts` (the mask is integrated exactly; only the values are Monte-Carlo).

    With ``k_max`` (the simulated range), counts above it are censored draws and are treated as never covering,
    so the result is then a lower estimate.  ``n`` and ``density`` broadcast.
    """
    cdf, k_top = _cover_cdf(counts, k_max)
    p = check_density(density)
    nn = np.asarray(n, dtype=np.int64)
    if np.any(nn < 0):
        raise ValueError(f"n must be non-negative, got {n!r}")
    return _mixture(cdf, k_top, nn, p)


def required_n(
    counts: ArrayLike, density: ArrayLike, delta: ArrayLike, n_max: int = 20000, k_max: int | None = None
) -> IntArray:
    """Smallest ``n`` with ``coverage_probability(counts, n, p) >= 1 - delta`` (``n_max + 1`` if none <= n_max).

    ``density`` and ``delta`` broadcast; the probability is non-decreasing in ``n`` because ``Bin(n + 1, p)``
    dominates ``Bin(n, p)`` and ``P(K* <= k)`` is non-decreasing, so a bisection finds it.
    """
    p, dl = np.broadcast_arrays(check_density(density), check_open_unit(delta, "delta"))
    cdf, k_top = _cover_cdf(counts, k_max)
    lo = np.zeros(p.shape, dtype=np.int64)
    hi = np.full(p.shape, int(n_max) + 1, dtype=np.int64)
    while np.any(lo < hi):  # vectorised bisection on the monotone coverage probability
        mid = (lo + hi) // 2
        ok = _mixture(cdf, k_top, mid, p) >= 1.0 - dl
        active = lo < hi
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)
    return lo


@dataclass(frozen=True)
class C1Fit:
    """Least-squares fit ``n* ~ C_1 * x`` through the origin, ``x = log(1/min(delta, eps)) / log(1/(1 - p))``.

    ``ci`` is a percentile bootstrap interval (resampling the Monte-Carlo draws).  The same fit with
    ``x' = log(1/min(delta, eps)) / p`` gives ``c_inv_p``; ``rel_rmse_*`` are the relative root-mean-square
    residuals of the two models, and ``alpha`` is the exponent of the fit ``n*/log(1/min) = c / p^alpha``
    (``alpha ~ 1`` is the small-``p`` behaviour of both forms).
    """

    c1: float
    ci: tuple[float, float]
    rel_rmse_log: float
    c_inv_p: float
    ci_inv_p: tuple[float, float]
    rel_rmse_inv_p: float
    alpha: float
    alpha_ci: tuple[float, float]
    confidence: float


@dataclass(frozen=True)
class ScalingResult:
    """Required ``n`` on a grid of ``(epsilon, delta)`` pairs (rows) and densities (columns), and the fit."""

    epsilon: FloatArray
    delta: FloatArray
    density: FloatArray
    n_required: IntArray
    x_log: FloatArray
    fit: C1Fit
    draws: int
    censored: int
    extra: dict[str, Any] = field(default_factory=dict, repr=False)


def _fit_stats(n_req: FloatArray, x_log: FloatArray, x_inv: FloatArray, logm: FloatArray, p: FloatArray) -> FloatArray:
    """(c_log, rmse_log, c_inv, rmse_inv, alpha) for arrays of shape (..., points)."""
    c_log = np.sum(x_log * n_req, axis=-1) / np.sum(x_log**2, axis=-1)
    c_inv = np.sum(x_inv * n_req, axis=-1) / np.sum(x_inv**2, axis=-1)
    r_log = np.sqrt(np.mean((n_req / (c_log[..., None] * x_log) - 1.0) ** 2, axis=-1))
    r_inv = np.sqrt(np.mean((n_req / (c_inv[..., None] * x_inv) - 1.0) ** 2, axis=-1))
    lx = np.log(1.0 / p)
    ly = np.log(n_req / logm)
    lxm = lx - lx.mean(axis=-1, keepdims=True)
    alpha = np.sum(lxm * (ly - ly.mean(axis=-1, keepdims=True)), axis=-1) / np.sum(lxm**2, axis=-1)
    return np.stack([c_log, r_log, c_inv, r_inv, alpha], axis=-1)


def fit_c1(
    counts_by_eps: list[IntArray],
    epsilon: ArrayLike,
    delta: ArrayLike,
    density: ArrayLike,
    *,
    n_boot: int = 200,
    confidence: float = 0.95,
    rng: np.random.Generator | None = None,
    k_max: int | None = None,
) -> tuple[IntArray, C1Fit]:
    """Required ``n`` for each ``(epsilon_r, delta_r)`` row and each density, and the fitted ``C_1``.

    ``counts_by_eps[r]`` are :func:`cover_counts` for ``epsilon[r]``.  The bootstrap resamples the draws of each
    row independently and recomputes every required ``n`` and both fits.  ``k_max``: see
    :func:`coverage_probability`.
    """
    eps = check_open_unit(epsilon, "epsilon").ravel()
    dl = check_open_unit(delta, "delta").ravel()
    p = check_density(density).ravel()
    if not (len(counts_by_eps) == eps.size == dl.size):
        raise ValueError(
            f"need one counts array per (epsilon, delta) row, got {len(counts_by_eps)}, {eps.size}, {dl.size}"
        )
    if np.any(p >= 1.0):
        raise ValueError(f"densities must be < 1 for the fit (log(1/(1-p)) = inf at p = 1), got {p.max()!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    logm = np.log(1.0 / np.minimum(eps, dl))[:, None] * np.ones_like(p)[None, :]
    pp = np.ones_like(eps)[:, None] * p[None, :]
    x_log = logm / np.log(1.0 / (1.0 - pp))
    x_inv = logm / pp

    def all_required(cs: list[IntArray]) -> IntArray:
        return np.stack([required_n(c, p, d, k_max=k_max) for c, d in zip(cs, dl, strict=True)])

    n_req = all_required(counts_by_eps)
    point = _fit_stats(n_req.ravel().astype(float), x_log.ravel(), x_inv.ravel(), logm.ravel(), pp.ravel())
    boots = []
    for _ in range(int(n_boot)):
        cs = [c[rng.integers(0, c.size, c.size)] for c in counts_by_eps]
        nb = all_required(cs).ravel().astype(float)
        boots.append(_fit_stats(nb, x_log.ravel(), x_inv.ravel(), logm.ravel(), pp.ravel()))
    bt = np.array(boots) if boots else point[None, :]
    a = (1.0 - confidence) / 2.0
    qlo, qhi = np.quantile(bt, [a, 1.0 - a], axis=0)
    fit = C1Fit(
        c1=float(point[0]),
        ci=(float(qlo[0]), float(qhi[0])),
        rel_rmse_log=float(point[1]),
        c_inv_p=float(point[2]),
        ci_inv_p=(float(qlo[2]), float(qhi[2])),
        rel_rmse_inv_p=float(point[3]),
        alpha=float(point[4]),
        alpha_ci=(float(qlo[4]), float(qhi[4])),
        confidence=float(confidence),
    )
    return n_req, fit


def scaling_experiment(
    epsilon: ArrayLike,
    delta: ArrayLike,
    density: ArrayLike,
    *,
    draws: int = 400,
    k_max: int = 64,
    n_boot: int = 200,
    seed: int = 0,
    distribution: str = "uniform",
) -> ScalingResult:
    """Measure Lemma 2.4's scaling: required ``n`` over a grid, and ``C_1`` with a bootstrap interval.

    ``epsilon`` and ``delta`` are paired rows (broadcast together); every density is combined with every row.
    """
    eps, dl = np.broadcast_arrays(check_open_unit(epsilon, "epsilon"), check_open_unit(delta, "delta"))
    eps, dl = eps.ravel(), dl.ravel()
    p = check_density(density).ravel()
    rng = np.random.default_rng(seed)
    unique_eps = np.unique(eps)
    per_eps = {float(e): cover_counts(float(e), draws, rng, k_max, distribution) for e in unique_eps}
    counts = [per_eps[float(e)] for e in eps]
    n_req, fit = fit_c1(counts, eps, dl, p, n_boot=n_boot, rng=rng, k_max=k_max)
    logm = np.log(1.0 / np.minimum(eps, dl))[:, None]
    x_log = logm / np.log(1.0 / (1.0 - p))[None, :]
    censored = int(sum(int(np.sum(c > k_max)) for c in per_eps.values()))
    return ScalingResult(
        epsilon=eps, delta=dl, density=p, n_required=n_req, x_log=x_log, fit=fit, draws=int(draws), censored=censored,
        extra={"counts": per_eps},
    )
