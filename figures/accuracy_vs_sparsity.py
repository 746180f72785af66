"""Accuracy vs sparsity from any runs directory: one line per scheme/method, 95% CI band over seeds.

Reads the finished runs of ``--runs`` (``ertrain sweep`` output) with ``ertrain.report.load_runs``,
groups them by every varying field except ``seed`` and ``sparsity`` (or by ``--hue``), and plots the
mean test accuracy with its Student-t 95% confidence band (as in the paper's Figure 3).  Writes
``accuracy_vs_sparsity.png`` and ``.csv`` (mean, CI, n per line and sparsity) into ``--out``.

    python3 figures/accuracy_vs_sparsity.py --runs runs/ --out figures/out
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ertrain.report import aggregate, config_keys, load_runs, varying_keys  # noqa: E402
from figures._common import layout, save_png, write_csv  # noqa: E402

NAME = "accuracy_vs_sparsity"

#: Readable names of the fields a plot may show; others are written with spaces for underscores.
FIELD_LABELS: dict[str, str] = {
    "density_scheme": "layerwise density",
    "flow_repair": "flow repair",
    "method": "method",
    "model": "model",
    "dataset": "dataset",
    "width": "width multiplier",
    "test_accuracy": "test accuracy",
    "test_loss": "test loss",
    "density": "realised density",
    "lr": "learning rate",
    "epochs": "epochs",
}


def field_label(name: str) -> str:
    """How a config or result field is named on a plot."""
    return FIELD_LABELS.get(name, name.replace("_", " "))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs", help="runs directory (default runs/)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"), help="output directory")
    parser.add_argument("--hue", nargs="*", default=None, help="fields that name a line (default: all varying)")
    parser.add_argument("--value", default="test_accuracy", help="result field on the y axis")
    parser.add_argument("--title", default=None, help="figure title")
    args = parser.parse_args(argv)

    df = load_runs(args.runs)
    if df.empty:
        raise SystemExit(f"no finished runs under {args.runs}")
    keys = [k for k in config_keys(df) if k != "sparsity"]
    hue = list(args.hue) if args.hue is not None else varying_keys(df, keys)
    stats = aggregate(df, [*hue, "sparsity"], args.value)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / f"{NAME}.csv", list(stats.columns), stats.itertuples(index=False, name=None))

    scale = 100.0 if args.value.endswith("accuracy") else 1.0
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    lo, hi = (0.0, 100.0) if scale == 100.0 else (-np.inf, np.inf)  # an accuracy band stays within [0, 100]
    dense = stats[stats["sparsity"] == 0.0]
    sparse = stats[stats["sparsity"] > 0.0]
    groups = sparse.groupby(hue, sort=True) if hue else [((), sparse)]
    for label, g in groups:
        g = g.sort_values("sparsity")
        density = 1.0 - g["sparsity"].to_numpy(dtype=float)
        mean = scale * g["mean"].to_numpy(dtype=float)
        ci = scale * np.nan_to_num(g["ci95"].to_numpy(dtype=float))
        name = ", ".join(map(str, label if isinstance(label, tuple) else (label,))) or "runs"
        (line,) = ax.plot(density, mean, marker="o", ms=4, label=name)
        ax.fill_between(density, np.clip(mean - ci, lo, hi), np.clip(mean + ci, lo, hi), color=line.get_color(),
                        alpha=0.2, lw=0)
    for _, row in dense.iterrows():  # dense baselines: a dashed line with its band
        m, c = scale * row["mean"], scale * np.nan_to_num(row["ci95"])
        ax.axhline(m, color="k", ls="--", lw=1, label="dense")
        ax.axhspan(max(m - c, lo), min(m + c, hi), color="k", alpha=0.08, lw=0)
    # x = density on a log axis, reversed, labelled by sparsity: 0.9, 0.99, ... spread out as in the paper
    ax.set_xscale("log")
    ax.invert_xaxis()
    ticks = np.unique(1.0 - sparse["sparsity"].to_numpy(dtype=float))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{1 - t:.3g}" for t in ticks], rotation=45)
    ax.minorticks_off()
    ax.set_xlabel("sparsity (1 - density)")
    value = field_label(args.value)
    ax.set_ylabel(f"{value} (%)" if scale == 100.0 else value)
    n_lo, n_hi = int(stats["n"].min()), int(stats["n"].max())
    seeds = f"{n_lo}" if n_lo == n_hi else f"{n_lo}-{n_hi}"
    ax.set_title(args.title or f"{value} vs sparsity (mean ± 95% CI over {seeds} seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=", ".join(field_label(h) for h in hue) if hue else None, title_fontsize=8)
    layout(fig, f"Drawn: mean {value} of the finished runs in {args.runs} against sparsity, one line per "
                f"{', '.join(field_label(h) for h in hue) or 'group'}; bands: 95% Student-t intervals over seeds.",
           height=0.09)
    save_png(fig, out / f"{NAME}.png", dpi=150)
    plt.close(fig)
    print(f"wrote {out / (NAME + '.png')} and .csv ({len(df)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
