"""Tables of finished runs: mean ± 95% confidence interval over seeds, in the paper's layouts.

``load_runs`` reads every ``<runs_dir>/<run_hash>/`` that holds a ``result.json`` into one long-form
``pandas.DataFrame`` (one row per run: the config's fields, ``sparsity = 1 - density``, and the result's
scalar fields; a result field whose name is also a config field is prefixed with ``result_``, so the
realised density is ``result_density`` and ``final_sparsity = 1 - result_density``).

``aggregate`` groups runs that differ only in ``seed`` and gives the mean, the sample standard deviation,
``n`` and the half-width of the two-sided 95% Student-t interval of the mean,
``t_{0.975, n-1} * s / sqrt(n)`` (``scipy.stats.t``; undefined for one seed).  Nothing else is averaged:
any varying field that a layout does not place becomes an extra row key.

Every run records the overall density it realised (``result.json``: ``start_density`` for methods
whose density changes during training, else ``density``) beside the requested one (the config's
``density``).  :func:`density_check` compares them per table row and column (seeds pooled); a group
whose realised density differs from the requested one by more than ``DENSITY_TOLERANCE`` (0.5%)
relative, for any seed, is marked with a dagger (†) in the rendered tables.

Nothing is left out unsaid: every cell states its number of runs ``n`` (``n=2 of 3`` when a sweep file
says how many there should be), and :func:`build_report` accounts for every folder it was pointed at
(:mod:`ertrain.run_accounting`): the runs that are unfinished, failed, torn, foreign or missing are named
in one summary line under every rendered table (and in the HTML report and the long-form CSV).

``TABLES`` maps layout names to :class:`TableLayout` (rows, columns, value); they follow the paper's
tables (DIGEST §10): ``ratios`` (Tables 1, 8-11, 23, 25, 26), ``rewiring`` (Tables 2, 27),
``sparse_to_sparse`` (Tables 4, 5, 15, 17, 18, 20, 22, 24, 28-32), ``str`` (Tables 3, 13, 14, 16),
``flow`` (Figure 3), ``widening``, and
``auto`` (sparsity across, every other varying field down).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ertheory.fileio import named_os_error
from ertrain.config import TrainConfig
from ertrain.registry import Registry
from ertrain.run_accounting import RunAccount, account_runs, not_finished, summary_line
from ertrain.rundir import RunDir
from ertrain.typecheck import check_types

#: Config fields that never distinguish results (execution-only) and the seed, which is averaged over.
IGNORED_KEYS: frozenset[str] = frozenset({"seed", "run_hash", *TrainConfig.EXECUTION_FIELDS})
#: Keys every table shows as a row key when the runs record them (how the paper's settings were read).
SHOWN_KEYS: tuple[str, ...] = ("protocol",)

#: Formats ``render`` writes.
FORMATS: tuple[str, ...] = ("md", "latex", "csv")

#: Relative difference |realised - requested| / requested above which a run's density is marked.
DENSITY_TOLERANCE = 0.005
#: The mark of a table cell or density row whose realised density misses the requested one.
DENSITY_MARK = "†"


@dataclass(frozen=True)
class TableLayout:
    """Which long-form columns go down (``rows``) and across (``columns``), and which value fills the cells."""

    name: str
    title: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    value: str = "test_accuracy"
    scale: float = 100.0  # accuracy fractions are shown as percentages
    higher_is_better: bool = True
    digits: int = 2
    reproduces: str = ""
    stages: bool = False  # one row per stage of a multi-stage run (IMP cycles), see ``stage_rows``


#: Layouts by name (a :class:`ertrain.registry.Registry`; duplicates raise); add one with :func:`register_table`.
TABLES: Registry[TableLayout] = Registry("report_tables", builtins=("ertrain.report",), label="table layout")


def register_table(layout: TableLayout) -> TableLayout:
    TABLES.register(layout.name, layout, help=layout.title)
    return layout


#: The paper's layouts (rows down, columns across), registered below.
_PAPER_TABLES: tuple[TableLayout, ...] = (
    TableLayout("auto", "Test accuracy (%) by sparsity", rows=(), columns=("sparsity",), reproduces="any sweep"),
    TableLayout("ratios", "ER networks: test accuracy (%) per layer-wise ratio and sparsity",
                rows=("method", "density_scheme", "flow_repair"), columns=("sparsity",),
                reproduces="Tables 1, 8, 9, 10, 11, 23, 25, 26"),
    TableLayout("rewiring", "Fixed ER mask vs DST rewiring: test accuracy (%)",
                rows=("density_scheme",), columns=("method", "sparsity"), reproduces="Tables 2, 27"),
    TableLayout("sparse_to_sparse",
                "Sparse-to-sparse training from ER starts: test accuracy (%) by initial and final sparsity",
                rows=("method", "density_scheme", "sparsity"), columns=("final_sparsity",),
                reproduces="Tables 4, 5, 12, 15, 17, 18, 19, 20, 21, 22, 24, 28, 29, 30, 31, 32", stages=True),
    TableLayout("str", "STR from dense and ER starts: test accuracy (%) by initial sparsity and weight decay",
                rows=("method", "density_scheme", "sparsity"), columns=("weight_decay",),
                reproduces="Tables 3, 13, 14, 16"),
    TableLayout("flow", "Flow repair: test accuracy (%) with and without repair",
                rows=("density_scheme", "flow_repair"), columns=("sparsity",), reproduces="Figure 3"),
    TableLayout("widening", "Wider ER networks at fixed sparsity: test accuracy (%) by width multiplier",
                rows=("density_scheme", "width"), columns=("sparsity",),
                reproduces="the 1/log(1/sparsity) width factor (Theorems 2.1, 2.2)"),
)
for _layout in _PAPER_TABLES:
    register_table(_layout)


# ---------------------------------------------------------------------------------------------- loading


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def flatten_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Config fields as columns; dict fields become ``<field>.<key>`` columns."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                out[f"{key}.{sub}"] = sub_value if _scalar(sub_value) else json.dumps(sub_value, sort_keys=True)
        elif _scalar(value):
            out[key] = value
        else:
            out[key] = json.dumps(value, sort_keys=True)
    return out


def run_record(run_dir: str | Path) -> dict[str, Any] | None:
    """One long-form row for a finished run directory, or ``None`` if it has no readable result."""
    run_dir = Path(run_dir)
    result = RunDir(Path(run_dir)).read_result()
    # the resolved config the result records (what ran), else config.json (results written before it did)
    config = result.get("config") if result is not None and isinstance(result.get("config"), dict) else None
    config = config if config is not None else RunDir(Path(run_dir)).read_config()
    if result is None or config is None:
        return None
    if isinstance(config.get("config"), dict):
        config = config["config"]
    _check_run_config(config, run_dir / "config.json")
    row = flatten_config(config)
    if "density" in row and row["density"] is not None:
        row["sparsity"] = round(1.0 - float(row["density"]), 6)
    for key, value in result.items():
        if _scalar(value):
            row[f"result_{key}" if key in row else key] = value
    realised = row.get("result_density")
    if isinstance(realised, (int, float)):
        row["final_sparsity"] = round(1.0 - float(realised), 3)
    start = realised_density(result)
    if start is not None:
        row["realised_density"] = start
    row["run_hash"] = result.get("run_hash", run_dir.name)
    return row


def _check_run_config(config: Mapping[str, Any], path: Path) -> None:
    """A run's config names a model and a dataset and holds TrainConfig fields of their types only, else
    ``ValueError`` naming the file (a foreign folder is never tabulated as a run)."""
    what = f"{path}: not the config of a run"
    known = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(config) - known)
    if unknown or not {"model", "dataset"} <= set(config):
        raise ValueError(f"{what}: needs model and dataset and TrainConfig fields only; unknown {unknown}")
    check_types(TrainConfig, config, what)


def realised_density(result: Mapping[str, Any]) -> float | None:
    """The overall density a run realised for its requested one: ``start_density`` if the method
    records one (its density changes while training), else ``density``; ``None`` if neither."""
    for key in ("start_density", "density"):
        value = result.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def stage_rows(row: Mapping[str, Any], result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per stage of a multi-stage run, or ``[row]``.

    A stage list is the first list field of ``result`` whose entries are objects holding ``density``
    and ``test_accuracy`` (IMP's ``cycles``, edge-popup's ``levels``): each entry gives a row with
    ``stage`` (its index), its realised density in ``result_density``, and the entry's scalar fields
    in place of the run's.  Its ``final_sparsity`` is nominal: the stage's density relative to the
    run's realised start (``start_density``, else the first stage's) times the requested start
    density, so that seeds whose random ER starts differ by a few weights share a column.
    """
    for value in result.values():
        if (
            isinstance(value, list)
            and value
            and all(isinstance(v, dict) and "density" in v and "test_accuracy" in v for v in value)
        ):
            start = float(result.get("start_density") or value[0]["density"])
            requested = float(row.get("density", start) or start)
            rows = []
            for index, stage in enumerate(value):
                new = dict(row)
                new.update({k: v for k, v in stage.items() if _scalar(v) and k != "density"})
                new["result_density"] = stage["density"]
                new["final_sparsity"] = round(1.0 - requested * float(stage["density"]) / start, 3)
                new["stage"] = index
                rows.append(new)
            return rows
    return [dict(row)]


