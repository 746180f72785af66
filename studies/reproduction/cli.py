"""``ertoolkit-study``: the reproduction study of the paper's five claims: train what is missing, draw, document."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import ertrain
from ertheory.cli_util import OneLineParser, run_cli

EPILOG = """examples:
  ertoolkit-study quick --jobs 2                 # the whole pipeline in minutes (the tests run it)
  ertoolkit-study cpu --dry-run                  # how many runs of the CPU study are still missing
  ertoolkit-study cpu --jobs 2 --threads 1       # the CPU study of docs/study_design.md (resumable)
  ertoolkit-study cpu --no-run                   # figures and docs/reproduction.md from the committed results
"""


def make_parser() -> OneLineParser:
    """The ``ertoolkit-study`` parser (errors: one line on stderr, exit status 2)."""
    parser = OneLineParser(
        prog="ertoolkit-study",
        description=(
            "The reproduction study of the paper's claims, an experiment built on ertrain. Train every arm of a "
            "study design (configs/reproduction/VARIANT.toml) that has no result file yet, write one small result "
            "file per finished run under results/reproduction/VARIANT/ (re-running skips them), then draw one "
            "figure per claim and write docs/reproduction.md from those files only."
        ),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ertoolkit-study {ertrain.__version__}")
    parser.add_argument("--debug", action="store_true", help="print the traceback of internal errors")
    parser.add_argument("variant", metavar="VARIANT", help="quick, cpu or full (or a design file path)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once (default: 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default: 1)")
    parser.add_argument("--claims", type=int, nargs="+", default=None, metavar="N", help="only these claims (1-5)")
    parser.add_argument("--dry-run", action="store_true", help="count the missing runs; train and write nothing")
    parser.add_argument("--no-run", action="store_true", help="train nothing: draw and write from the results")
    parser.add_argument("--results", default=None, help="results folder (default: results/reproduction/VARIANT)")
    parser.add_argument("--runs-dir", default=None, help="run directories with checkpoints (default: not committed "
                        "results/reproduction/runs/VARIANT)")
    parser.add_argument("--doc", default=None, help="document path (default: docs/reproduction.md)")
    parser.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``ertoolkit-study`` (also ``python -m studies.reproduction``)."""
    return run_cli(make_parser, argv)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from studies import reproduction as study

    for name in ("jobs", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)!r}")
    bad = [c for c in args.claims or () if c not in study.ALL_CLAIMS]
    if bad:
        raise ValueError(f"--claims must be among {list(study.ALL_CLAIMS)}, got {bad}")
    results = None if args.results is None else Path(args.results)
    if not args.no_run:
        summary = study.run(args.variant, results=results, runs_dir=None if args.runs_dir is None
                            else Path(args.runs_dir), jobs=args.jobs, threads=args.threads,
                            claims=tuple(args.claims or study.ALL_CLAIMS), dry_run=args.dry_run)
        print(f"{summary.variant}: {summary.arms} arms, {summary.runs} runs, {summary.trained} trained now "
              f"({summary.cpu_s:.0f} CPU-s), {len(summary.pending)} pending; results in {summary.results_dir}")
        if args.dry_run:
            return 0
    from figures.reproduction_claims import write_figures

    figures = write_figures(study.load_design(args.variant).name, results=results)
    path = study.write_document(args.variant, results=results, doc=None if args.doc is None else Path(args.doc))
    print(f"wrote {len(figures)} figures in {figures[0].parent} and {path}" if figures else f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
