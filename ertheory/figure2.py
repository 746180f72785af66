"""Figure 2 of the paper, the computation: the width Theorem 2.1 asks of source layer 1, against sparsity.

Setting of the paper: a target with 128 hidden and 10 output neurons, confidence ``1 - delta = 0.999``,
a uniform density ``p = 1 - sparsity`` in every layer.  Panel (a) is the paper's figure
(``n_{S,1} = ceil(q_1) * 128`` with ``q_1 = log(2 * 1280 / delta) / log(1 / (1 - p))``); panel (b) the same
width for depth-``L`` targets ``784-128-...-128-10`` with ``L = 2, 3, 4`` by Theorem 2.2 (``L = 2`` coincides
with panel (a)).  numpy only: the plot and the files are made by ``figures/figure2.py`` (also behind
``ertheory figure2``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ertheory._validate import (
    DEFAULT_MAX_MEMORY,
    check_open_unit,
    check_positive,
    check_positive_int,
    check_sparsity,
    format_bytes,
)
from ertheory.bounds import theorem_2_1, theorem_2_2

#: Sparsities marked on the plot and reported in the summary.
MARKED_SPARSITIES: tuple[float, ...] = (0.5, 0.9, 0.99)

#: Estimated bytes per grid point: the bound arrays and their temporaries, the CSV text and the plotted paths.
BYTES_PER_POINT = 1024

@dataclass(frozen=True)
class Figure2Data:
    """The curves of Figure 2: per sparsity, ``q_1`` and the width of source layer 1."""

    sparsity: NDArray[np.float64]
    q1: NDArray[np.float64]
    width: NDArray[np.int64]
    depths: tuple[int, ...]
    depth_q1: NDArray[np.float64]  # shape (len(depths), points)
    depth_width: NDArray[np.int64]
    n_inputs: int
    n_hidden: int
    n_out: int
    delta: float


def estimated_bytes(points: int) -> int:
    """Memory the figure needs for ``points`` grid points (:data:`BYTES_PER_POINT` each)."""
    return int(points) * BYTES_PER_POINT


def _check_size(points: Any, max_memory: float) -> int:
    """``points`` as an int >= 2 whose estimated memory fits ``max_memory``; raise ``ValueError`` otherwise."""
    n_points = int(check_positive_int(points, "points"))
    if n_points < 2:
        raise ValueError(f"points must be at least 2, got {points!r}")
    limit = float(check_positive(max_memory, "max_memory"))
    need = estimated_bytes(n_points)
    if need > limit:
        raise ValueError(
            f"points = {n_points} would need about {format_bytes(need)} (estimate: {BYTES_PER_POINT} bytes per "
            f"point), above the limit of {format_bytes(limit)}; use at most {int(limit // BYTES_PER_POINT)} points "
            "or raise --max-memory"
        )
    return n_points


def compute(
    points: int = 200,
    max_sparsity: float = 0.995,
    delta: float = 0.001,
    n_inputs: int = 784,
    n_hidden: int = 128,
    n_out: int = 10,
    depths: Sequence[int] = (2, 3, 4),
    max_memory: float = DEFAULT_MAX_MEMORY,
) -> Figure2Data:
    """Evaluate Theorem 2.1 (and Theorem 2.2 for each depth) on ``points`` sparsities in ``[0, max_sparsity]``.

    Every input is checked before any work: ``points`` at least 2 and within ``max_memory`` by the size
    estimate, ``max_sparsity`` in ``(0, 1)``, ``delta`` in ``(0, 1)``, positive integer widths, depths at least 2.
    One vectorised call per theorem: the densities ``1 - sparsity`` go in as a column ``(points, 1)`` that
    broadcasts over the layers.  The marked sparsities 0.5, 0.9, 0.99 are on the grid (added when they lie in
    range but off it).
    """
    n_points = _check_size(points, max_memory)
    top = float(check_sparsity(max_sparsity, "max_sparsity"))
    if top <= 0.0:
        raise ValueError(f"max_sparsity must be in (0, 1) (the grid runs from sparsity 0 to it), got {max_sparsity!r}")
    dlt = float(check_open_unit(delta, "delta"))
    for value, name in ((n_inputs, "n_inputs"), (n_hidden, "n_hidden"), (n_out, "n_out")):
        check_positive_int(value, name)
    depth_tuple = tuple(int(x) for x in check_positive_int(list(depths), "depths"))
    if min(depth_tuple) < 2:
        raise ValueError(f"depths must be at least 2, got {min(depth_tuple)!r}")
    grid = np.linspace(0.0, top, n_points)
    extra = []
    for s in MARKED_SPARSITIES:
        near = np.flatnonzero(np.isclose(grid, s, rtol=0.0, atol=1e-12))
        if near.size:
            grid[near[0]] = s  # snap the grid point onto the exact marked value
        elif s <= top:
            extra.append(s)
    sparsity = np.sort(np.concatenate([grid, extra]))
    density = (1.0 - sparsity)[:, None]
    bound = theorem_2_1(n_inputs, n_hidden, n_out, density, dlt)
    depth_q1 = []
    depth_width = []
    for L in depth_tuple:
        deep = theorem_2_2([n_inputs] + [n_hidden] * (L - 1) + [n_out], density, dlt)
        depth_q1.append(deep.q[:, 1])
        depth_width.append(deep.widths[:, 1])
    return Figure2Data(
        sparsity=sparsity,
        q1=bound.q[:, 1],
        width=bound.widths[:, 1],
        depths=depth_tuple,
        depth_q1=np.stack(depth_q1),
        depth_width=np.stack(depth_width),
        n_inputs=int(n_inputs),
        n_hidden=int(n_hidden),
        n_out=int(n_out),
        delta=dlt,
    )


def marked(data: Figure2Data) -> dict[str, dict[str, float | int]]:
    """``q_1`` and the width at each marked sparsity on the grid, keyed by the sparsity (``"0.9"``)."""
    out: dict[str, dict[str, float | int]] = {}
    for s in MARKED_SPARSITIES:
        idx = np.flatnonzero(np.isclose(data.sparsity, s))
        if idx.size:
            out[f"{s:g}"] = {"q1": float(data.q1[idx[0]]), "width": int(data.width[idx[0]])}
    return out
