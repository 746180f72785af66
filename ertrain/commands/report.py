"""``ertrain report RUNS_DIR``: finished runs as a table, mean ± 95% CI over seeds, in the paper's layouts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ertheory.cli_util import print_json


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="tabulate finished runs: mean ± 95%% CI over seeds, best per column marked",
        description=(
            "Aggregate the finished runs of RUNS_DIR (every <run_hash>/result.json) with pandas into a table: "
            "mean ± 95%% confidence interval over seeds (Student t), best per column marked. The long-form "
            "results (one row per run) are also written as results.parquet and results.csv."
        ),
    )
    parser.add_argument("runs_dir", metavar="RUNS_DIR", help="runs directory written by `ertrain sweep`/`train`")
    parser.add_argument(
        "--table",
        default=None,
        help="layout: auto, ratios, rewiring, sparse_to_sparse, str, flow, widening "
        "(default: the sweep file's, else auto)",
    )
    parser.add_argument("--format", default="md", choices=("md", "latex", "csv"), help="output format (default md)")
    parser.add_argument("--value", default=None, help="result field in the cells (default test_accuracy)")
    parser.add_argument("--sweep", default=None, help="only the runs of this sweep file (and its table layout)")
    parser.add_argument("--save", default=None, help="directory for results.parquet/.csv (default RUNS_DIR)")
    parser.add_argument("--no-save", action="store_true", help="do not write the long-form files")
    parser.add_argument("--json", action="store_true", help="print one JSON object (cells and per-cell statistics)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ertrain.report import TABLES, load_runs, make_table, render, save_long_form

    if args.table is not None and args.table not in TABLES:
        raise ValueError(f"unknown table {args.table!r}; valid: {', '.join(sorted(TABLES))}")
    table_name = args.table
    hashes = None
    if args.sweep is not None:
        from ertrain.sweep import build_configs, load_sweep

        spec = load_sweep(args.sweep)
        hashes = [c.run_hash() for c in build_configs(spec)]
        if table_name is None and spec.table is not None:
            table_name = spec.table
    layout = TABLES[table_name or "auto"]
    df = load_runs(args.runs_dir, hashes, stages=layout.stages)
    table = make_table(df, layout, args.value)
    saved: list[Path] = []
    if not args.no_save:
        saved = save_long_form(df, args.save or args.runs_dir)
    value = args.value or table.layout.value
    if args.json:
        print_json(
            {
                "table": table.layout.name,
                "value": value,
                "runs": int(len(df)),
                "row_keys": list(table.row_keys),
                "col_keys": list(table.col_keys),
                "cells": table.stats.astype(object).where(table.stats.notna(), None).to_dict(orient="records"),
                "saved": [str(p) for p in saved],
            }
        )
        return 0
    sys.stdout.write(render(table, args.format, value))
    if saved:
        sys.stderr.write(f"long-form results ({len(df)} runs): {', '.join(map(str, saved))}\n")
    return 0
