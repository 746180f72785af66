"""The CPU reproduction study in two panels, from the committed results files (no training here).

Left (claim 1, the paper's Tables 1, 8-11 and Figure 3): test accuracy against sparsity for each layerwise ratio,
flow-repaired masks dashed, the dense network as a horizontal line, 95% CI bands over seeds.
Right (claim 2, Theorems 2.1-2.3): accuracy of uniform ER networks against their width multiplier, one line per
sparsity, with the dense width-1 target as a horizontal line; a dotted vertical line in each line's colour marks
the theory's width factor 1/log(1/sparsity) where it falls inside the plotted range.

Reads ``results/reproduction/<mode>_claim1.csv`` and ``_claim2.csv`` (written by ``scripts/reproduce.py``);
writes ``reproduction_claims.png`` and ``reproduction_claims.csv`` into ``--out``.

    python3 figures/reproduction_claims.py --mode quick --out figures/out
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from figures._common import layout, save_png, write_csv  # noqa: E402

NAME = "reproduction_claims"
ROOT = Path(__file__).resolve().parents[1]


def _band(ax: plt.Axes, x: np.ndarray, mean: np.ndarray, ci: np.ndarray, **kw: object) -> None:
    (line,) = ax.plot(x, mean, marker="o", ms=4, **kw)  # type: ignore[arg-type]
    ci = np.nan_to_num(ci)
    ax.fill_between(x, np.clip(mean - ci, 0, 100), np.clip(mean + ci, 0, 100), color=line.get_color(), alpha=0.15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(ROOT / "results" / "reproduction"), help="results directory")
    parser.add_argument("--mode", default="quick", choices=("quick", "full"), help="which study (default quick)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"), help="output directory")
    args = parser.parse_args(argv)
    results = Path(args.results)
    paths = [results / f"{args.mode}_claim{k}.csv" for k in (1, 2)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"reproduction_claims: error: missing results file(s) {missing}: run scripts/reproduce.py first",
              file=sys.stderr)
        return 2
    c1 = pd.read_csv(paths[0], keep_default_na=False, na_values=[""])
    c2 = pd.read_csv(paths[1], keep_default_na=False, na_values=[""])

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11.0, 4.2))
    dense = c1[c1["density_scheme"] == "dense"]
    sparse = c1[c1["density_scheme"] != "dense"]
    colours: dict[str, str] = {}
    for (scheme, repair), g in sparse.groupby(["density_scheme", "flow_repair"], sort=True):
        g = g.sort_values("sparsity")
        style = {"linestyle": "--"} if repair != "none" else {}
        if scheme in colours:
            style["color"] = colours[scheme]
        label = scheme if repair == "none" else f"{scheme} + flow repair"
        _band(ax1, g["sparsity"].to_numpy(float), g["acc_mean"].to_numpy(float), g["acc_ci95"].to_numpy(float),
              label=label, **style)
        colours.setdefault(scheme, ax1.lines[-1].get_color())
    if not dense.empty:
        ax1.axhline(float(dense["acc_mean"].iloc[0]), color="k", lw=1, label="dense")
    ax1.set_xscale("logit")
    ticks = sorted({float(v) for v in sparse["sparsity"]})
    ax1.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax1.minorticks_off()
    ax1.set_xlabel("sparsity")
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title("Claim 1: layerwise ratios (MLP, Fashion-MNIST)")
    ax1.legend(fontsize=7)

    target = c2[(c2["density_scheme"] == "dense") & (c2["width"].astype(float) == 1.0)]
    er = c2[c2["density_scheme"] != "dense"]
    max_width = float(er["width"].max()) if not er.empty else 1.0
    factors_drawn = False
    for sparsity, g in er.groupby("sparsity", sort=True):
        g = g.sort_values("width")
        _band(ax2, g["width"].to_numpy(float), g["acc_mean"].to_numpy(float), g["acc_ci95"].to_numpy(float),
              label=f"sparsity {sparsity:g}")
        factor = 1.0 / math.log(1.0 / float(sparsity))
        if factor <= max_width:
            ax2.axvline(factor, color=ax2.lines[-1].get_color(), lw=0.8, ls=":")
            factors_drawn = True
    if not target.empty:
        ax2.axhline(float(target["acc_mean"].iloc[0]), color="k", lw=1, label="dense, width 1")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("width multiplier")
    ax2.set_ylabel("test accuracy (%)")
    ax2.set_title("Claim 2: widening uniform ER networks")
    handles, labels = ax2.get_legend_handles_labels()
    if factors_drawn:
        handles.append(Line2D([], [], color="0.3", lw=0.8, ls=":"))
        labels.append("theory's width factor 1/log(1/sparsity)")
    ax2.legend(handles, labels, fontsize=7)
    seeds = int(pd.concat([c1["n"], c2["n"]]).max())
    layout(fig, f"Drawn: mean test accuracy with 95% CI bands over {seeds} seeds of small MLPs on Fashion-MNIST from "
                f"results/reproduction ({args.mode} study); left by layerwise ratio and sparsity, right by width.")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_png(fig, out / f"{NAME}.png", dpi=120)
    plt.close(fig)
    table = pd.concat([c1.assign(claim=1), c2.assign(claim=2)], ignore_index=True)
    rows = ([None if isinstance(v, float) and math.isnan(v) else v for v in row]
            for row in table.itertuples(index=False, name=None))
    write_csv(out / f"{NAME}.csv", list(table.columns), rows)
    print(f"wrote {out / (NAME + '.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
