"""Theorem 2.3 tightness: the paper's lower bound, the proof's bound and the exact minimal width.

For a target ``relu(w^T x + b)`` with ``d`` inputs (``d`` in 1, 10, 100, 784) and a one-hidden-layer source whose
two layers are both ER(p), plots against sparsity (0.5 .. 0.99, log-scaled widths) the hidden width
``n_{S,1}`` that

* the paper's Theorem 2.3 states as necessary (``paper_bound``);
* the proof reaches, with paths of probability ``p^2`` (``proof_bound``; it assumes the inputs independent, which
  makes it overshoot the exact width slightly for ``d > 1``: a sufficient width there, not a lower bound);
* is exactly the smallest with which every input reaches the output with probability ``1 - delta``
  (``ertheory.exact.lower_bound_min_width``).

Every curve is a width of the same layer of the same source (Theorem 2.1's construction, whose first layer
is not ER, answers a different question and is not drawn).  At a few sparsities a Monte-Carlo estimate of
the minimal width (count sampler) is drawn with an interval: its ends are the smallest widths whose
Clopper-Pearson upper / lower limit reaches ``1 - delta``.  Writes ``lower_bound_tightness.png`` and ``.csv``.

    python3 figures/lower_bound_tightness.py --out figures/out [--delta 0.01 --trials 20000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ertheory import bounds, exact, montecarlo  # noqa: E402
from figures._common import layout, save_png, write_csv  # noqa: E402

NAME = "lower_bound_tightness"
DS = (1, 10, 100, 784)


def mc_width(d: int, p: float, delta: float, n_min: int, trials: int, seed: int) -> tuple[int, int, int]:
    """Monte-Carlo minimal width and its interval from count-sampler estimates on a grid around ``n_min``."""
    grid = np.unique(np.maximum(1, np.round(n_min * np.linspace(0.75, 1.3, 45)).astype(int)))
    rng = np.random.default_rng(seed)
    est = [montecarlo.count_sample_lower_bound(d, int(n), p, trials, rng, progress=False) for n in grid]
    target = 1.0 - delta

    def first(values: list[float]) -> int:
        ok = np.flatnonzero(np.asarray(values) >= target)
        return int(grid[ok[0]]) if ok.size else int(grid[-1])

    return first([e.estimate for e in est]), first([e.ci_high for e in est]), first([e.ci_low for e in est])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"), help="output directory")
    parser.add_argument("--delta", type=float, default=0.01, help="failure probability (default 0.01)")
    parser.add_argument("--points", type=int, default=100, help="sparsities between 0.5 and 0.99 (default 100)")
    parser.add_argument("--trials", type=int, default=20000, help="Monte-Carlo trials per width (default 20000)")
    parser.add_argument("--mc-sparsities", type=float, nargs="*", default=[0.5, 0.7, 0.9, 0.97, 0.99])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    sparsity = np.linspace(0.5, 0.99, args.points)
    density = 1.0 - sparsity
    d = np.array(DS)[:, None]
    lb = bounds.theorem_2_3(d, density[None, :], args.delta)
    n_exact = exact.lower_bound_min_width(d, density[None, :], args.delta)

    rows: list[list[object]] = []
    for i, k in enumerate(DS):
        for j in range(sparsity.size):
            rows.append(
                [
                    k,
                    sparsity[j],
                    density[j],
                    lb.paper_bound[i, j],
                    lb.proof_bound[i, j],
                    n_exact[i, j],
                    "",
                    "",
                    "",
                ]
            )
    mc: dict[int, list[tuple[float, int, int, int]]] = {k: [] for k in DS}
    for i, k in enumerate(DS):
        for s in args.mc_sparsities:
            p = 1.0 - s
            n_min = int(exact.lower_bound_min_width(k, p, args.delta))
            w, lo, hi = mc_width(k, p, args.delta, n_min, args.trials, args.seed + 1000 * i + int(1000 * s))
            mc[k].append((s, w, lo, hi))
            b = bounds.theorem_2_3(k, p, args.delta)
            rows.append([k, s, p, b.paper_bound, b.proof_bound, n_min, w, lo, hi])
    write_csv(
        out / f"{NAME}.csv",
        [
            "d",
            "sparsity",
            "density",
            "paper_bound",
            "proof_bound",
            "exact_min_width",
            "mc_min_width",
            "mc_width_low",
            "mc_width_high",
        ],
        rows,
    )

    fig, axes = plt.subplots(2, 2, figsize=(9.5, 7.2), sharex=True)
    for ax, i, k in zip(axes.ravel(), range(len(DS)), DS, strict=True):
        ax.plot(sparsity, lb.proof_bound[i], "-.", color="tab:orange", lw=1.8,
                label="proof's bound ($p^2$ paths, inputs taken independent)")
        ax.plot(sparsity, n_exact[i], "-", color="black", lw=1.2, label="exact minimal width")
        ax.plot(sparsity, lb.paper_bound[i], "--", color="tab:blue", lw=1.5, label="paper's bound (Thm 2.3, stated)")
        pts = np.array(mc[k], dtype=float)
        if pts.size:
            ax.errorbar(
                pts[:, 0],
                pts[:, 1],
                yerr=[pts[:, 1] - pts[:, 2], pts[:, 3] - pts[:, 1]],
                fmt="o",
                color="tab:red",
                ms=4,
                capsize=3,
                label="Monte-Carlo (count sampler)",
            )
        ax.set_yscale("log")
        ax.set_title(f"d = {k}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        if i >= 2:
            ax.set_xlabel("sparsity (1 - p)")
        if i % 2 == 0:
            ax.set_ylabel("hidden width $n_{S,1}$")
    axes[0, 0].legend(fontsize=7.5, loc="upper left")
    fig.suptitle(
        f"Theorem 2.3: hidden width of a 1-hidden-layer ER(p) source, $1-\\delta$ = {1 - args.delta:g}", fontsize=11
    )
    layout(fig, "Drawn: hidden widths n_S,1 of a source d -> n_S,1 -> 1 with both layers ER(p) for every input to "
                "reach the output w.p. 1 - delta: stated lower bound, proof's bound, exact minimum, Monte-Carlo.",
           height=0.05)
    save_png(fig, out / f"{NAME}.png", dpi=130)
    plt.close(fig)
    print(f"wrote {out / (NAME + '.png')} and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
