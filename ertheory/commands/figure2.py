"""``ertheory figure2``: regenerate the paper's Figure 2 (Theorem 2.1 width vs sparsity) into ``--out``.

The numbers come from :mod:`ertheory.figure2`; the plot and the files from ``figures/figure2.py`` (the
``figures`` package of this project), which this command calls.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    from ertheory.cli_util import command_parser_kwargs
    from figures.figure2 import add_arguments

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "figure2",
        help="write Figure 2 (width of source layer 1 by Theorem 2.1 vs sparsity) as PNG + CSV",
        description="Figure 2 of the paper: width of source layer 1 by Theorem 2.1 (target 128 hidden, "
        "10 outputs, 1 - delta = 0.999) against sparsity, plus depth L = 2, 3, 4 by Theorem 2.2.",
        **command_parser_kwargs(
            "ertheory figure2 --out figures/out",
            "ertheory figure2 --out /tmp/fig2 --points 400 --max-sparsity 0.999 --delta 0.01 --json",
        ),
    )
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object (paths and marked widths)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ertheory.cli_util import print_json
    from figures.figure2 import generate

    summary = generate(args)
    if args.json:
        print_json(summary)
        return 0
    for s, row in summary["marked"].items():
        print(f"sparsity {s}: q1 = {row['q1']:.4f}, width of source layer 1 = {row['width']}")
    print(f"wrote {summary['png']}, {summary['csv']}, {summary['depth_csv']}")
    return 0
