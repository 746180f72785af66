"""Compiled (numba) kernels of :mod:`ertheory._sumsets` and :func:`ertheory.subsetsum.best_subset`.

Optional: imported only when the ``numba`` engine is chosen (``pip install 'ertoolkit[fast]'``).  The kernels
do the numpy code's floating-point operations in the same order, so both engines return the same results bit
for bit (the tests compare them on random inputs, integer-valued ones with many ties included):

* :func:`count_cells` -- the occupancy of the grid cells in one pass over the sorted sums (numpy needs a
  cell index array per chunk and a ``bincount``).
* :func:`best_pairs` -- for every target, the (small-half sum, sorted-half sum) pair nearest to it.  The
  queries ``z - a`` are visited window by window of the sorted sums (so that the sums a window's queries read
  stay in cache), eight at a time, each found by the same branch-free bisection inside its grid cell as
  :meth:`ertheory._sumsets.SortedSums.nearest`.  Among pairs of equal error the one with the smallest index of
  ``a`` wins, as in the numpy engine.
"""

from __future__ import annotations

import numba
import numpy as np

#: Queries searched together (independent bisections overlap their memory reads).
_LANES = 8


@numba.njit(cache=True, nogil=True)
def count_cells(body, base, inv, counts):
    """``counts[c]`` += the number of the sorted ``body`` in cell ``c`` (= ``floor((s - base) * inv)`` clipped
    to ``[0, counts.size - 1]``): one sequential pass."""
    top = counts.size - 1.0
    run_cell = 0
    run = 0
    for k in range(body.size):  # sorted: equal cells come in runs, each counted once
        c = np.int64(min(max((body[k] - base) * inv, 0.0), top))
        if c != run_cell:
            counts[run_cell] += run
            run_cell = c
            run = 0
        run += 1
    counts[run_cell] += run


@numba.njit(cache=True, nogil=True)
def best_pairs(z, a, padded, table, base, inv, steps, cuts, best_err, best_a, best_b):
    """For each target ``z[t]``: the smallest ``|z[t] - a[i] - sums[j]|`` over all ``i, j`` (``sums`` =
    ``padded[1:-pad]``) with its ``i`` and ``j``, merged into ``best_err``, ``best_a``, ``best_b``.

    ``cuts[t, w + 1] <= i < cuts[t, w]`` are the ``a`` whose query falls in window ``w`` (windows in increasing
    order of the query); every ``i`` lies in exactly one window.
    """
    top = table.size - 1.0
    q = np.empty(_LANES)
    lo = np.empty(_LANES, dtype=np.int64)
    for w in range(cuts.shape[1] - 1):
        for t in range(z.size):
            zt = z[t]
            be = best_err[t]
            ba = best_a[t]
            bb = best_b[t]
            i_lo = cuts[t, w + 1]
            i_hi = cuts[t, w]
            for g in range(i_lo, i_hi, _LANES):
                lanes = min(_LANES, i_hi - g)
                for k in range(_LANES):
                    qk = zt - a[min(g + k, i_hi - 1)]
                    q[k] = qk
                    lo[k] = table[np.int64(min(max((qk - base) * inv, 0.0), top))]
                for s in range(steps - 1, -1, -1):
                    step = 1 << s
                    for k in range(_LANES):
                        lo[k] += step * (padded[lo[k] + step] <= q[k])
                for k in range(lanes):
                    below = q[k] - padded[lo[k]]
                    above = padded[lo[k] + 1] - q[k]
                    d = min(above, below)
                    i = g + k
                    if d < be or (d == be and i < ba):
                        be = d
                        ba = i
                        bb = lo[k] - 1 + (above < below)
            best_err[t] = be
            best_a[t] = ba
            best_b[t] = bb


@numba.njit(cache=True, nogil=True)
def match_pairs(sums, first, first_order, second, rows, cols):
    """For each of ``sums``, the first ``(i, j)`` with ``first[i] + second[j] == sums[t]`` in the order of
    :meth:`ertheory._sumsets.SortedSums.codes_of` (offsets 0, -1, 1, -2, 2 from the search position of
    ``sums[t] - first[i]`` in the sorted ``second``, then ``i`` ascending); ``rows[t] = -1`` where none.

    The search positions come from one merge of ``first`` in increasing order (``first_order``) against the
    sorted ``second``, instead of a binary search per ``i``.
    """
    pos = np.empty(first.size, dtype=np.int64)
    last = second.size - 1
    for t in range(sums.size):
        v = sums[t]
        p = second.size
        for r in range(first.size):  # needles v - first[i] in decreasing order: positions only decrease
            needle = v - first[first_order[r]]
            while p > 0 and second[p - 1] >= needle:
                p -= 1
            pos[first_order[r]] = p
        rows[t] = -1
        for shift in (0, -1, 1, -2, 2):
            for i in range(first.size):
                j = min(max(pos[i] + shift, 0), last)
                if first[i] + second[j] == v:
                    rows[t] = i
                    cols[t] = j
                    break
            if rows[t] >= 0:
                break
