"""Lemma 2.4, measured: the smallest number ``n`` of ER-masked ``U[-1, 1]`` values whose subset sums cover
[-1, 1] to ``epsilon`` with probability ``>= 1 - delta`` (here ``delta = epsilon``), against
``log(1/min(delta, epsilon)) / log(1/(1 - p))`` for several densities ``p``, with the fitted ``C_1`` of eq. (1).

The right panel divides ``n`` by each candidate law: a flat curve means the law has the right ``p``-dependence.
Writes ``subset_sum_scaling.png``, ``subset_sum_scaling.csv`` (one row per (epsilon, p)) and
``subset_sum_scaling_fit.csv`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ertheory.subsetsum import scaling_experiment
from figures._common import layout, save_png, write_csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="figures/out", help="output directory (default figures/out)")
    parser.add_argument("--epsilon", type=float, nargs="+", default=[0.2, 0.1, 0.05, 0.02, 0.01])
    parser.add_argument("--density", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3, 0.5, 0.7])
    parser.add_argument("--draws", type=int, default=300, help="Monte-Carlo draws per epsilon (default 300)")
    parser.add_argument("--boot", type=int, default=100, help="bootstrap resamples for the CI (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    eps = np.asarray(args.epsilon)
    res = scaling_experiment(eps, eps, args.density, draws=args.draws, k_max=48, n_boot=args.boot, seed=args.seed)
    fit = res.fit
    p = res.density
    logm = np.log(1.0 / np.minimum(res.epsilon, res.delta))

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.4))
    colors = plt.cm.viridis(np.linspace(0.0, 0.9, p.size))
    for j, pj in enumerate(p):
        ax.plot(res.x_log[:, j], res.n_required[:, j], "o", color=colors[j], label=f"p = {pj:g}")
    xs = np.linspace(0.0, res.x_log.max() * 1.05, 50)
    ax.plot(xs, fit.c1 * xs, "k-", lw=1.2, label=f"fit: C$_1$ = {fit.c1:.2f} [{fit.ci[0]:.2f}, {fit.ci[1]:.2f}]")
    ax.fill_between(xs, fit.ci[0] * xs, fit.ci[1] * xs, color="k", alpha=0.12)
    ax.set_xlabel(r"$\log(1/\min(\delta,\varepsilon))\ /\ \log(1/(1-p))$")
    ax.set_ylabel(r"required $n$ (coverage w.p. $\geq 1-\delta$)")
    ax.set_title(r"Lemma 2.4: required $n$, $\delta=\varepsilon\in$" + f"[{eps.min():g}, {eps.max():g}]")
    ax.legend(fontsize=8)
    ratio_log = res.n_required / (logm[:, None] / np.log(1.0 / (1.0 - p))[None, :])
    ratio_inv = res.n_required / (logm[:, None] / p[None, :])
    ax2.plot(p, ratio_log.mean(axis=0), "o-", label=r"$n\,\log(1/(1-p))/\log(1/\min)$  (eq. (1))")
    ax2.plot(p, ratio_inv.mean(axis=0), "s-", label=r"$n\,p/\log(1/\min)$  (1/p law)")
    ax2.set_xlabel("density p")
    ax2.set_ylabel("n / law  (mean over epsilon)")
    ax2.set_title(
        f"p-dependence: rel. RMS residual {fit.rel_rmse_log:.2f} (eq. (1)) vs {fit.rel_rmse_inv_p:.2f} (1/p);"
        f"\nfitted n ∝ p^-{fit.alpha:.2f}",
        fontsize=9,
    )
    ax2.set_ylim(bottom=0)
    ax2.legend(fontsize=8)
    layout(fig, f"Drawn: left, the smallest n whose ER-masked uniform values cover [-1, 1] to epsilon w.p. 1 - delta "
                f"({res.draws} draws per point) against eq. (1)'s term, with the fitted C_1; right, n divided by "
                "each candidate law.")
    save_png(fig, out / "subset_sum_scaling.png", dpi=120)
    plt.close(fig)

    rows: list[list[object]] = []
    for r in range(res.epsilon.size):
        for j, pj in enumerate(p):
            rows.append([res.epsilon[r], res.delta[r], pj, int(res.n_required[r, j]), res.x_log[r, j], logm[r] / pj])
    write_csv(out / "subset_sum_scaling.csv", ["epsilon", "delta", "density", "n_required", "x_log", "x_inv_p"], rows)
    write_csv(
        out / "subset_sum_scaling_fit.csv",
        ["model", "constant", "ci_low", "ci_high", "rel_rmse", "draws", "confidence"],
        [
            ["log(1/(1-p))", fit.c1, fit.ci[0], fit.ci[1], fit.rel_rmse_log, res.draws, fit.confidence],
            ["1/p", fit.c_inv_p, fit.ci_inv_p[0], fit.ci_inv_p[1], fit.rel_rmse_inv_p, res.draws, fit.confidence],
            ["exponent alpha", fit.alpha, fit.alpha_ci[0], fit.alpha_ci[1], "", res.draws, fit.confidence],
        ],
    )
    print(f"C_1 = {fit.c1:.3f} [{fit.ci[0]:.3f}, {fit.ci[1]:.3f}] ({fit.confidence:.0%} bootstrap); "
          f"1/p law: {fit.c_inv_p:.3f}; rel. RMS residuals {fit.rel_rmse_log:.3f} vs {fit.rel_rmse_inv_p:.3f}; "
          f"alpha = {fit.alpha:.3f} [{fit.alpha_ci[0]:.3f}, {fit.alpha_ci[1]:.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
