"""Monte-Carlo estimates with Clopper-Pearson intervals against the exact probabilities, across ``q``.

Left: Theorem 2.1's setting for a small dense target ``d - n_1 - n_2`` with ``q_0 = q_1 = q`` copies: the exact
probability of the proofs' event and of the tighter construction's event (``ertheory.exact``), the count
sampler's and the mask sampler's estimates of both, and the success rate of the explicit construction
(``ertheory.construct``, tight mode) on sampled masks.  Right: Theorem 2.3's event (every input reaches the
output of a one-hidden-layer ER(p) source) against the hidden width.  Writes ``mc_vs_exact.png`` and ``.csv``.

    python figures/mc_vs_exact.py --out figures/out [--trials 20000 --mask-trials 400]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ertheory import construct, exact, montecarlo  # noqa: E402
from figures._common import layout, save_png, write_csv  # noqa: E402

NAME = "mc_vs_exact"


def _bar(ax: plt.Axes, x: np.ndarray, est: list[montecarlo.MCEstimate], **kw: object) -> None:
    y = np.array([e.estimate for e in est])
    err = [y - np.array([e.ci_low for e in est]), np.array([e.ci_high for e in est]) - y]
    kw.setdefault("marker", "o")
    ax.errorbar(x, y, yerr=err, ls="none", ms=4, capsize=2.5, **kw)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"), help="output directory")
    parser.add_argument("--target", type=int, nargs=3, default=[10, 8, 2], help="target widths d n_1 n_2")
    parser.add_argument("--density", type=float, default=0.3, help="density of both layers (default 0.3)")
    parser.add_argument("--trials", type=int, default=20000, help="count-sampler trials per point")
    parser.add_argument("--mask-trials", type=int, default=400, help="mask-sampler and construction trials")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    d, n1, n2 = args.target
    p = args.density
    m_T = [d * n1, n1 * n2]
    ind, outd = exact.dense_degrees(d, n1, n2)
    rows: list[list[object]] = []

    q_all = np.arange(1, 41)
    exact_proof = exact.proof_success_probability(np.stack([q_all, q_all, np.ones_like(q_all)], -1), m_T, p)
    exact_tight = np.exp(exact.tight_log_success(q_all, q_all, p, p, ind, outd)[0])
    q_mc = q_all[2::3]
    q_mask = q_all[2::6]
    cnt_p = [montecarlo.count_sample_proof([q, q, 1], m_T, p, args.trials, rng, progress=False) for q in q_mc]
    cnt_t = [montecarlo.count_sample_tight(q, q, p, p, ind, outd, args.trials, rng, progress=False) for q in q_mc]
    masks = [
        montecarlo.mask_sample(
            montecarlo.dense_supports([d, n1, n2]), [q, q, 1], p, args.mask_trials, rng, progress=False
        )
        for q in q_mask
    ]
    w1, w2 = rng.normal(size=(n1, d)), rng.normal(size=(n2, n1))
    b1, b2 = rng.normal(size=n1), rng.normal(size=n2)
    built = []
    for q in q_mask:
        ok = 0
        for _ in range(args.mask_trials):
            ms = construct.sample_source_masks([w1, w2], [q, q, 1], p, rng)
            try:
                construct.construct([w1, w2], [b1, b2], ms, [int(q), int(q), 1], mode="tight")
                ok += 1
            except construct.ConstructionError:
                pass
        built.append(montecarlo.estimate(ok, args.mask_trials))
    for q, ep, et in zip(q_all, exact_proof, exact_tight, strict=True):
        rows.append(["theorem_2_1", "exact", int(q), float(ep), float(et), "", "", "", ""])
    for name, qs, ests_p, ests_t in (
        ("counts", q_mc, cnt_p, cnt_t),
        ("masks", q_mask, [m.proof for m in masks], [m.tight for m in masks]),
    ):
        for q, a, b in zip(qs, ests_p, ests_t, strict=True):
            rows.append(["theorem_2_1", name, int(q), a.estimate, b.estimate, a.ci_low, a.ci_high, b.ci_low, b.ci_high])
    for q, e in zip(q_mask, built, strict=True):
        rows.append(["theorem_2_1", "construction", int(q), "", e.estimate, "", "", e.ci_low, e.ci_high])

    d_lb, p_lb = 10, 0.2
    n_all = np.arange(1, 301)
    exact_lb = exact.lower_bound_success_probability(d_lb, n_all, p_lb)
    n_mc = n_all[9::15]
    cnt_lb = [montecarlo.count_sample_lower_bound(d_lb, int(n), p_lb, args.trials, rng, progress=False) for n in n_mc]
    mask_lb = [
        montecarlo.mask_sample_lower_bound(d_lb, int(n), p_lb, args.mask_trials * 5, rng, progress=False)
        for n in n_mc[::2]
    ]
    for n, e in zip(n_all, exact_lb, strict=True):
        rows.append(["theorem_2_3", "exact", int(n), "", float(e), "", "", "", ""])
    for name, ns, ests in (("counts", n_mc, cnt_lb), ("masks", n_mc[::2], mask_lb)):
        for n, e in zip(ns, ests, strict=True):
            rows.append(["theorem_2_3", name, int(n), "", e.estimate, "", "", e.ci_low, e.ci_high])

    header = ["setting", "source", "q_or_n", "proof_probability", "probability", "proof_ci_low", "proof_ci_high",
              "ci_low", "ci_high"]
    write_csv(out / f"{NAME}.csv", header, rows)

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4))
    ax.plot(q_all, exact_proof, "-", color="tab:blue", label="exact, proofs' event")
    ax.plot(q_all, exact_tight, "-", color="tab:orange", label="exact, tighter construction")
    _bar(ax, q_mc - 0.2, cnt_p, color="tab:blue", mfc="white", label="count sampler")
    _bar(ax, q_mc - 0.2, cnt_t, color="tab:orange", mfc="white")
    _bar(ax, q_mask + 0.2, [m.proof for m in masks], color="tab:blue", marker="s", label="mask sampler")
    _bar(ax, q_mask + 0.2, [m.tight for m in masks], color="tab:orange", marker="s")
    _bar(ax, q_mask + 0.5, built, color="tab:red", marker="^", label="explicit construction (tight)")
    ax.set_xlabel("copies $q_0 = q_1 = q$")
    ax.set_ylabel("probability")
    ax.set_title(f"Thm 2.1: target {d}-{n1}-{n2}, p = {p:g}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower right")
    bx.plot(n_all, exact_lb, "-", color="black", label="exact")
    _bar(bx, n_mc, cnt_lb, color="tab:blue", mfc="white", label="count sampler")
    _bar(bx, n_mc[::2] + 3, mask_lb, color="tab:green", marker="s", label="mask sampler")
    bx.set_xlabel("hidden width n")
    bx.set_ylabel("P(every input has a path)")
    bx.set_title(f"Thm 2.3: d = {d_lb}, p = {p_lb:g}", fontsize=10)
    bx.grid(alpha=0.3)
    bx.legend(fontsize=7.5, loc="lower right")
    fig.suptitle("Monte-Carlo (95% Clopper-Pearson intervals) vs exact probabilities", fontsize=11)
    layout(fig, "Drawn: probability that the proofs' event (left: every target edge finds a connecting copy; right: "
                "every input reaches the output) holds, exact (lines) and estimated by two samplers and by building "
                "the construction (points).")
    save_png(fig, out / f"{NAME}.png", dpi=130)
    plt.close(fig)
    print(f"wrote {out / (NAME + '.png')} and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
