"""One figure per claim of the reproduction study, from its result files (no training here).

Mean test accuracy over seeds with 95% Student-t bands (lines) or error bars (bars), read through
:func:`studies.reproduction.load` from ``results/reproduction/<variant>/*.json``:

1. accuracy against sparsity for each layerwise ratio (flow-repaired: dashed), one panel per model, the dense
   network as a horizontal line;
2. accuracy against width: ER networks, dense networks of the same width, dense networks with as many non-zero
   weights (plotted at the ER width they match), the dense width-1 target, and Theorem 2.2's factor;
3. sparse-to-sparse methods from the dense and from ER starts (bars);
4. randomised ratios (ER-SNIP, ER-SynFlow, ER-IMP), balanced and pyramidal, and the methods' own masks;
5. IMP from the dense and from an ER start on each non-image task (bars).

Writes ``claim1.png`` ... ``claim5.png`` and ``reproduction_claims.csv`` (every plotted mean and half-width)
into ``--out`` (default ``results/reproduction/<variant>/figures``).

    python figures/reproduction_claims.py --variant quick
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from figures._common import save_png, write_csv  # noqa: E402

Rows = list[list[Any]]


def _series(data: Any, claim: int, x_key: str, fixed: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, mean and half-width of the settings of ``claim`` matching ``fixed``, sorted by ``x_key``."""
    pts = []
    for s in data.table.settings(claim):
        own = dict(s)
        if all(own.get(k) == v for k, v in fixed.items()):
            cell = data.table.get(claim, **own).cell
            pts.append((float(own[x_key]), cell.mean, cell.ci95))
    pts.sort()
    arr = np.array(pts, dtype=float).reshape(-1, 3)
    return arr[:, 0], arr[:, 1], np.nan_to_num(arr[:, 2])


def _band(ax: Any, x: np.ndarray, mean: np.ndarray, ci: np.ndarray, rows: Rows, name: str, **kw: Any) -> None:
    """A line with its 95% band (clipped to [0, 100]); the plotted values go to ``rows``."""
    (line,) = ax.plot(x, mean, marker="o", ms=3, label=name, **kw)
    ax.fill_between(x, np.clip(mean - ci, 0, 100), np.clip(mean + ci, 0, 100), color=line.get_color(), alpha=0.15,
                    lw=0)
    rows += [[name, float(a), float(b), float(c)] for a, b, c in zip(x, mean, ci, strict=True)]


def _sparsity_axis(ax: Any, sparsities: Sequence[float]) -> None:
    """x = -log10(1 - sparsity) (so 0.9, 0.99 are evenly spaced), ticks labelled with the sparsities."""
    ticks = sorted(set(sparsities))
    ax.set_xticks([-math.log10(1.0 - s) for s in ticks], [f"{s:g}" for s in ticks])
    ax.set_xlabel("sparsity")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)


def _lift(x: np.ndarray) -> np.ndarray:
    return np.asarray(-np.log10(1.0 - x))


def _bars(ax: Any, groups: Sequence[str], series: dict[str, list[Any]], rows: Rows) -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, cells) in enumerate(series.items()):
        x = np.arange(len(groups)) + i * width
        means = [c.mean if c is not None and c.n else math.nan for c in cells]
        cis = [float(np.nan_to_num(c.ci95)) if c is not None and c.n else 0.0 for c in cells]
        low = [min(ci, m) if not math.isnan(m) else 0.0 for m, ci in zip(means, cis, strict=True)]
        high = [min(ci, 100.0 - m) if not math.isnan(m) else 0.0 for m, ci in zip(means, cis, strict=True)]
        ax.bar(x, means, width, yerr=[low, high], capsize=3, label=name)
        rows += [[f"{name} | {g}", float(i), m, c] for g, m, c in zip(groups, means, cis, strict=True)]
    ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups, fontsize=7)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)


