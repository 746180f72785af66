"""Figure 2: width of source layer 1 required by Theorem 2.1 against sparsity (plus depth L = 2, 3, 4).

Writes ``figure2.png``, ``figure2.csv`` (``sparsity,q1,width``) and ``figure2_depth.csv``
(``sparsity,L,q1,width``) into ``--out`` (default ``figures/out``).  The numbers come from
:mod:`ertheory.figure2`; ``ertheory figure2`` calls :func:`generate` too.

    python3 figures/figure2.py --out figures/out [--points 200 --max-sparsity 0.995 --delta 0.001]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the command line imports this module for its flags: numpy and the rest load on use
    from ertheory.figure2 import Figure2Data

CAPTION = (
    "Drawn: the width n_S,1 of source layer 1 that suffices with probability 1 - delta for a uniform density "
    "p = 1 - sparsity in every layer; (a) Theorem 2.1 for the paper's target, (b) Theorem 2.2 for deeper targets."
)


def write_tables(data: Figure2Data, out_dir: Path) -> tuple[Path, Path]:
    """``figure2.csv`` (``sparsity,q1,width``) and ``figure2_depth.csv`` (``sparsity,L,q1,width``)."""
    from figures._common import write_csv

    main_rows = zip(data.sparsity, data.q1, data.width, strict=True)
    depth_rows = [
        (s, L, q1, width)
        for L, qs, widths in zip(data.depths, data.depth_q1, data.depth_width, strict=True)
        for s, q1, width in zip(data.sparsity, qs, widths, strict=True)
    ]
    return (
        write_csv(out_dir / "figure2.csv", ["sparsity", "q1", "width"], main_rows),
        write_csv(out_dir / "figure2_depth.csv", ["sparsity", "L", "q1", "width"], depth_rows),
    )


def plot(data: Figure2Data, path: Path) -> Path:
    """Draw the two panels into ``path`` (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ertheory.figure2 import MARKED_SPARSITIES
    from figures._common import layout, save_png

    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(11.5, 4.8))
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
    layout(fig, CAPTION)
    save_png(fig, path, dpi=130)
    plt.close(fig)
    return path


def count(text: str) -> int:
    """argparse type of ``--points``: a whole number, also written as ``1e4`` (the size check comes later)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 1 and value == int(value)):
        raise argparse.ArgumentTypeError(f"--points must be a whole number, got {text!r}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by ``figures/figure2.py`` and ``ertheory figure2``."""
    parser.add_argument("--out", default="figures/out", help="output directory (default figures/out)")
    parser.add_argument("--points", type=count, default=200, help="sparsities on the grid (default 200)")
    parser.add_argument("--max-sparsity", type=float, default=0.995, help="right end of the grid (default 0.995)")
    parser.add_argument("--delta", type=float, default=0.001, help="failure probability (default 0.001)")
    parser.add_argument("--inputs", type=int, default=784, help="input dimension d of panel (b) (default 784)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden width of the target (default 128)")
    parser.add_argument("--outputs", type=int, default=10, help="output width of the target (default 10)")
    from ertheory.cli_util import add_max_memory

    add_max_memory(parser)


def generate(args: argparse.Namespace) -> dict[str, Any]:
    """Check ``args.out`` and every value, compute, then write the CSVs and the PNG; return a summary.

    Raises ``ValueError`` (nothing written) for a bad output directory, a grid too large for its memory
    estimate, a maximum sparsity of 0 or any other bad value.
    """
    from ertheory.figure2 import compute, marked
    from figures._common import check_out_dir

    out = check_out_dir(args.out)
    data = compute(args.points, args.max_sparsity, args.delta, args.inputs, args.hidden, args.outputs,
                   max_memory=args.max_memory)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, depth_path = write_tables(data, out)
    png_path = plot(data, out / "figure2.png")
    return {
        "png": str(png_path),
        "csv": str(csv_path),
        "depth_csv": str(depth_path),
        "points": int(data.sparsity.size),
        "delta": data.delta,
        "target": [data.n_hidden, data.n_out],
        "marked": marked(data),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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


if __name__ == "__main__":
    sys.exit(main())
