"""A self-contained HTML summary of a sweep: the report's tables and its figures as embedded PNGs.

``render_html(table, df)`` returns one HTML page (inline CSS, no script, figures as ``data:`` URIs, so
the file can be mailed or attached as it is) holding

1. the result table of :func:`ertrain.report.make_table` (mean ± 95% CI over seeds, best per column
   in bold, † where the realised density misses the requested one by more than 0.5% relative);
2. the density check (requested vs realised overall density per row, :func:`ertrain.report.density_check`);
3. a figure of the table: one line per table row across its columns, with the 95% CI as error bars;
4. a figure of realised vs requested density, one point per run, with the ±0.5% band;
5. the finished runs, one row each (run hash, the fields that vary, seed, value, densities);
6. the runs left out of the table (unfinished, failed, torn, foreign, missing), each with its reason,
   under the account of every folder the report read (:mod:`ertrain.run_accounting`).

``write_html`` writes it atomically.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ertheory.fileio import atomic_write_text
from ertrain.report import (
    DENSITY_COLUMNS,
    DENSITY_TOLERANCE,
    Table,
    accounting_line,
    column_header,
    config_keys,
    density_rows,
    format_label,
    marked_cells,
    table_caption,
    varying_keys,
)
from ertrain.run_accounting import not_finished

#: Most runs listed in the page's run table (a sweep's full list is in results.csv).
MAX_RUN_ROWS = 500

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; background: #fff; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; }
th { background: #e8eef7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: bold; background: #fff6d5; } td.flag { color: #b00; }
caption { caption-side: top; text-align: left; padding: 0.3em 0; color: #444; }
img { max-width: 100%; border: 1px solid #ddd; }
"""


