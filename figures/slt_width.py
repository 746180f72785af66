"""Theorem 2.5, constructed: success rate of the strong-lottery-ticket construction (subset sums, no training)
against the source width for a few densities, for a fixed random target (2 inputs, 3 hidden ReLUs, 1 output).

Success means the rigorous sup-error bound over the unit ball is at most ``epsilon``.  Dashed lines mark
Theorem 2.5's width ``n_{S,1}`` with ``C = 1`` for each density (at ``p = 1`` it collapses to a few neurons:
the ``1 / log(1/(1 - p))`` factor is not uniform as ``p -> 1``, see Lemma 2.4).  Writes ``slt_width.png`` and
``slt_width.csv`` into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ertheory.slt import random_target, theorem_widths, width_sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="figures/out", help="output directory (default figures/out)")
    parser.add_argument("--density", type=float, nargs="+", default=[1.0, 0.5, 0.3])
    parser.add_argument("--q", type=int, nargs="+", default=[10, 20, 40, 60, 80, 120])
    parser.add_argument("--draws", type=int, default=5, help="sources per (density, q) (default 5)")
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = random_target(2, 3, 1, np.random.default_rng(args.seed))
    sw = width_sweep(target, args.density, args.q, args.epsilon, draws=args.draws, seed=args.seed + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rows: list[list[object]] = []
    for k, pk in enumerate(sw.density):
        line = ax.plot(sw.widths_1, sw.success_rate[k], "o-", label=f"p = {pk:g}")[0]
        th = theorem_widths(target, min(float(pk), 0.999999), args.delta, args.epsilon)
        ax.axvline(th[1], color=line.get_color(), ls="--", lw=0.8)
        for q, w, r in zip(sw.q, sw.widths_1, sw.success_rate[k], strict=True):
            rows.append([pk, int(q), 2 * int(q) * 3, int(w), r, sw.draws, th[0], th[1]])
    ax.set_xlabel(r"source width $n_{S,1} = q\,(n_{T,1}+1)$   ($n_{S,0} = 2q\,(d+1)$)")
    ax.set_ylabel(f"success rate (sup error ≤ {args.epsilon:g}), {sw.draws} draws")
    ax.set_title(
        "Theorem 2.5: SLT by subset sums in an ER source\n(dashed: theorem's $n_{S,1}$ with C = 1)", fontsize=10
    )
    ax.set_ylim(-0.03, 1.03)
    ax.legend()
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=out, suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=120, format="png")
    os.replace(tmp, out / "slt_width.png")
    plt.close(fig)
    fd, tmp = tempfile.mkstemp(dir=out, suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["density", "q1", "n_S0", "n_S1", "success_rate", "draws", "theorem_n_S0", "theorem_n_S1"])
        w.writerows(rows)
    os.replace(tmp, out / "slt_width.csv")
    for pk, qs in zip(sw.density, sw.smallest_q, strict=True):
        print(f"p={pk:g}: smallest q with success >= {sw.level:g}: {qs} (n_S1 = {qs * 4 if qs > 0 else 'n/a'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