def load_runs(
    runs_dir: str | Path, run_hashes: Sequence[str] | None = None, *, stages: bool = False
) -> pd.DataFrame:
    """Long-form table of every finished run under ``runs_dir`` (optionally only ``run_hashes``).

    With ``stages=True`` a multi-stage run (IMP) gives one row per stage (see :func:`stage_rows`).
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise ValueError(f"runs directory {str(runs_dir)!r} does not exist")
    wanted = None if run_hashes is None else set(run_hashes)
    rows = []
    for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if wanted is not None and run_dir.name not in wanted:
            continue
        row = run_record(run_dir)
        if row is None:
            continue
        if stages:
            rows.extend(stage_rows(row, RunDir(Path(run_dir)).read_result() or {}))
        else:
            rows.append(row)
    return pd.DataFrame(rows)


def save_long_form(df: pd.DataFrame, out_dir: str | Path, stem: str = "results") -> list[Path]:
    """Write ``df`` as ``<stem>.parquet`` and ``<stem>.csv`` in ``out_dir`` (each atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in (".parquet", ".csv"):
        final = out_dir / f"{stem}{suffix}"
        tmp = out_dir / f".{stem}.{os.getpid()}.tmp{suffix}"
        frame = df.copy()
        try:
            if suffix == ".parquet":  # parquet needs one type per column: mixed object columns become text
                for col in [c for c in frame.columns if frame[c].dtype.kind == "O"]:
                    frame[col] = frame[col].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v))
                frame.to_parquet(tmp, index=False)
            else:
                frame.to_csv(tmp, index=False)
            os.replace(tmp, final)
        except OSError as exc:  # a full disk: no partial file stays, the error names the file
            tmp.unlink(missing_ok=True)
            raise named_os_error(exc, final) from exc
        paths.append(final)
    return paths


