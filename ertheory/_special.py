"""Special functions in numpy alone: binomial log-probabilities, ``logsumexp``, binomial tails, Clopper-Pearson.

``scipy.special`` and ``scipy.stats`` cost 0.3-1 s of import time, several times the whole start-up of a
command that only needs a few binomial probabilities, so :mod:`ertheory.exact` and
:mod:`ertheory.montecarlo` use these instead.

* :func:`binom_logpmf` -- ``log P(K = k)`` for ``K ~ Binomial(n, p)`` by Loader's saddle-point expansion
  (C. Loader, "Fast and accurate computation of binomial probabilities", 2000): the log-factorial
  differences are carried as Stirling-series remainders (:func:`stirlerr`) and deviances (:func:`bd0`), so
  nothing of size ``n log n`` cancels and the relative accuracy stays near machine precision for any ``n``.
  (``lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)``, scipy's route, loses about ``log10(n log n)``
  digits.)
* :func:`binom_sf` -- ``P(K >= k)`` by summing the probabilities over a Bernstein window.
* :func:`clopper_pearson` -- exact binomial confidence limits: Newton's method on the binomial tails,
  safeguarded by a bracket.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

_LN_2PI = math.log(2.0 * math.pi)
_HALF_LN_2PI = 0.5 * _LN_2PI
#: ``stirlerr(n)`` for ``n = 0..15`` from ``math.lgamma`` (the series is used above 15).
_STIRLERR_TABLE = np.array(
    [0.0] + [math.lgamma(n + 1.0) - (n + 0.5) * math.log(n) + n - _HALF_LN_2PI for n in range(1, 16)]
)
_S0, _S1, _S2, _S3, _S4 = 1.0 / 12, 1.0 / 360, 1.0 / 1260, 1.0 / 1680, 1.0 / 1188


def xlog1py(x: ArrayLike, y: ArrayLike) -> FloatArray:
    """``x * log1p(y)``, and 0 where ``x == 0`` (also where ``y = -1``)."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(xa == 0, 0.0, xa * np.log1p(ya))
    return out


def logsumexp(a: ArrayLike, axis: int | None = None, keepdims: bool = False) -> FloatArray:
    """``log(sum(exp(a)))`` along ``axis``, shifted by the maximum; rows of ``-inf`` give ``-inf``."""
    arr = np.asarray(a, dtype=np.float64)
    top = np.max(arr, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore", under="ignore"):
        out = np.log(np.sum(np.exp(arr - top), axis=axis, keepdims=True)) + top
    if not keepdims:
        out = np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
    return np.asarray(out, dtype=np.float64)


def stirlerr(n: ArrayLike) -> FloatArray:
    """``log(n!) - log(sqrt(2 pi n) (n / e)^n)`` for integers ``n >= 0`` (0 at ``n = 0``).

    A table up to 15, the Stirling series ``1/(12n) - 1/(360n^3) + 1/(1260n^5) - 1/(1680n^7) + 1/(1188n^9)``
    above (truncation error below ``1e-17`` there).
    """
    x = np.asarray(n, dtype=np.float64)
    small = x <= 15
    xs = np.where(small, 16.0, x)
    nn = xs * xs
    series = (_S0 - (_S1 - (_S2 - (_S3 - _S4 / nn) / nn) / nn) / nn) / xs
    table = _STIRLERR_TABLE[np.clip(x, 0, 15).astype(np.int64)]
    out: FloatArray = np.where(small, table, series)
    return out


#: ``1 / (2j + 1)`` for ``j = 1..10``: the series of :func:`bd0` near ``x = m`` (Horner form).
_BD0_COEFFS = tuple(1.0 / (2 * j + 1) for j in range(10, 0, -1))


def bd0(x: ArrayLike, m: ArrayLike) -> FloatArray:
    """The deviance ``x log(x / m) + m - x`` (``x >= 0``, ``m > 0``), accurate also when ``x`` is close to ``m``.

    Near ``m`` (``|x - m| < 0.1 (x + m)``) it is summed as ``(x - m) v + 2 x v sum_{j>=1} v^{2j} / (2j + 1)``
    with ``v = (x - m) / (x + m)``; ten terms leave a relative error below ``1e-19`` because ``v^2 < 0.01``.
    """
    xa, ma = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64))
    diff = xa - ma
    total = xa + ma
    near = np.abs(diff) < 0.1 * total
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(near, diff / total, 0.0)
        w = v * v
        poly = np.full(w.shape, _BD0_COEFFS[0])
        for c in _BD0_COEFFS[1:]:
            poly = poly * w + c
        series = diff * v + 2.0 * xa * v * w * poly
        far = np.where(xa == 0, ma, xa * (np.log(xa) - np.log(ma)) + ma - xa)  # x / m may overflow
    out: FloatArray = np.where(near, series, far)
    return out


