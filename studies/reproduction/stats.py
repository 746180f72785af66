"""Statistics of the study: mean ± 95% Student-t interval over seeds, and tests on differences of means.

A *cell* summarises one setting over its seeds (accuracies in percent).  A :class:`Comparison` asks whether the
difference ``D = mean(A) - mean(B)`` of two cells lies above (or below) a threshold, using the 95% Welch
interval of ``D``: the answer is ``holds`` when the whole interval is on the claimed side, ``fails`` when the
whole interval is on the other side, and ``inconclusive`` when the interval contains the threshold (or a cell
has fewer than two seeds).  The rules of the study (``docs/study_design.md``) are built from such tests.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: The outcomes of a test and of a claim's verdict.
HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"


@dataclass(frozen=True)
class Cell:
    """One setting over its seeds: the values (percent), their mean, and the 95% interval's half-width."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def var(self) -> float:
        return float(np.var(self.values, ddof=1)) if self.n > 1 else math.nan

    @property
    def ci95(self) -> float:
        """Half-width ``t_{0.975, n-1} s / sqrt(n)``; NaN for fewer than two values."""
        return ci95_halfwidth(self.values)

    def text(self) -> str:
        """``mean ± ci`` with two decimals (the mean alone for one value, empty for none)."""
        if not self.values:
            return ""
        return f"{self.mean:.2f}" if self.n < 2 else f"{self.mean:.2f} ± {self.ci95:.2f}"


def ci95_halfwidth(values: Sequence[float]) -> float:
    """Half-width of the 95% Student-t interval of the mean of ``values`` (NaN below two values)."""
    n = len(values)
    if n < 2:
        return math.nan
    sd = float(np.std(values, ddof=1))
    return float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


@dataclass(frozen=True)
class Difference:
    """``mean(A) - mean(B)`` and its 95% Welch interval ``[lo, hi]`` (infinite when a cell has < 2 values)."""

    d: float
    lo: float
    hi: float


def difference(a: Cell, b: Cell) -> Difference:
    """The difference of two cells' means with its 95% Welch-Satterthwaite interval."""
    w = welch(a, b)
    if math.isnan(w.se):
        return Difference(w.d, -math.inf, math.inf)
    if w.se == 0.0:
        return Difference(w.d, w.d, w.d)
    half = float(stats.t.ppf(0.975, w.df)) * w.se
    return Difference(w.d, w.d - half, w.d + half)


@dataclass(frozen=True)
class Comparison:
    """Is ``mean(A) - mean(B)`` above (``direction="above"``) or below ``threshold`` percentage points?"""

    statement: str
    direction: str
    threshold: float

    def __post_init__(self) -> None:
        if self.direction not in ("above", "below"):
            raise ValueError(f"direction must be 'above' or 'below', got {self.direction!r}")

    def decide(self, diff: Difference) -> str:
        """``holds`` / ``fails`` / ``inconclusive`` from the interval of the difference.

        ``above``: holds if ``lo > threshold``, fails if ``hi <= threshold``.  ``below``: holds if
        ``hi < threshold``, fails if ``lo >= threshold``.  Otherwise (or for a NaN difference) inconclusive.
        """
        if math.isnan(diff.d):
            return INCONCLUSIVE
        if self.direction == "above":
            return HOLDS if diff.lo > self.threshold else (FAILS if diff.hi <= self.threshold else INCONCLUSIVE)
        return HOLDS if diff.hi < self.threshold else (FAILS if diff.lo >= self.threshold else INCONCLUSIVE)


@dataclass(frozen=True)
class Welch:
    """``d = mean(A) - mean(B)``, its standard error and Welch-Satterthwaite degrees of freedom."""

    d: float
    se: float
    df: float


def welch(a: Cell, b: Cell) -> Welch:
    """The Welch statistics of ``mean(a) - mean(b)`` (``se`` is NaN when a cell has fewer than two values)."""
    d = a.mean - b.mean
    if a.n < 2 or b.n < 2:
        return Welch(d, math.nan, math.nan)
    va, vb = a.var / a.n, b.var / b.n
    se2 = va + vb
    if se2 == 0.0:
        return Welch(d, 0.0, float(a.n + b.n - 2))
    return Welch(d, math.sqrt(se2), se2**2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1)))


def one_sided_p(w: Welch, direction: str, threshold: float) -> float:
    """p-value of the one-sided Welch test of ``H1: D > threshold`` (``"above"``) or ``D < threshold`` (``"below"``).

    ``H0`` is the complement (``D <= threshold`` resp. ``D >= threshold``); NaN without two values per cell.
    With zero spread the p-value is 0 when the difference is on the claimed side, else 1.
    """
    if direction not in ("above", "below"):
        raise ValueError(f"direction must be 'above' or 'below', got {direction!r}")
    if math.isnan(w.d) or math.isnan(w.se):
        return math.nan
    gap = (w.d - threshold) if direction == "above" else (threshold - w.d)
    if w.se == 0.0:
        return 0.0 if gap > 0 else 1.0
    return float(stats.t.sf(gap / w.se, w.df))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order; NaN stays NaN, uncounted.

    Sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (k - j + 1) p_(j))`` for ``k`` non-NaN values.
    """
    idx = sorted((i for i, p in enumerate(pvalues) if not math.isnan(p)), key=lambda i: pvalues[i])
    k, out, running = len(idx), [math.nan] * len(pvalues), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (k - rank) * pvalues[i]))
        out[i] = running
    return out


def min_detectable(w: Welch, alpha: float, power: float = 0.8) -> float:
    """Smallest true distance from the threshold a one-sided Welch test at level ``alpha`` detects with ``power``.

    ``(t_{1-alpha, df} + t_{power, df}) se``: the shift of the mean difference that puts the test statistic's
    median ``power`` quantiles past the critical value, assuming normal seed noise with the measured variances.
    Infinite without two values per cell; 0 with zero spread.
    """
    if math.isnan(w.se):
        return math.inf
    if w.se == 0.0:
        return 0.0
    return float((stats.t.ppf(1.0 - alpha, w.df) + stats.t.ppf(power, w.df)) * w.se)


def combine(outcomes: Sequence[str]) -> str:
    """A claim's verdict from its tests (the rule of ``docs/study_design.md``).

    ``holds``: every test holds.  ``does not hold``: at least one test fails and none holds.
    ``inconclusive (intervals overlap)``: no test is decided.  ``partly holds``: some hold, others fail
    or are undecided.  No test at all is inconclusive.
    """
    for o in outcomes:
        if o not in (HOLDS, FAILS, INCONCLUSIVE):
            raise ValueError(f"unknown test outcome {o!r}; valid: {HOLDS}, {FAILS}, {INCONCLUSIVE}")
    held, failed = outcomes.count(HOLDS), outcomes.count(FAILS)
    if outcomes and held == len(outcomes):
        return "holds"
    if held == 0 and failed > 0:
        return "does not hold"
    if held == 0:
        return "inconclusive (intervals overlap)"
    return "partly holds"


__all__ = ["FAILS", "HOLDS", "INCONCLUSIVE", "Cell", "Comparison", "Difference", "Welch", "ci95_halfwidth", "combine",
           "difference", "holm", "min_detectable", "one_sided_p", "welch"]