# ---------------------------------------------------------------------------------------------- statistics


def ci95_halfwidth(values: Sequence[float] | np.ndarray) -> float:
    """Half-width of the two-sided 95% Student-t confidence interval of the mean (NaN for fewer than 2)."""
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n < 2:
        return math.nan
    return float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))


def varying_keys(df: pd.DataFrame, candidates: Sequence[str]) -> list[str]:
    """The ``candidates`` present in ``df`` whose values are not all equal."""
    out = []
    for key in candidates:
        if key in df.columns and df[key].astype(str).nunique(dropna=False) > 1:
            out.append(key)
    return out


def config_keys(df: pd.DataFrame) -> list[str]:
    """Columns that describe a run's hyper-parameters (everything but results, seed and execution fields)."""
    names = {f for f in TrainConfig.__dataclass_fields__}
    keys = [
        c
        for c in df.columns
        if (c in names or c.split(".", 1)[0] in names) and c not in IGNORED_KEYS and c != "density"
    ]
    if "sparsity" in df.columns:
        keys.append("sparsity")
    return keys


def _none_label(value: Any) -> Any:
    """``None`` and NaN (a field a run does not set, e.g. no flow repair) shown as ``"none"``."""
    return "none" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def aggregate(df: pd.DataFrame, by: Sequence[str], value: str = "test_accuracy") -> pd.DataFrame:
    """Mean, std, n and 95% CI half-width of ``value`` for each combination of ``by`` (seeds pooled)."""
    if value not in df.columns:
        raise ValueError(f"no column {value!r} in the results; columns: {', '.join(map(str, df.columns))}")
    keyed = df.copy()
    for key in by:
        if keyed[key].dtype.kind == "O":
            keyed[key] = keyed[key].map(_none_label)
    numbers = pd.to_numeric(keyed[value].map(lambda v: None if isinstance(v, bool) else v), errors="coerce")
    wrong = keyed[numbers.isna() & keyed[value].notna()]
    if not wrong.empty:
        run = wrong["run_hash"].iloc[0] if "run_hash" in wrong.columns else wrong.index[0]
        raise ValueError(f"run {run}: {value} is {wrong[value].iloc[0]!r}, not a number (a foreign or corrupt "
                         "result.json: move that folder out of the runs directory)")
    keyed[value] = numbers
    grouped = keyed.groupby(list(by), dropna=False, sort=True)[value]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    out["ci95"] = grouped.agg(ci95_halfwidth).to_numpy()
    return out


