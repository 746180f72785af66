"""Subset sums at scale: a sorted, indexed list of up to ``2^24`` sums, and sorted enumeration of larger sumsets.

* :class:`SortedSums` -- all ``2^m`` subset sums of ``m <= 24`` values, sorted, with a uniform grid over their
  range.  ``cell(x) = floor((x - base) * inv)`` is monotone in ``x`` (correctly rounded subtraction and
  multiplication by a positive number are monotone), so every sum in a lower cell than a query is below it and
  every sum in a higher cell is above it: the predecessor of a query lies among the sums of its own cell, and a
  branch-free bisection over ``ceil(log2(max cell occupancy + 1))`` steps finds it exactly.  A lookup is a few
  vectorised passes with no data-dependent branches.  The sums are built as ``S_1 + S_2`` over two halves and
  sorted once; the bit mask of a sum is recovered afterwards by matching it against ``S_1 + S_2`` (so no codes
  are stored for the ``2^m`` sums).
* :func:`sorted_sums_in` -- the subset sums of up to 32 values that fall in ``[lo, hi]``, yielded in
  increasing order in chunks of bounded size (memory ``O(2^{m/2} + chunk)``), again from two sorted halves.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Largest number of values whose ``2^m`` sums :class:`SortedSums` holds (128 MiB of float64).
MAX_SORTED = 24
#: Sums per chunk of :func:`sorted_sums_in` (each sum holds ~40 bytes of temporaries while its chunk is built).
CHUNK_SUMS = 2**21
#: Entries of ``+inf`` after the sorted sums of :class:`SortedSums` (enough for cells of up to 63 sums).
_PAD = 64
#: Queries per vectorised lookup step of the numpy engine (a tile of targets x sums of the small half).
_TILE = 2**16
#: Targets per tile: neighbouring (sorted) targets query neighbouring sums, which keeps the lookups in cache.
_TILE_TARGETS = 128
#: Sorted sums per window of the numba engine's lookups (256 KiB of float64: the window stays in cache).
_WINDOW = 2**15
#: Most entries of the numba engine's window table (targets x windows; 32 MiB of int64).
_MAX_CUTS = 2**22
#: (sum, first-half sum) pairs matched per step of :meth:`SortedSums.codes_of`.
_CODES_BLOCK = 2**18

#: Engines of :meth:`SortedSums.build` and :meth:`SortedSums.best_pairs`; ``auto`` is ``numba`` where that
#: optional package is installed, else ``numpy``.
ENGINES = ("auto", "numpy", "numba")


def check_threads(threads: int) -> int:
    """``threads`` as an int >= 1 (``ValueError`` naming the bad value otherwise)."""
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    return int(threads)


def resolve_engine(engine: str) -> str:
    """``numpy`` or ``numba`` for an engine name of :data:`ENGINES` (``ValueError`` naming the valid ones)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    if engine == "auto":
        return "numba" if importlib.util.find_spec("numba") is not None else "numpy"
    if engine == "numba":
        _numba_kernels()
    return engine


def _numba_kernels() -> ModuleType:
    try:
        return importlib.import_module("ertheory._sumsets_numba")
    except ImportError as exc:
        raise ValueError(
            f"engine 'numba' needs the optional package numba ({exc}); install it with "
            "pip install 'ertoolkit[fast]', or use engine 'numpy'"
        ) from exc


def all_sums(values: FloatArray) -> tuple[FloatArray, IntArray]:
    """All ``2^m`` subset sums in code order (bit ``i`` of the code = value ``i`` used), by doubling."""
    sums = np.zeros(1)
    for xi in values:
        sums = np.concatenate([sums, sums + xi])
    return sums, np.arange(sums.size, dtype=np.int64)


def sorted_with_codes(values: FloatArray) -> tuple[FloatArray, IntArray]:
    """All subset sums sorted (stable, so equal sums keep code order) with their codes."""
    sums, codes = all_sums(values)
    order = np.argsort(sums, kind="stable")
    return sums[order], codes[order]


