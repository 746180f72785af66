"""Theorem 2.5, constructed: success rate of the strong-lottery-ticket construction (subset sums, no training)
against the source width for a few densities, for a fixed random target (2 inputs, 3 hidden ReLUs, 1 output).

Success means the rigorous sup-error bound over the unit ball is at most ``epsilon``; each point is the rate
over ``--draws`` random sources with its 95% Clopper-Pearson interval.  Theorem 2.5 fixes the width only up to
an unspecified constant ``C``: the legend gives, per density, the theorem's width with ``C = 1`` and the ``C``
that the measured width (the smallest grid width whose rate reaches ``--level``) implies.  At ``p = 1`` the
formula's ``1 / log(1 / (1 - p))`` factor collapses (Lemma 2.4 is not uniform as ``p -> 1``), so no ``C`` is
reported there.  Writes ``slt_width.png`` and ``slt_width.csv`` into ``--out``.

    python3 figures/slt_width.py --out figures/out [--draws 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ertheory.montecarlo import estimate
from ertheory.slt import random_target, theorem_widths, width_sweep
from figures._common import layout, save_png, write_csv

#: Densities at or above this are treated as dense (the theorem's width formula degenerates).
DENSE = 0.999999


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="figures/out", help="output directory (default figures/out)")
    parser.add_argument("--density", type=float, nargs="+", default=[1.0, 0.5, 0.3])
    parser.add_argument("--q", type=int, nargs="+", default=[10, 20, 40, 60, 80, 120])
    parser.add_argument("--draws", type=int, default=20, help="sources per (density, q) (default 20)")
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--level", type=float, default=0.9, help="success rate that counts as reached (default 0.9)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    target = random_target(2, 3, 1, np.random.default_rng(args.seed))
    sw = width_sweep(target, args.density, args.q, args.epsilon, draws=args.draws, seed=args.seed + 1,
                     level=args.level, disable=True)
    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    rows: list[list[object]] = []
    for k, pk in enumerate(sw.density):
        th = theorem_widths(target, min(float(pk), DENSE), args.delta, args.epsilon)
        q_hit = int(sw.smallest_q[k])
        width_hit = q_hit * (target.widths[1] + 1) if q_hit > 0 else None
        if pk >= DENSE:
            note = "theorem's width degenerates at p = 1"
        elif width_hit is None:
            note = f"C = 1 gives n_S,1 = {th[1]}; rate {args.level:g} not reached"
        else:
            note = f"C = 1 gives n_S,1 = {th[1]}; measured {width_hit}: C ≈ {width_hit / th[1]:.0f}"
        ests = [estimate(round(r * sw.draws), sw.draws) for r in sw.success_rate[k]]
        y = np.array([e.estimate for e in ests])
        err = [y - np.array([e.ci_low for e in ests]), np.array([e.ci_high for e in ests]) - y]
        ax.errorbar(sw.widths_1, y, yerr=err, marker="o", capsize=3, label=f"p = {pk:g} ({note})")
        for q, w, e in zip(sw.q, sw.widths_1, ests, strict=True):
            rows.append([pk, int(q), 2 * int(q) * 3, int(w), e.estimate, e.ci_low, e.ci_high, sw.draws, th[0], th[1]])
    ax.axhline(args.level, color="0.5", ls=":", lw=1)
    ax.set_xlabel(r"source width $n_{S,1} = q\,(n_{T,1}+1)$   ($n_{S,0} = 2q\,(d+1)$)")
    ax.set_ylabel(f"success rate (sup error ≤ {args.epsilon:g})")
    ax.set_title(f"Theorem 2.5: strong lottery tickets by subset sums in an ER source ({sw.draws} sources per point)",
                 fontsize=10)
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=7.5, loc="lower right")
    layout(fig, f"Drawn: fraction of random ER sources (95% intervals) in which the construction finds a ticket within "
                f"epsilon = {args.epsilon:g} of a fixed 2-3-1 target, against the width; dotted: rate {args.level:g}.",
           height=0.08)
    save_png(fig, out / "slt_width.png", dpi=120)
    plt.close(fig)
    write_csv(
        out / "slt_width.csv",
        ["density", "q1", "n_S0", "n_S1", "success_rate", "ci_low", "ci_high", "draws", "theorem_n_S0",
         "theorem_n_S1"],
        rows,
    )
    for pk, qs in zip(sw.density, sw.smallest_q, strict=True):
        print(f"p={pk:g}: smallest q with success >= {sw.level:g}: {qs} (n_S1 = {qs * 4 if qs > 0 else 'n/a'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