def density_check(df: pd.DataFrame, by: Sequence[str], tolerance: float = DENSITY_TOLERANCE) -> pd.DataFrame:
    """Requested vs realised overall density for each combination of ``by`` (one row per run; seeds pooled).

    Columns: ``requested`` (the config's density), ``realised`` (mean over runs), ``realised_min``,
    ``realised_max``, ``rel_diff`` (the largest |realised - requested| / requested over the runs), ``n``
    and ``flagged`` (``rel_diff > tolerance``).  Runs without a realised density count as not flagged.
    """
    if "density" not in df.columns:
        raise ValueError("no requested density in the results (no 'density' column)")
    runs = df.drop_duplicates("run_hash") if "run_hash" in df.columns else df
    keyed = runs.copy()
    if "realised_density" not in keyed.columns:
        keyed["realised_density"] = np.nan
    for key in by:
        if keyed[key].dtype.kind == "O":
            keyed[key] = keyed[key].map(_none_label)
    requested = keyed["density"].astype(float)
    realised = keyed["realised_density"].astype(float)
    keyed["_rel_diff"] = (realised - requested).abs() / requested
    grouped = keyed.groupby(list(by), dropna=False, sort=True)
    out = grouped.agg(
        requested=("density", "first"),
        requested_max=("density", "max"),
        requested_min=("density", "min"),
        realised=("realised_density", "mean"),
        realised_min=("realised_density", "min"),
        realised_max=("realised_density", "max"),
        rel_diff=("_rel_diff", "max"),
        n=("realised_density", "count"),
    ).reset_index()
    if (out["requested_max"] != out["requested_min"]).any():
        raise ValueError(f"runs with different requested densities share a row of {list(by)}; add 'sparsity'")
    out = out.drop(columns=["requested_max", "requested_min"])
    out["flagged"] = out["rel_diff"].fillna(0.0) > tolerance
    return out


def _density_keys(df: pd.DataFrame, row_keys: Sequence[str], col_keys: Sequence[str]) -> list[str]:
    """The table's keys that describe a run rather than a stage of it, plus ``sparsity`` (the request)."""
    keys = [k for k in (*row_keys, *col_keys) if k not in ("final_sparsity", "stage")]
    if "sparsity" in df.columns and "sparsity" not in keys:
        keys.append("sparsity")
    return keys


# ---------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Table:
    """A rendered-ready table: cell text, which cells are best, and how it was made."""

    layout: TableLayout
    row_keys: tuple[str, ...]
    col_keys: tuple[str, ...]
    row_labels: tuple[tuple[Any, ...], ...]
    col_labels: tuple[tuple[Any, ...], ...]
    cells: tuple[tuple[str, ...], ...]
    best: tuple[tuple[bool, ...], ...]
    n_range: tuple[int, int]
    stats: pd.DataFrame
    density: pd.DataFrame | None = None  # :func:`density_check` by ``density_keys``
    density_keys: tuple[str, ...] = ()
    counts: tuple[tuple[int, ...], ...] = ()  # runs (or stages) in each cell
    expected: tuple[tuple[int | None, ...], ...] = ()  # runs a sweep file plans for each cell (None: unknown)
    accounts: tuple[RunAccount, ...] = ()  # every folder the report was pointed at (see ertrain.run_accounting)

    def density_flagged(self, row: tuple[Any, ...], col: tuple[Any, ...]) -> bool:
        """Whether the runs of one cell realised a density off the requested one (see :func:`density_check`)."""
        if self.density is None or self.density.empty:
            return False
        where = dict(zip(self.row_keys + self.col_keys, row + col, strict=True))
        mask = np.ones(len(self.density), dtype=bool)
        for key in self.density_keys:
            if key in where:
                mask &= (self.density[key].astype(str) == str(where[key])).to_numpy()
        return bool(self.density.loc[mask, "flagged"].any())


def format_label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, str(value))


def _label_key(label: tuple[Any, ...]) -> tuple[tuple[int, Any], ...]:
    return tuple(_sort_key(v) for v in label)