@dataclass(frozen=True)
class SortedSums:
    """The ``2^m`` subset sums of ``values`` in increasing order, indexed for nearest-sum lookups.

    ``padded[1 : n + 1]`` are the sums; ``padded[0] = -inf`` and ``2^steps + 1`` entries of ``+inf`` follow
    them, so that a bisection never leaves the array.  ``table[c]`` is the padded index of the last sum in a
    cell below ``c`` (0, the ``-inf``, if none).
    """

    values: FloatArray
    padded: FloatArray
    n: int
    base: float
    inv: float
    table: IntArray
    steps: int
    first: FloatArray  # sums of values[:k] in code order
    second: FloatArray  # sums of values[k:], sorted
    second_codes: IntArray
    k: int

    @classmethod
    def build(cls, values: FloatArray, engine: str = "numpy") -> SortedSums:
        """Sort and index the sums of ``values``; ``engine`` (``numpy`` or ``numba``) counts the sums per cell
        (both give the same arrays)."""
        engine = resolve_engine(engine)
        m = int(values.size)
        if m > MAX_SORTED:
            raise ValueError(f"SortedSums holds 2^m sums; m must be <= {MAX_SORTED}, got m={m}")
        k = m // 2
        first, _ = all_sums(values[:k])
        second, second_codes = sorted_with_codes(values[k:])
        n = first.size * second.size
        # cells: about eight sums per cell on average over [sum of the negative values, sum of the positive ones]
        ncell = max(1, n // 8)
        lo_sum = float(np.sum(np.minimum(values, 0.0)))
        width = float(np.sum(np.maximum(values, 0.0))) - lo_sum
        with np.errstate(over="ignore", divide="ignore"):
            inv = ncell / width if width > 0 else 0.0
        if not np.isfinite(inv):  # a range too narrow for the grid (subnormal sums): one cell holds them all
            inv = 0.0
        padded = np.empty(n + 2 + _PAD, dtype=np.float64)
        padded[0] = -np.inf
        body = padded[1 : n + 1]
        np.add(first[:, None], second[None, :], out=body.reshape(first.size, second.size))
        body.sort()
        counts = np.zeros(ncell, dtype=np.int64)
        _CELL_COUNTERS[engine]()(body, lo_sum, inv, counts)
        steps = max(1, int(counts.max())).bit_length()
        table = np.zeros(ncell, dtype=np.int64)
        np.cumsum(counts[:-1], out=table[1:])  # padded index of the last sum below each cell
        del counts
        if 2**steps > _PAD:  # crowded cells (sums far from uniform): a longer run of +inf after the sums
            padded = np.concatenate([padded[: n + 1], np.empty(2**steps + 1)])
        padded[n + 1 :] = np.inf
        return cls(values, padded, n, lo_sum, inv, table, steps, first, second, second_codes, k)

    def nearest(self, q: FloatArray) -> tuple[IntArray, FloatArray]:
        """For each query, the index (into the sorted sums) of a nearest sum and the distance to it.

        Ties go to the smaller sum.  ``q`` must be finite.
        """
        lo = self.table.take(_cells(q, self.base, self.inv, self.table.size))
        padded = self.padded
        for s in range(self.steps - 1, -1, -1):
            step = 1 << s
            lo += (padded[step:].take(lo) <= q) * step
        below = q - padded.take(lo)
        above = padded[1:].take(lo)
        above -= q
        # branch-free choice (np.where on unpredictable masks is several times slower here)
        dist = np.minimum(above, below)
        lo += above < below
        lo -= 1
        return lo, dist

    def best_pairs(
        self, z: FloatArray, a: FloatArray, engine: str = "numpy", threads: int = 1
    ) -> tuple[IntArray, IntArray]:
        """For each target ``z[t]``, the index ``i`` into ``a`` and ``j`` into the sorted sums minimising
        ``|z[t] - a[i] - sums[j]|`` (ties: smallest ``i``; then the smaller sum).  ``z`` sorted is fastest.

        ``threads`` > 1 splits the targets between threads (``numba`` engine; its kernel releases the GIL).
        """
        engine = resolve_engine(engine)
        threads = check_threads(threads)
        best_err = np.full(z.size, np.inf)
        best_a = np.zeros(z.size, dtype=np.int64)
        best_b = np.zeros(z.size, dtype=np.int64)
        parts = np.array_split(np.arange(z.size), min(threads, max(1, z.size)))
        jobs = [(self, z[p[0] : p[-1] + 1], a, best_err[p[0] : p[-1] + 1], best_a[p[0] : p[-1] + 1],
                 best_b[p[0] : p[-1] + 1]) for p in parts if p.size]
        find = _PAIR_FINDERS[engine]
        if len(jobs) == 1:
            find(*jobs[0])
        else:
            with ThreadPoolExecutor(len(jobs)) as pool:
                list(pool.map(lambda job: find(*job), jobs))
        return best_a, best_b

    def sums_at(self, index: IntArray) -> FloatArray:
        out: FloatArray = self.padded[np.asarray(index, dtype=np.int64) + 1]
        return out

    def codes_of(self, sums: FloatArray, engine: str = "numpy") -> IntArray:
        """The code (bit mask over ``values``) of a subset whose sum, as stored, equals each of ``sums``.

        Each stored sum is ``first[i] + second[j]`` rounded; for every ``i`` the matching ``j`` is found by a
        search in the sorted ``second`` and checked for equality (two neighbours either side absorb rounding),
        for a block of sums at a time; the first ``i`` that matches is taken.
        """
        v = np.asarray(sums, dtype=np.float64).ravel()
        out = np.empty(v.size, dtype=np.int64)
        first, second = self.first, self.second
        if resolve_engine(engine) == "numba":
            rows = np.empty(v.size, dtype=np.int64)
            cols = np.empty(v.size, dtype=np.int64)
            _numba_kernels().match_pairs(v, first, np.argsort(first, kind="stable"), second, rows, cols)
            if np.all(rows >= 0):
                return rows | (self.second_codes[cols] << self.k)
        block = max(1, _CODES_BLOCK // first.size)
        for b0 in range(0, v.size, block):
            vb = v[b0 : b0 + block, None]
            pos = np.searchsorted(second, vb - first[None, :])
            found = np.zeros(vb.shape[0], dtype=bool)
            for shift in (0, -1, 1, -2, 2):
                j = np.clip(pos + shift, 0, second.size - 1)
                hit = (first[None, :] + second[j]) == vb
                rows = np.flatnonzero(hit.any(axis=1) & ~found)
                i = hit[rows].argmax(axis=1)
                out[b0 + rows] = i | (self.second_codes[j[rows, i]] << self.k)
                found[rows] = True
            for r in np.flatnonzero(~found):  # not reached for sums taken from this table; an exact fallback
                i, j0 = np.argwhere(np.add.outer(first, second) == vb[r, 0])[0]
                out[b0 + r] = int(i) | (int(self.second_codes[j0]) << self.k)
        return out


def _count_cells_numpy(body: FloatArray, base: float, inv: float, counts: IntArray) -> None:
    """``counts`` += the occupancy of each grid cell by the sorted ``body``."""
    # the sorted sums of a chunk fall in a contiguous range of cells
    for start in range(0, body.size, CHUNK_SUMS):
        cells = _cells(body[start : start + CHUNK_SUMS], base, inv, counts.size)
        counts[cells[0] : cells[-1] + 1] += np.bincount(cells - cells[0])


def _best_pairs_numpy(
    table: SortedSums, z: FloatArray, a: FloatArray, best_err: FloatArray, best_a: IntArray, best_b: IntArray
) -> None:
    """Tiles of neighbouring targets x a block of ``a``, looked up together (:meth:`SortedSums.nearest`)."""
    g = min(z.size, _TILE_TARGETS)
    c = max(1, _TILE // g)
    for g0 in range(0, z.size, g):
        zg = z[g0 : g0 + g]
        rows = np.arange(zg.size)
        for c0 in range(0, a.size, c):
            index, dist = table.nearest((zg[:, None] - a[None, c0 : c0 + c]).ravel())
            dist = dist.reshape(zg.size, -1)
            j = dist.argmin(axis=1)
            err = dist[rows, j]
            better = err < best_err[g0 : g0 + g]
            best_err[g0 : g0 + g] = np.where(better, err, best_err[g0 : g0 + g])
            best_a[g0 : g0 + g] = np.where(better, c0 + j, best_a[g0 : g0 + g])
            best_b[g0 : g0 + g] = np.where(better, index.reshape(zg.size, -1)[rows, j], best_b[g0 : g0 + g])


def _best_pairs_numba(
    table: SortedSums, z: FloatArray, a: FloatArray, best_err: FloatArray, best_a: IntArray, best_b: IntArray
) -> None:
    """The compiled kernel over windows of the sorted sums: ``cuts[t, w + 1] <= i < cuts[t, w]`` are the ``a``
    whose query ``z[t] - a[i]`` lies between the window's first sum and the next window's (any consistent cut
    works: it only decides the order of the lookups, not their results)."""
    n_win = max(1, min(table.n // _WINDOW, _MAX_CUTS // max(1, z.size)))
    edges = table.padded[1 + np.arange(1, n_win) * (table.n // n_win)]
    cuts = np.empty((z.size, n_win + 1), dtype=np.int64)
    cuts[:, 0] = a.size
    cuts[:, -1] = 0
    cuts[:, 1:-1] = np.searchsorted(a, z[:, None] - edges[None, :], side="right")
    _numba_kernels().best_pairs(
        np.ascontiguousarray(z), np.ascontiguousarray(a), table.padded, table.table, table.base, table.inv,
        table.steps, cuts, best_err, best_a, best_b,
    )


_CELL_COUNTERS: dict[str, Callable[[], Callable[..., Any]]] = {
    "numpy": lambda: _count_cells_numpy,
    "numba": lambda: _numba_kernels().count_cells,
}
_PAIR_FINDERS: dict[str, Callable[..., None]] = {"numpy": _best_pairs_numpy, "numba": _best_pairs_numba}


def _cells(x: FloatArray, base: float, inv: float, ncell: int) -> IntArray:
    """Grid cell of each ``x`` (monotone non-decreasing in ``x``), clipped to ``[0, ncell - 1]``."""
    f = (x - base) * inv
    np.clip(f, 0.0, float(ncell - 1), out=f)
    return f.astype(np.int64)


def sorted_sums_in(values: FloatArray, lo: float, hi: float, chunk: int = CHUNK_SUMS) -> Iterator[FloatArray]:
    """The distinct subset sums of ``values`` that lie in ``[lo, hi]``, in increasing order, in chunks of at most
    about ``chunk`` (duplicate sums may be dropped; every distinct value is yielded once or more).

    Sums are ``U_1[i] + U_2[j]`` (rounded) over the distinct sums ``U_1``, ``U_2`` of two halves.  The range is
    cut at value boundaries chosen from counts (``sum_i #{j : U_1[i] + U_2[j] < v}`` by binary search; a cut
    holding more than ``chunk`` pairs is subdivided until it fits or is one float wide -- then it holds at most
    ``min(|U_1|, |U_2|)`` pairs), each piece's sums are gathered -- membership decided by the computed sum itself,
    so every pair lands in exactly one piece -- and sorted.  Memory ``O(2^{m/2} + chunk)``.
    """
    k = values.size // 2
    s1 = np.unique(all_sums(values[:k])[0])
    s2 = np.unique(all_sums(values[k:])[0])

    def below(v: FloatArray) -> FloatArray:
        return np.array([np.searchsorted(s2, t - s1, side="left").sum() for t in np.atleast_1d(v)], dtype=np.float64)

    def cuts(v0: float, v1: float, c0: float, c1: float) -> Iterator[tuple[float, float]]:
        """Pieces ``[a, b)`` covering ``[v0, v1)`` with at most ``chunk`` pairs each (where splittable)."""
        if c1 - c0 <= chunk or not np.nextafter(v0, np.inf) < v1:
            yield v0, v1
            return
        grid = np.linspace(v0, v1, 17)
        counts = np.concatenate([[c0], below(grid[1:-1]), [c1]])
        start = 0
        for end in range(1, grid.size):
            if counts[end] - counts[start] > chunk:
                if end - 1 > start:  # flush the pieces that fit, then refine the step that does not
                    yield grid[start], grid[end - 1]
                    start = end - 1
                if counts[end] - counts[start] > chunk:
                    yield from cuts(grid[start], grid[end], counts[start], counts[end])
                    start = end
        if start < grid.size - 1:
            yield grid[start], grid[-1]

    total_hi = float(np.searchsorted(s2, hi - s1, side="right").sum())
    pieces = list(cuts(lo, hi, float(below(np.array([lo]))[0]), total_hi))
    for n_piece, (v0, v1) in enumerate(pieces):
        last = n_piece == len(pieces) - 1
        first_j = np.maximum(np.searchsorted(s2, v0 - s1, side="left") - 2, 0)
        stop_j = np.minimum(np.searchsorted(s2, v1 - s1, side="right") + 2, s2.size)
        lens = np.maximum(stop_j - first_j, 0)
        count = int(lens.sum())
        if count == 0:
            continue
        rows = np.repeat(np.arange(s1.size), lens)
        cols = np.arange(count) - np.repeat(np.cumsum(lens) - lens - first_j, lens)
        sums = s1[rows] + s2[cols]
        keep = (sums >= v0) & ((sums <= v1) if last else (sums < v1))
        part = np.sort(sums[keep])
        if part.size:
            yield part


def sums_beyond(values: FloatArray, lo: float, hi: float) -> tuple[float | None, float | None]:
    """The largest subset sum below ``lo`` and the smallest above ``hi`` (``None`` where there is none), as
    computed sums ``U_1[i] + U_2[j]`` of the two halves of :func:`sorted_sums_in` (so they order consistently
    with its chunks): per ``i`` a binary search, then the neighbours checked on the computed sums."""
    k = values.size // 2
    s1 = np.unique(all_sums(values[:k])[0])
    s2 = np.unique(all_sums(values[k:])[0])
    cols = np.searchsorted(s2, lo - s1, side="left")[:, None] + np.arange(-2, 2)[None, :]
    ok = (cols >= 0) & (cols < s2.size)
    sums = s1[:, None] + s2[np.clip(cols, 0, s2.size - 1)]
    below = sums[ok & (sums < lo)]
    cols = np.searchsorted(s2, hi - s1, side="right")[:, None] + np.arange(-1, 3)[None, :]
    ok = (cols >= 0) & (cols < s2.size)
    sums = s1[:, None] + s2[np.clip(cols, 0, s2.size - 1)]
    above = sums[ok & (sums > hi)]
    return (float(below.max()) if below.size else None), (float(above.min()) if above.size else None)