def _figure_png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def table_figure(table: Table, value: str) -> str:
    """The table as a plot (one line per row, columns along x, 95% CI error bars); a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = table.layout.scale if value.endswith("accuracy") else 1.0
    stats = table.stats
    x = np.arange(len(table.col_labels))
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for row in table.row_labels:
        means, errs = [], []
        for col in table.col_labels:
            mask = np.ones(len(stats), dtype=bool)
            for key, val in zip(table.row_keys + table.col_keys, row + col, strict=True):
                mask &= (stats[key].astype(str) == str(val)).to_numpy()
            rec = stats[mask]
            means.append(scale * float(rec["mean"].iloc[0]) if len(rec) else np.nan)
            errs.append(scale * float(rec["ci95"].iloc[0]) if len(rec) and pd.notna(rec["ci95"].iloc[0]) else 0.0)
        ax.errorbar(x, means, yerr=errs, marker="o", capsize=3, label=" / ".join(format_label(v) for v in row))
    ax.set_xticks(x, [column_header(table, c) for c in table.col_labels])
    ax.set_xlabel(" / ".join(table.col_keys))
    ax.set_ylabel(value.replace("_", " ") + (" (%)" if scale == 100.0 else ""))
    ax.grid(alpha=0.3)
    if len(table.row_labels) > 1:
        ax.legend(title=" / ".join(table.row_keys), fontsize="small")
    png = _figure_png(fig)
    plt.close(fig)
    return png


def density_figure(df: pd.DataFrame) -> str | None:
    """Realised vs requested overall density, one point per run, with the tolerance band; None without data."""
    if "realised_density" not in df.columns or "density" not in df.columns:
        return None
    runs = df.drop_duplicates("run_hash") if "run_hash" in df.columns else df
    runs = runs[runs["realised_density"].notna()]
    if runs.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    requested = runs["density"].astype(float).to_numpy()
    realised = runs["realised_density"].astype(float).to_numpy()
    fig, ax = plt.subplots(figsize=(5.0, 4.2))
    lo, hi = min(requested.min(), realised.min()) * 0.8, max(requested.max(), realised.max()) * 1.25
    line = np.geomspace(lo, hi, 50)
    ax.fill_between(line, line * (1 - DENSITY_TOLERANCE), line * (1 + DENSITY_TOLERANCE), color="0.85")
    ax.plot(line, line, color="0.5", lw=1)
    ax.scatter(requested, realised, s=18, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("requested density")
    ax.set_ylabel("realised density")
    ax.set_title(f"one point per run; band: ±{100 * DENSITY_TOLERANCE:g}%", fontsize="small")
    png = _figure_png(fig)
    plt.close(fig)
    return png


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str = "",
                classes: Sequence[Sequence[str]] | None = None, numeric_from: int = 0) -> str:
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
    for i, row in enumerate(rows):
        cells = []
        for j, text in enumerate(row):
            cls = ["num"] if j >= numeric_from else []
            if classes is not None:
                cls += [c for c in classes[i][j].split() if c]
            attr = f' class="{" ".join(cls)}"' if cls else ""
            cells.append(f"<td{attr}>{html.escape(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _run_rows(df: pd.DataFrame, value: str) -> tuple[list[str], list[list[str]]]:
    runs = df.drop_duplicates("run_hash") if "run_hash" in df.columns else df
    keys = [k for k in varying_keys(runs, config_keys(runs)) if k != "sparsity"]
    columns = ["run_hash", *keys, "seed", "density", "realised_density", value]
    columns = [c for c in dict.fromkeys(columns) if c in runs.columns]
    rows = []
    for rec in runs[columns].head(MAX_RUN_ROWS).to_dict(orient="records"):
        rows.append(["" if pd.isna(v) else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in rec.values()])
    return columns, rows


def render_html(table: Table, df: pd.DataFrame, *, title: str, value: str | None = None) -> str:
    """The sweep summary page (see the module docstring) as one HTML string."""
    value = value or table.layout.value
    cells = marked_cells(table)
    body = [f"<h1>{html.escape(title)}</h1>"]
    n_runs = df["run_hash"].nunique() if "run_hash" in df.columns else len(df)
    body.append(f"<p>{n_runs} finished runs; table layout <code>{html.escape(table.layout.name)}</code>.</p>")
    if table.accounts:
        body.append(f'<p class="accounts">Runs: {html.escape(accounting_line(table))}</p>')

    body.append("<h2>Results</h2>")
    rows = [[*map(format_label, r), *c] for r, c in zip(table.row_labels, cells, strict=True)]
    classes = [
        [""] * len(table.row_keys) + [("best" if b and c else "") for c, b in zip(cs, bs, strict=True)]
        for cs, bs in zip(cells, table.best, strict=True)
    ]
    header = [*table.row_keys, *(column_header(table, c) for c in table.col_labels)]
    caption = table_caption(table, value)
    body.append(_html_table(header, rows, caption=caption, classes=classes, numeric_from=len(table.row_keys)))
    body.append(f'<img alt="{html.escape(value)} by {html.escape(" / ".join(table.col_keys))}" '
                f'src="data:image/png;base64,{table_figure(table, value)}">')

    density = density_rows(table)
    if density:
        body.append("<h2>Requested vs realised density</h2>")
        marks = [[""] * (len(r) - 1) + (["flag"] if r[-1] else [""]) for r in density]
        body.append(
            _html_table(
                [*table.density_keys, *DENSITY_COLUMNS],
                density,
                caption=f"realised: mean and range over seeds; † differs by more than {100 * DENSITY_TOLERANCE:g}% "
                "relative",
                classes=marks,
                numeric_from=len(table.density_keys),
            )
        )
        png = density_figure(df)
        if png is not None:
            body.append(f'<img alt="realised vs requested density" src="data:image/png;base64,{png}">')

    columns, run_rows = _run_rows(df, value)
    body.append("<h2>Runs</h2>")
    more = f" (first {MAX_RUN_ROWS} of {n_runs})" if n_runs > MAX_RUN_ROWS else ""
    body.append(_html_table(columns, run_rows, caption=f"one row per finished run{more}", numeric_from=1))
    left_out = not_finished(table.accounts)
    if left_out:
        body.append("<h2>Runs not in the table</h2>")
        body.append(_html_table(["run", "state", "why"], [[a.name, a.state, a.detail] for a in left_out],
                                caption="every folder read that holds no finished run", numeric_from=3))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def check_html_path(path: str | Path) -> Path:
    """``path`` if it names a ``.html`` file in an existing directory; ``ValueError`` otherwise."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--html needs a .html file name, got {str(path)!r}")
    if not path.parent.is_dir():
        raise ValueError(f"directory {str(path.parent)!r} of --html {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"--html {str(path)!r} is a directory")
    return path


def write_html(path: str | Path, table: Table, df: pd.DataFrame, *, title: str, value: str | None = None) -> Path:
    """Write :func:`render_html` to ``path`` atomically; returns the path."""
    path = check_html_path(path)
    atomic_write_text(path, render_html(table, df, title=title, value=value))
    return path


__all__ = ["MAX_RUN_ROWS", "check_html_path", "density_figure", "render_html", "table_figure", "write_html"]