def _determined(df: pd.DataFrame, keys: Sequence[str], key: str) -> bool:
    """Whether ``key`` takes one value within every group of ``keys`` (e.g. a method's options, given the method)."""
    if not keys:
        return False
    text = df[list(keys) + [key]].astype(str)
    return bool((text.groupby(list(keys))[key].nunique() <= 1).all())


def _table_keys(df: pd.DataFrame, layout: TableLayout) -> tuple[list[str], list[str]]:
    """The row and column keys of ``layout`` in ``df``: a varying field the layout does not place becomes a
    row key if it tells runs apart, and :data:`SHOWN_KEYS` (the protocol) are always shown."""
    varying = varying_keys(df, config_keys(df))
    col_keys = [k for k in layout.columns if k in df.columns]
    row_keys = [k for k in layout.rows if k in varying and k not in col_keys]
    for key in varying:
        if key not in row_keys and key not in col_keys and not _determined(df, row_keys + col_keys, key):
            row_keys.append(key)
    if not row_keys:
        row_keys = [k for k in layout.rows if k in df.columns][:1] or ["model"]
    row_keys += [k for k in SHOWN_KEYS if k in df.columns and k not in row_keys and k not in col_keys]
    return row_keys, col_keys


def check_pooling(df: pd.DataFrame, keys: Sequence[str]) -> None:
    """Refuse to pool, in one cell of ``keys``, runs whose resolved configs differ in any other field (the seed
    and execution-only fields aside): ``ValueError`` naming the field, its values and the cell."""
    if df.empty or not keys:
        return
    fields = [k for k in config_keys(df) if k not in keys]
    text = df[list(keys) + fields].astype(str)
    for name in fields:
        counts = text.groupby(list(keys), sort=True)[name].nunique(dropna=False)
        if (counts > 1).any():
            cell = counts[counts > 1].index[0]
            label = cell if isinstance(cell, tuple) else (cell,)
            where = ", ".join(f"{k}={v}" for k, v in zip(keys, label, strict=True))
            values = sorted(set(text.loc[(text[list(keys)] == list(label)).all(axis=1), name]))
            raise ValueError(f"runs with different {name} ({', '.join(values)}) would share the cell {where}; "
                             "report them separately (another runs directory, or --sweep FILE)")


def _best_means(
    lookup: Mapping[tuple[Any, Any], Any], row_labels: Sequence[Any], col_labels: Sequence[Any], sign: float
) -> dict[Any, float]:
    """The best mean of each column (largest for ``sign = 1``, smallest for ``-1``; NaN for an empty column)."""
    best_mean = {}
    for col in col_labels:
        means = [lookup[(row, col)][-3] for row in row_labels if (row, col) in lookup]
        means = [m for m in means if not math.isnan(m)]
        best_mean[col] = sign * max(sign * m for m in means) if means else math.nan
    return best_mean


def _cell(rec: Any, best_mean: float, scale: float, digits: int) -> tuple[str, bool]:
    """A cell's text (mean, and ± the interval for more than one seed) and whether it holds the best mean."""
    if rec is None:
        return "", False
    mean, ci, n = rec[-3], rec[-2], rec[-1]
    text = f"{scale * mean:.{digits}f}"
    if n > 1 and not math.isnan(ci):
        text += f" ± {scale * ci:.{digits}f}"
    return text, bool(not math.isnan(mean) and abs(mean - best_mean) <= 1e-12)