def claim1(data: Any, rows: Rows) -> Any:
    from studies.reproduction.arms import ratio_grids

    grids = ratio_grids(data.design)
    fig, axes = plt.subplots(1, len(grids), figsize=(5.5 * len(grids), 4.0), squeeze=False)
    for ax, (model, grid) in zip(axes[0], grids.items(), strict=True):
        for ratio in grid.schemes:
            for repair in ("none", data.design.claim(1)["flow_repair"]) if ratio in grid.repaired else ("none",):
                x, m, c = _series(data, 1, "sparsity", {"model": model, "ratio": ratio, "repair": repair})
                style = {"linestyle": "--"} if repair != "none" else {}
                _band(ax, _lift(x), m, c, rows, f"{model} {ratio}" + (" + repair" if repair != "none" else ""),
                      **style)
        dense = data.table.cell(1, model=model, ratio="dense")
        if dense.n:
            ax.axhline(dense.mean, color="k", lw=1, label="dense")
        _sparsity_axis(ax, list(grid.sparsities))
        ax.set_title(f"Claim 1: layerwise ratios ({model})")
        ax.legend(fontsize=6)
    return fig


def claim2(data: Any, rows: Rows) -> Any:
    from studies.reproduction.claims import theory_factor

    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for kind in ("ER", "dense", "dense, equal non-zeros"):
        x, m, c = _series(data, 2, "width", {"kind": kind})
        _band(ax, x, m, c, rows, kind + (" (at the ER width it matches)" if "equal" in kind else ""))
    target = data.table.cell(2, kind="dense", width=1.0)
    if target.n:
        ax.axhline(target.mean, color="k", lw=1, label="dense width 1 (target)")
    q = theory_factor(data.design)["q_hidden"]
    ax.axvline(q, color="0.4", ls=":", label=f"Theorem 2.2: x{q:.1f}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width multiplier")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Claim 2: widening at sparsity {float(data.design.claim(2)['sparsity']):g}")
    ax.legend(fontsize=6)
    return fig


def _grouped(data: Any, claim: int, group_key: str, series_key: str, title: str, rows: Rows) -> Any:
    settings = [dict(s) for s in data.table.settings(claim)]
    groups = sorted({str(s[group_key]) for s in settings})
    names = sorted({str(s[series_key]) for s in settings})
    series = {n: [data.table.get(claim, **{group_key: g, series_key: n}) for g in groups] for n in names}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * max(1, len(names)) / 2), 4.0))
    _bars(ax, groups, {n: [e.cell if e is not None else None for e in es] for n, es in series.items()}, rows)
    ax.set_title(title)
    ax.legend(fontsize=6)
    return fig


def claim3(data: Any, rows: Rows) -> Any:
    return _grouped(data, 3, "method", "start", "Claim 3: sparse-to-sparse from dense and ER starts", rows)


def claim4(data: Any, rows: Rows) -> Any:
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for mask in sorted({dict(s)["mask"] for s in data.table.settings(4)}):
        x, m, c = _series(data, 4, "sparsity", {"mask": mask})
        _band(ax, _lift(x), m, c, rows, mask, **({"linestyle": "--"} if "own" in mask else {}))
    _sparsity_axis(ax, [float(v) for v in data.design.claim(4)["sparsities"]])
    ax.set_title("Claim 4: randomised saliency ratios and own masks")
    ax.legend(fontsize=6)
    return fig


def claim5(data: Any, rows: Rows) -> Any:
    return _grouped(data, 5, "task", "start", "Claim 5: IMP from dense and ER starts, non-image data", rows)


FIGURES: dict[int, Callable[[Any, Rows], Any]] = {1: claim1, 2: claim2, 3: claim3, 4: claim4, 5: claim5}


def write_figures(variant: str, out: Path | None = None, results: Path | None = None, dpi: int = 110) -> list[Path]:
    """Draw every claim's figure of ``variant`` into ``out``; return the files written."""
    from studies import reproduction as study

    data = study.load(variant, results)
    out = out if out is not None else study.RESULTS_DIR / data.design.name / "figures"
    out.mkdir(parents=True, exist_ok=True)
    rows: Rows = []
    written = []
    for k, draw in FIGURES.items():
        fig = draw(data, rows)
        fig.tight_layout()
        written.append(save_png(fig, out / f"claim{k}.png", dpi))
        plt.close(fig)
    written.append(write_csv(out / "reproduction_claims.csv", ["series", "x", "mean", "ci95"], rows))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="quick", help="study variant (configs/reproduction/<variant>.toml)")
    parser.add_argument("--results", default=None, help="folder of result files (default results/reproduction/<v>)")
    parser.add_argument("--out", default=None, help="output folder (default results/reproduction/<v>/figures)")
    args = parser.parse_args(argv)
    try:
        files = write_figures(args.variant, Path(args.out) if args.out else None,
                              Path(args.results) if args.results else None)
    except ValueError as exc:
        print(f"reproduction_claims: error: {exc}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
