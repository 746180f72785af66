"""``ertrain report RUNS_DIR``: finished runs as a table, mean ± 95% CI over seeds, in the paper's layouts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ertheory.jsonio import print_json


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="tabulate finished runs: mean ± 95%% CI over seeds, best per column marked",
        description=(
            "Aggregate the finished runs of RUNS_DIR (every <run_hash>/result.json) with pandas into a table: "
            "mean ± 95% confidence interval over seeds (Student t), best per column marked, followed by the "
            "requested and realised overall density per row († where they differ by more than 0.5% relative). "
            "Each cell states its number of runs n (n of the planned number with --sweep). Every folder read is "
            "accounted for: runs that are unfinished, failed, torn (unreadable result.json), foreign (not a run "
            "directory) or missing (--sweep) are named in one line on stderr and in the rendered, HTML and CSV "
            "reports; --strict makes any of them an error (exit status 2). "
            "The long-form results (one row per run, with its state) are also written as results.parquet and "
            "results.csv."
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
    parser.add_argument(
        "--html",
        default=None,
        metavar="OUT.html",
        help="also write a self-contained HTML summary (tables, figures as embedded PNGs) to OUT.html",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit status 2, nothing written) if any run is unfinished, failed, torn, foreign or missing",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (cells and per-cell statistics)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ertrain.report import accounted_long_form, build_report, frame_records, render, save_long_form
    from ertrain.report_html import check_html_path, write_html

    if args.html is not None:
        check_html_path(args.html)
    report = build_report(args.runs_dir, table=args.table, sweep=args.sweep, value=args.value)
    table, df = report.table, report.runs
    if args.strict and report.left_out:
        raise ValueError(f"--strict: {report.summary()}")
    saved: list[Path] = [] if args.no_save else save_long_form(accounted_long_form(report), args.save or args.runs_dir)
    html_path = None
    if args.html is not None:
        html_path = write_html(args.html, table, df, title=f"Sweep report: {report.title}", value=report.value)
    if args.json:
        print_json(
            {
                "table": table.layout.name,
                "value": report.value,
                "runs": int(len(df)),
                "accounts": [{"run": a.name, "state": a.state, "detail": a.detail} for a in report.accounts],
                "summary": report.summary(),
                "row_keys": list(table.row_keys),
                "col_keys": list(table.col_keys),
                "cells": frame_records(table.stats),
                "density_check": frame_records(table.density),
                "saved": [str(p) for p in saved],
                "html": None if html_path is None else str(html_path),
            }
        )
        sys.stderr.write(f"runs: {report.summary()}\n")
        return 0
    sys.stdout.write(render(table, args.format, report.value))
    sys.stderr.write(f"runs: {report.summary()}\n")
    if saved:
        sys.stderr.write(f"long-form results ({len(df)} runs): {', '.join(map(str, saved))}\n")
    if html_path is not None:
        sys.stderr.write(f"HTML report: {html_path}\n")
    return 0