def make_table(df: pd.DataFrame, layout: TableLayout | str = "auto", value: str | None = None) -> Table:
    """Pivot the long-form ``df`` into ``layout`` with mean ± 95% CI cells and the best cell per column."""
    if isinstance(layout, str):
        if layout not in TABLES:
            raise ValueError(f"unknown table {layout!r}; valid: {', '.join(sorted(TABLES))}")
        layout = TABLES[layout]
    if df.empty:
        raise ValueError("no finished runs (no run directory with a result.json)")
    value = value or layout.value
    row_keys, col_keys = _table_keys(df, layout)
    check_pooling(df, row_keys + col_keys)
    agg = aggregate(df, row_keys + col_keys, value)
    scale, digits = (layout.scale, layout.digits) if value.endswith("accuracy") else (1.0, 3)
    row_labels = sorted({tuple(r) for r in agg[row_keys].itertuples(index=False)}, key=_label_key)
    col_labels = sorted({tuple(r) for r in agg[col_keys].itertuples(index=False)}, key=_label_key)
    lookup = {
        (tuple(r[: len(row_keys)]), tuple(r[len(row_keys) : len(row_keys) + len(col_keys)])): r
        for r in agg[row_keys + col_keys + ["mean", "ci95", "n"]].itertuples(index=False)
    }
    best_mean = _best_means(lookup, row_labels, col_labels, 1.0 if layout.higher_is_better else -1.0)
    shown = [[_cell(lookup.get((row, col)), best_mean[col], scale, digits) for col in col_labels] for row in row_labels]
    counts = tuple(tuple(int(lookup[(r, c)][-1]) if (r, c) in lookup else 0 for c in col_labels) for r in row_labels)
    n = agg["n"].to_numpy()
    density_keys = _density_keys(df, row_keys, col_keys)
    density = density_check(df, density_keys) if "density" in df.columns and density_keys else None
    return Table(
        layout=layout,
        row_keys=tuple(row_keys),
        col_keys=tuple(col_keys),
        row_labels=tuple(row_labels),
        col_labels=tuple(col_labels),
        cells=tuple(tuple(text for text, _ in row) for row in shown),
        best=tuple(tuple(is_best for _, is_best in row) for row in shown),
        n_range=(int(n.min()), int(n.max())),
        stats=agg,
        density=density,
        density_keys=tuple(density_keys),
        counts=counts,
    )


def table_caption(table: Table, value: str) -> str:
    lo, hi = table.n_range
    seeds = f"n = {lo}" if lo == hi else f"n = {lo}-{hi}"
    what = table.layout.title if value == table.layout.value else f"{value} by {', '.join(table.col_keys)}"
    return f"{what}; mean ± 95% CI over seeds (Student t, {seeds}); best per column marked"


def column_header(table: Table, col: tuple[Any, ...]) -> str:
    return " / ".join(format_label(v) for v in col)


def cell_count(table: Table, i: int, j: int) -> str:
    """``(n=3)``, or ``(n=1 of 4)`` where a sweep file planned the cell's runs; empty for an empty, unplanned cell."""
    n = table.counts[i][j] if table.counts else None
    expected = table.expected[i][j] if table.expected else None
    if n is None or (n == 0 and not expected):
        return ""
    return f"(n={n})" if expected is None else f"(n={n} of {expected})"


def marked_cells(table: Table) -> list[list[str]]:
    """The cell texts with the cell's number of runs (:func:`cell_count`), and :data:`DENSITY_MARK` after each
    non-empty cell whose runs missed their density."""
    out = []
    for i, (row, cells) in enumerate(zip(table.row_labels, table.cells, strict=True)):
        texts = []
        for j, (c, col) in enumerate(zip(cells, table.col_labels, strict=True)):
            text = f"{c} {cell_count(table, i, j)}".strip()
            texts.append(text + f" {DENSITY_MARK}" if c and table.density_flagged(row, col) else text)
        out.append(texts)
    return out


def accounting_line(table: Table) -> str:
    """The runs summary (:func:`ertrain.run_accounting.summary_line`); empty when the table has no accounts."""
    return summary_line(table.accounts) if table.accounts else ""


#: Column titles of the density check as rendered.
DENSITY_COLUMNS = ("requested", "realised", "realised range", "max rel. diff", "")


def density_rows(table: Table) -> list[list[str]]:
    """The density check as text rows: the group's labels, then :data:`DENSITY_COLUMNS`."""
    if table.density is None:
        return []
    rows = []
    for rec in table.density.to_dict(orient="records"):
        labels = [format_label(rec[k]) for k in table.density_keys]
        if pd.isna(rec["realised"]):
            rows.append([*labels, f"{rec['requested']:.6g}", "n/a", "", "", ""])
            continue
        rows.append(
            [
                *labels,
                f"{rec['requested']:.6g}",
                f"{rec['realised']:.6g}",
                f"{rec['realised_min']:.6g} – {rec['realised_max']:.6g}",
                f"{100 * rec['rel_diff']:.2f}%",
                DENSITY_MARK if rec["flagged"] else "",
            ]
        )
    return rows


def density_caption() -> str:
    return (
        "Requested vs realised overall density (realised: mean and range over seeds; "
        f"{DENSITY_MARK}: differs from the requested density by more than {100 * DENSITY_TOLERANCE:g}% relative)"
    )