def _bd0_scalar(x: float, m: float) -> float:
    diff = x - m
    if abs(diff) < 0.1 * (x + m):
        v = diff / (x + m)
        w = v * v
        poly = _BD0_COEFFS[0]
        for c in _BD0_COEFFS[1:]:
            poly = poly * w + c
        return diff * v + 2.0 * x * v * w * poly
    return m if x == 0 else x * (math.log(x) - math.log(m)) + m - x


def _stirlerr_scalar(n: float) -> float:
    if n <= 15:
        return float(_STIRLERR_TABLE[int(n)])
    nn = n * n
    return (_S0 - (_S1 - (_S2 - (_S3 - _S4 / nn) / nn) / nn) / nn) / n


def binom_logpmf_scalar(k: int, n: int, p: float) -> float:
    """:func:`binom_logpmf` for one ``(k, n, p)``, in plain floats (no array overhead)."""
    q = 1.0 - p
    if k < 0 or k > n:
        return -math.inf
    if p == 0.0:
        return 0.0 if k == 0 else -math.inf
    if q == 0.0:
        return 0.0 if k == n else -math.inf
    if k == 0:
        return -_bd0_scalar(n, n * q) - n * p if p < 0.1 else n * math.log1p(-p)
    if k == n:
        return -_bd0_scalar(n, n * p) - n * q if q < 0.1 else n * math.log(p)
    lc = (_stirlerr_scalar(n) - _stirlerr_scalar(k) - _stirlerr_scalar(n - k)
          - _bd0_scalar(k, n * p) - _bd0_scalar(n - k, n * q))
    return lc - 0.5 * (_LN_2PI + math.log(k) + math.log1p(-k / n))


def binom_logpmf(k: ArrayLike, n: ArrayLike, p: ArrayLike) -> FloatArray:
    """``log P(K = k)`` for ``K ~ Binomial(n, p)``; integer-valued ``k``, ``n``; all arguments broadcast.

    Loader's form ``stirlerr(n) - stirlerr(k) - stirlerr(n - k) - bd0(k, n p) - bd0(n - k, n q)
    - log(2 pi k (1 - k / n)) / 2`` for ``0 < k < n``, and the end points by deviances as well; ``-inf``
    outside ``0..n``.
    """
    ka, na, pa = np.broadcast_arrays(
        np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64), np.asarray(p, dtype=np.float64)
    )
    q = 1.0 - pa
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mid = (ka > 0) & (ka < na) & (pa > 0) & (q > 0)
        plain = bool(mid.all())
        ks = ka if plain else np.where(mid, ka, 1.0)
        ns = na if plain else np.where(mid, na, 2.0)
        ps = pa if plain else np.where(mid, pa, 0.5)
        qs = q if plain else 1.0 - ps
        lc = stirlerr(ns) - stirlerr(ks) - stirlerr(ns - ks) - bd0(ks, ns * ps) - bd0(ns - ks, ns * qs)
        out = lc - 0.5 * (_LN_2PI + np.log(ks) + np.log1p(-ks / ns))
        if plain:
            return np.asarray(out, dtype=np.float64)
        # k = 0: n log q; k = n: n log p (through the deviance where the log would lose digits)
        at0 = np.where(pa < 0.1, -bd0(na, na * q) - na * pa, xlog1py(na, -pa))
        atn = np.where(q < 0.1, -bd0(na, na * pa) - na * q, na * np.log(pa))
        out = np.where(mid, out, np.where(ka == 0, at0, np.where(ka == na, atn, -np.inf)))
        out = np.where(~mid & (ka > 0) & (ka < na), -np.inf, out)  # p = 0 or 1 inside
        out = np.where((ka == 0) & (pa == 0), 0.0, out)
        out = np.where((ka == na) & (q == 0), 0.0, out)
        out = np.where((ka < 0) | (ka > na), -np.inf, out)
    return np.asarray(out, dtype=np.float64)


