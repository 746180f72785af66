"""Figure 2 of the paper: the width Theorem 2.1 asks of source layer 1, against sparsity.

Setting of the paper: a target with 128 hidden and 10 output neurons, confidence ``1 - delta = 0.999``,
a uniform density ``p = 1 - sparsity`` in every layer.  Panel (a) is the paper's figure
(``n_{S,1} = ceil(q_1) * 128`` with ``q_1 = log(2 * 1280 / delta) / log(1 / (1 - p))``, log-scaled y axis);
panel (b) shows the same width for depth-``L`` targets ``784-128-...-128-10`` with ``L = 2, 3, 4`` by
Theorem 2.2 (``L = 2`` coincides with panel (a)).

Writes ``figure2.png``, ``figure2.csv`` (columns ``sparsity,q1,width``; width = whole neurons) and
``figure2_depth.csv`` (columns ``sparsity,L,q1,width``) into the output directory, atomically.
Used by ``figures/figure2.py`` and by ``ertheory figure2``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from ertheory._validate import check_open_unit, check_positive_int, check_sparsity
from ertheory.bounds import theorem_2_1, theorem_2_2

#: Sparsities marked on the plot and reported in the summary.
MARKED_SPARSITIES: tuple[float, ...] = (0.5, 0.9, 0.99)


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


def compute(
    points: int = 200,
    max_sparsity: float = 0.995,
    delta: float = 0.001,
    n_inputs: int = 784,
    n_hidden: int = 128,
    n_out: int = 10,
    depths: Sequence[int] = (2, 3, 4),
) -> Figure2Data:
    """Evaluate Theorem 2.1 (and Theorem 2.2 for each depth) on ``points`` sparsities in ``[0, max_sparsity]``.

    One vectorised call per theorem: the densities ``1 - sparsity`` go in as a column ``(points, 1)`` that
    broadcasts over the layers.  The marked sparsities 0.5, 0.9, 0.99 are on the grid (added when they lie in
    range but off it).
    """
    n_points = int(check_positive_int(points, "points"))
    if n_points < 2:
        raise ValueError(f"points must be at least 2, got {points!r}")
    top = float(check_sparsity(max_sparsity, "max_sparsity"))
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
        n_inputs=n_inputs,
        n_hidden=n_hidden,
        n_out=n_out,
        delta=dlt,
    )


def _atomic_write(path: Path, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Write ``path`` through a temporary file in the same directory, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        fh: IO[Any]
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="")) as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(data: Figure2Data, out_dir: Path) -> tuple[Path, Path]:
    """``figure2.csv`` (``sparsity,q1,width``) and ``figure2_depth.csv`` (``sparsity,L,q1,width``)."""
    main_path = out_dir / "figure2.csv"
    depth_path = out_dir / "figure2_depth.csv"

    def main_rows(fh: IO[Any]) -> None:
        w = csv.writer(fh)
        w.writerow(["sparsity", "q1", "width"])
        for s, q1, width in zip(data.sparsity, data.q1, data.width, strict=True):
            w.writerow([f"{s:.10g}", f"{q1:.17g}", int(width)])

    def depth_rows(fh: IO[Any]) -> None:
        w = csv.writer(fh)
        w.writerow(["sparsity", "L", "q1", "width"])
        for L, qs, widths in zip(data.depths, data.depth_q1, data.depth_width, strict=True):
            for s, q1, width in zip(data.sparsity, qs, widths, strict=True):
                w.writerow([f"{s:.10g}", L, f"{q1:.17g}", int(width)])

    _atomic_write(main_path, main_rows)
    _atomic_write(depth_path, depth_rows)
    return main_path, depth_path


def plot(data: Figure2Data, path: Path) -> Path:
    """Draw the two panels into ``path`` (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(11.5, 4.4), constrained_layout=True)
    ax_a.plot(data.sparsity, data.width, color="C0", lw=2, label=r"$n_{S,1} = \lceil q_1 \rceil\, n_{T,1}$")
    ax_a.axhline(data.n_hidden, color="0.5", ls=":", lw=1, label=rf"target width $n_{{T,1}} = {data.n_hidden}$")
    for s in MARKED_SPARSITIES:
        idx = np.flatnonzero(np.isclose(data.sparsity, s))
        if idx.size:
            w = int(data.width[idx[0]])
            ax_a.plot([s], [w], "o", color="C3", ms=5)
            ax_a.annotate(f"{w:,}", (s, w), textcoords="offset points", xytext=(-8, 7), ha="right", fontsize=9)
    ax_a.set_yscale("log")
    ax_a.set_xlabel("sparsity $1 - p$")
    ax_a.set_ylabel("width of source layer $l = 1$")
    ax_a.set_title(
        f"(a) Theorem 2.1: target {data.n_hidden} hidden, {data.n_out} outputs, $1-\\delta = {1 - data.delta:g}$",
        fontsize=10,
    )
    ax_a.legend(loc="upper left", fontsize=9)
    ax_a.grid(True, which="both", alpha=0.3)

    styles = ["-", "--", "-.", ":"]
    for i, L in enumerate(data.depths):
        arch = "-".join([str(data.n_inputs)] + [str(data.n_hidden)] * (L - 1) + [str(data.n_out)])
        ax_b.plot(data.sparsity, data.depth_width[i], ls=styles[i % len(styles)], lw=2, label=f"L = {L} ({arch})")
    ax_b.set_yscale("log")
    ax_b.set_xlabel("sparsity $1 - p$")
    ax_b.set_ylabel("width of source layer $l = 1$")
    ax_b.set_title(f"(b) Theorem 2.2: depth-L targets, $1-\\delta = {1 - data.delta:g}$", fontsize=10)
    ax_b.legend(loc="upper left", fontsize=9)
    ax_b.grid(True, which="both", alpha=0.3)

    _atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=130), binary=True)
    plt.close(fig)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by ``figures/figure2.py`` and ``ertheory figure2``."""
    parser.add_argument("--out", default="figures/out", help="output directory (default figures/out)")
    parser.add_argument("--points", type=int, default=200, help="sparsities on the grid (default 200)")
    parser.add_argument("--max-sparsity", type=float, default=0.995, help="right end of the grid (default 0.995)")
    parser.add_argument("--delta", type=float, default=0.001, help="failure probability (default 0.001)")
    parser.add_argument("--inputs", type=int, default=784, help="input dimension d of panel (b) (default 784)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden width of the target (default 128)")
    parser.add_argument("--outputs", type=int, default=10, help="output width of the target (default 10)")


def generate(args: argparse.Namespace) -> dict[str, Any]:
    """Compute, write CSVs and PNG into ``args.out``; return a summary (paths and the marked widths)."""
    data = compute(args.points, args.max_sparsity, args.delta, args.inputs, args.hidden, args.outputs)
    out = Path(args.out)
    csv_path, depth_path = write_csv(data, out)
    png_path = plot(data, out / "figure2.png")
    marked = {}
    for s in MARKED_SPARSITIES:
        idx = np.flatnonzero(np.isclose(data.sparsity, s))
        if idx.size:
            marked[f"{s:g}"] = {"q1": float(data.q1[idx[0]]), "width": int(data.width[idx[0]])}
    return {
        "png": str(png_path),
        "csv": str(csv_path),
        "depth_csv": str(depth_path),
        "points": int(data.sparsity.size),
        "delta": data.delta,
        "target": [data.n_hidden, data.n_out],
        "marked": marked,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``figures/figure2.py``."""
    parser = argparse.ArgumentParser(description="Figure 2: width of source layer 1 by Theorem 2.1 vs sparsity.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        summary = generate(args)
    except ValueError as exc:
        print(f"figure2: error: {exc}", file=sys.stderr)
        return 2
    for s, row in summary["marked"].items():
        print(f"sparsity {s}: q1 = {row['q1']:.4f}, width = {row['width']}")
    print(f"wrote {summary['png']}, {summary['csv']}, {summary['depth_csv']}")
    return 0