def _render_csv(table: Table, value: str) -> str:
    """CSV: one column per row key and per column label; best cells end in `` *``."""
    col_title = " / ".join(table.col_keys)
    header_cols = [column_header(table, c) for c in table.col_labels]
    df = pd.DataFrame(
        [
            [*map(format_label, row), *[c + (" *" if b and c else "") for c, b in zip(cells, best, strict=True)]]
            for row, cells, best in zip(table.row_labels, marked_cells(table), table.best, strict=True)
        ],
        columns=[*table.row_keys, *(f"{col_title}={h}" for h in header_cols)],
    )
    return str(df.to_csv(index=False))


def _render_md(table: Table, value: str) -> str:
    """Markdown: best cells in bold; the density check as a second table."""
    col_title = " / ".join(table.col_keys)
    header_cols = [column_header(table, c) for c in table.col_labels]
    lines = [f"**{table_caption(table, value)}** (columns: {col_title})", ""]
    lines.append("| " + " | ".join([*table.row_keys, *header_cols]) + " |")
    lines.append("|" + "|".join(["---"] * len(table.row_keys) + ["---:"] * len(header_cols)) + "|")
    for row, cells, best in zip(table.row_labels, marked_cells(table), table.best, strict=True):
        shown = [f"**{c}**" if b and c else c for c, b in zip(cells, best, strict=True)]
        lines.append("| " + " | ".join([*map(format_label, row), *shown]) + " |")
    if table.accounts:
        lines += ["", f"Runs: {accounting_line(table)}"]
    density = density_rows(table)
    if density:
        lines += ["", density_caption(), ""]
        lines.append("| " + " | ".join([*table.density_keys, *DENSITY_COLUMNS]) + " |")
        lines.append("|" + "|".join(["---"] * len(table.density_keys) + ["---:"] * 4 + [":-:"]) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in density]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    return text.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")


def _latex_text(text: str) -> str:
    """:func:`_latex_escape` plus the symbols of cells and captions (±, the density mark, en dash)."""
    return _latex_escape(text).replace("±", r"$\pm$").replace(DENSITY_MARK, r"$\dagger$").replace("–", "--")


def _latex_density(table: Table) -> list[str]:
    """The density check as a second booktabs tabular (no lines when there is none)."""
    density = density_rows(table)
    if not density:
        return []
    return [
        r"\par\medskip",
        _latex_text(density_caption()),
        r"\par\smallskip",
        r"\begin{tabular}{" + "l" * len(table.density_keys) + "rrrrc}",
        r"\toprule",
        " & ".join(_latex_text(k) for k in (*table.density_keys, *DENSITY_COLUMNS)) + r" \\",
        r"\midrule",
        *(" & ".join(_latex_text(c) for c in r) + r" \\" for r in density),
        r"\bottomrule",
        r"\end{tabular}",
    ]