#: Exponent of the Bernstein window of :func:`binom_sf`: the mass outside it is below ``2 e^{-80}``.
_SF_TAIL_EXPONENT = 80.0


def _window(n: float, p: float, c: float) -> tuple[int, int]:
    s2 = n * p * (1.0 - p)
    t = c / 3.0 + math.sqrt((c / 3.0) ** 2 + 2.0 * c * s2)
    return max(0, math.floor(n * p - t)), min(int(n), math.ceil(n * p + t))


def binom_sf(k: int, n: int, p: float) -> float:
    """``P(K >= k)`` for ``K ~ Binomial(n, p)``: the probabilities summed over ``[k, n]`` within a window around
    ``n p`` that leaves out less than ``2 e^{-80}`` of the mass (so the result has an absolute error below
    ``1e-34`` and a relative one near machine precision wherever it exceeds that)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    lo, hi = _window(float(n), float(p), _SF_TAIL_EXPONENT)
    return _pmf_sum(max(k, lo), hi, n, p)


def _root(f: Any, slope: Any, target: float, x0: float) -> float:
    """The root in ``(0, 1)`` of ``f(x) = target`` for an increasing ``f``: Newton's method from ``x0`` inside a
    bracket that every evaluation narrows, with a bisection step (geometric while the bracket spans decades)
    whenever Newton would leave it; stops at a relative step of ``1e-14`` or when the bracket closes."""
    lo, hi = 0.0, 1.0
    x = min(max(x0, 1e-300), 1.0 - 2**-53)
    for _ in range(200):
        fx = f(x) - target
        if fx == 0.0:
            return x
        if fx < 0.0:
            lo = x
        else:
            hi = x
        d = slope(x)
        step = fx / d if d > 0.0 and math.isfinite(d) else math.inf
        if abs(step) <= 1e-14 * x:
            return min(max(x - step, lo), hi)
        new = x - step
        if not lo < new < hi:
            new = math.sqrt(lo * hi) if lo > 0.0 and hi / lo > 4.0 else 0.5 * (lo + hi)
            if not lo < new < hi:  # the bracket is down to adjacent floats
                return x
        x = new
    return x


def _wilson(s: int, n: int, z: float, sign: float) -> float:
    centre = (s + z * z / 2.0) / (n + z * z)
    half_width = z * math.sqrt(s * (n - s) / n + z * z / 4.0) / (n + z * z)
    return centre + sign * half_width


def clopper_pearson(successes: ArrayLike, trials: ArrayLike, confidence: float) -> tuple[FloatArray, FloatArray]:
    """Exact (Clopper-Pearson) limits for a binomial proportion: ``low`` solves ``P(K >= s | low) = alpha/2``
    and ``high`` solves ``P(K <= s | high) = alpha/2`` for ``K ~ Binomial(trials, .)``, ``alpha = 1 - confidence``
    (``low = 0`` at ``s = 0``, ``high = 1`` at ``s = trials``).  These are the beta quantiles
    ``Beta(alpha/2; s, n - s + 1)`` and ``Beta(1 - alpha/2; s + 1, n - s)`` of the usual statement, found by
    Newton's method on the binomial tails (their derivatives are ``n P(K' = s - 1)`` and ``-n P(K' = s)`` for
    ``K' ~ Binomial(n - 1, .)``).  Inputs are validated by the caller; they broadcast."""
    s_arr, n_arr = np.broadcast_arrays(np.asarray(successes, dtype=np.float64), np.asarray(trials, dtype=np.float64))
    half = (1.0 - float(confidence)) / 2.0
    z = _normal_quantile(1.0 - half)
    low = np.zeros(s_arr.shape)
    high = np.ones(s_arr.shape)
    for idx in np.ndindex(s_arr.shape):
        s, n = int(s_arr[idx]), int(n_arr[idx])
        if s > 0:
            low[idx] = _root(
                lambda x, s=s, n=n: binom_sf(s, n, x),
                lambda x, s=s, n=n: n * math.exp(binom_logpmf_scalar(s - 1, n - 1, x)),
                half,
                _wilson(s, n, z, -1.0),
            )
        if s < n:
            high[idx] = _root(
                lambda x, s=s, n=n: -binom_cdf(s, n, x),
                lambda x, s=s, n=n: n * math.exp(binom_logpmf_scalar(s, n - 1, x)),
                -half,
                _wilson(s, n, z, 1.0),
            )
    return low, high


def _normal_quantile(u: float) -> float:
    """The standard normal quantile (Acklam's rational approximation, relative error below ``1.2e-9``); used only
    for the starting point of :func:`clopper_pearson`."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
         -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
         -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
         4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    if u < 0.02425:
        t = math.sqrt(-2.0 * math.log(u))
        return (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) / (
            (((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1.0)
    if u > 1.0 - 0.02425:
        return -_normal_quantile(1.0 - u)
    t = u - 0.5
    r = t * t
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * t / (
        ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)


def binom_cdf(k: int, n: int, p: float) -> float:
    """``P(K <= k)`` for ``K ~ Binomial(n, p)`` (window sum as in :func:`binom_sf`)."""
    if k >= n or p <= 0.0:
        return 1.0
    if k < 0 or p >= 1.0:
        return 0.0
    lo, hi = _window(float(n), float(p), _SF_TAIL_EXPONENT)
    return _pmf_sum(lo, min(k, hi), n, p)


#: Sums over at most this many terms are taken in plain floats (cheaper than the array set-up).
_SCALAR_TERMS = 32


def _pmf_sum(first: int, last: int, n: int, p: float) -> float:
    """``sum_{k=first}^{last} P(K = k)``, 0 for an empty range."""
    if last < first:
        return 0.0
    if last - first < _SCALAR_TERMS:
        return math.fsum(math.exp(binom_logpmf_scalar(k, n, p)) for k in range(first, last + 1))
    return float(np.sum(np.exp(binom_logpmf(np.arange(first, last + 1, dtype=np.float64), n, p))))


def binom_logpmf_rows(n: FloatArray, p: FloatArray, lo: FloatArray, width: int) -> FloatArray:
    """``log P(K = lo + j)``, ``j = 0..width-1``, for one ``Binomial(n_i, p_i)`` per row ``i`` (``lo + j <= n``).

    The row's mode (clipped into the window) is computed by :func:`binom_logpmf`; the other terms follow from
    the ratios ``P(k) / P(k - 1) = (n - k + 1) p / (k q)`` summed outwards from the mode, so the rounding grows
    only with the distance from the mode, where the probabilities fall (about ``1e-13`` relative within the
    bulk of a window of 2,000 terms).  A few array passes per term instead of Loader's series.
    """
    n = np.asarray(n, dtype=np.float64)[:, None]
    p = np.asarray(p, dtype=np.float64)[:, None]
    lo = np.asarray(lo, dtype=np.float64)[:, None]
    k = lo + np.arange(width, dtype=np.float64)[None, :]
    mode = np.clip(np.floor((n + 1.0) * p), lo, np.minimum(lo + width - 1, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.log((n - k + 1.0) / k) + (np.log(p) - np.log1p(-p))  # log P(k) - log P(k - 1)
        above = np.cumsum(np.where(k > mode, step, 0.0), axis=1)
        below = np.where(k <= mode, step, 0.0)
        # sum_{j = k+1}^{mode} step_j: the suffix sums of `below`, shifted by one
        suffix = np.cumsum(below[:, ::-1], axis=1)[:, ::-1]
        after = np.concatenate([suffix[:, 1:], np.zeros((suffix.shape[0], 1))], axis=1)
        anchor = binom_logpmf(mode[:, 0], n[:, 0], p[:, 0])[:, None]
        out = np.where(k > mode, anchor + above, anchor - after)
        out = np.where((k > n) | (k < 0), -np.inf, out)
    return np.asarray(out, dtype=np.float64)