def _render_latex(table: Table, value: str) -> str:
    """LaTeX (booktabs): best cells in ``\\textbf``; the density check as a second tabular."""
    esc = _latex_escape
    header_cols = [column_header(table, c) for c in table.col_labels]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + esc(table_caption(table, value)) + "}",
        r"\begin{tabular}{" + "l" * len(table.row_keys) + "r" * len(header_cols) + "}",
        r"\toprule",
        " & ".join([*(esc(k) for k in table.row_keys), *(esc(h) for h in header_cols)]) + r" \\",
        r"\midrule",
    ]
    for row, cells, best in zip(table.row_labels, marked_cells(table), table.best, strict=True):
        shown = [_latex_text(c) for c in cells]
        shown = [r"\textbf{" + t + "}" if b and c else t for t, c, b in zip(shown, cells, best, strict=True)]
        lines.append(" & ".join([*(esc(format_label(v)) for v in row), *shown]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.accounts:
        lines += [r"\par\smallskip", "Runs: " + _latex_text(accounting_line(table))]
    lines += [*_latex_density(table), r"\end{table}"]
    return "\n".join(lines) + "\n"


#: Renderers by format (the keys are :data:`FORMATS`).
_RENDERERS = {"md": _render_md, "latex": _render_latex, "csv": _render_csv}


def render(table: Table, fmt: str = "md", value: str | None = None) -> str:
    """``table`` as Markdown (best in bold), LaTeX (booktabs, best in ``\\textbf``) or CSV (best with ``*``).

    Cells whose runs realised a density off the requested one carry :data:`DENSITY_MARK`; Markdown
    and LaTeX add the density check (:func:`density_rows`) as a second table.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    return _RENDERERS[fmt](table, value or table.layout.value)


# ---------------------------------------------------------------------------------------------- one call


@dataclass(frozen=True)
class Report:
    """What ``ertrain report`` shows: the long-form runs, their table, and a title."""

    runs: pd.DataFrame
    table: Table
    value: str
    title: str

    @property
    def accounts(self) -> tuple[RunAccount, ...]:
        """Every folder the report was pointed at (see :mod:`ertrain.run_accounting`)."""
        return self.table.accounts

    @property
    def left_out(self) -> list[RunAccount]:
        """The runs that are not in the table: unfinished, failed, torn, foreign or missing."""
        return not_finished(self.table.accounts)

    def summary(self) -> str:
        """The one-line account of every run (:func:`ertrain.run_accounting.summary_line`)."""
        return summary_line(self.table.accounts)


def build_report(
    runs_dir: str | Path, *, table: str | None = None, sweep: str | Path | None = None, value: str | None = None
) -> Report:
    """Load the finished runs of ``runs_dir`` (only those of the sweep file ``sweep``, if given) into the
    layout ``table`` (default: the sweep file's ``table``, else ``auto``).

    Every folder it reads is accounted for (``Report.accounts``); with ``sweep`` each cell also states how
    many runs the sweep file plans for it.
    """
    if table is not None and table not in TABLES:
        raise ValueError(f"unknown table {table!r}; valid: {', '.join(sorted(TABLES))}")
    if not Path(runs_dir).is_dir():
        raise ValueError(f"runs directory {str(runs_dir)!r} does not exist")
    hashes = None
    planned: list[dict[str, Any]] | None = None
    title = Path(runs_dir).resolve().name
    if sweep is not None:
        from ertrain.sweep import build_configs, load_sweep

        spec = load_sweep(sweep)
        configs = build_configs(spec)
        hashes = [c.run_hash() for c in configs]
        planned = [_planned_row(json.loads(c.to_json())) for c in configs]
        title = spec.name
        if table is None and spec.table is not None:
            table = spec.table
    layout = TABLES[table or "auto"]
    accounts = tuple(account_runs(runs_dir, hashes))
    df = load_runs(runs_dir, hashes, stages=layout.stages)
    if df.empty:
        raise ValueError(f"no finished runs in {str(runs_dir)!r}: {summary_line(accounts)}")
    made = make_table(df, layout, value)
    expected = _expected_counts(made, planned) if planned is not None else ()
    made = dataclasses.replace(made, accounts=accounts, expected=expected)
    return Report(runs=df, table=made, value=value or layout.value, title=title)


def _planned_row(config: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a planned run (a sweep file's config) will have in the long-form table, as far as its
    config tells them."""
    row = flatten_config(config)
    if row.get("density") is not None:
        row["sparsity"] = round(1.0 - float(row["density"]), 6)
    return row


def _expected_counts(table: Table, planned: Sequence[Mapping[str, Any]]) -> tuple[tuple[int | None, ...], ...]:
    """For each cell, how many planned runs share its labels on the keys their configs tell (a key only the
    results tell, e.g. ``final_sparsity``, matches any value; None where no key is told)."""
    keys = table.row_keys + table.col_keys
    told = [k for k in keys if any(k in row for row in planned)]
    if not told:
        return tuple(tuple(None for _ in table.col_labels) for _ in table.row_labels)
    index = [keys.index(k) for k in told]
    labels = [tuple(format_label(_none_label(row.get(k))) for k in told) for row in planned]
    out = []
    for row_label in table.row_labels:
        line: list[int | None] = []
        for col_label in table.col_labels:
            cell = row_label + col_label
            want = tuple(format_label(_none_label(cell[k])) for k in index)
            line.append(sum(label == want for label in labels))
        out.append(tuple(line))
    return tuple(out)


def accounted_long_form(report: Report) -> pd.DataFrame:
    """The long-form runs with a ``state`` column (``finished``), followed by one row per run left out of the
    table (its folder name as ``run_hash``, its ``state`` and ``state_detail``)."""
    df = report.runs.copy()
    df["state"] = "finished"
    left = [{"run_hash": a.name, "state": a.state, "state_detail": a.detail} for a in report.left_out]
    return pd.concat([df, pd.DataFrame(left)], ignore_index=True) if left else df


def frame_records(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    """A frame as JSON-ready records (NaN as ``None``)."""
    if df is None:
        return []
    records: list[dict[str, Any]] = df.astype(object).where(df.notna(), None).to_dict(orient="records")
    return records
