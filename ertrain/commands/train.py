"""``ertrain train``: train one configuration into its run directory (resumes; never re-runs a finished run)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

EPILOG = """examples:
  ertrain train --model mlp --dataset digits --density-scheme balanced --sparsity 0.9
  ertrain train --model mlp --dataset fashion-mnist --density-scheme erk --sparsity 0.95 --out runs/
  ertrain train --model vgg16 --dataset cifar10 --protocol paper-code --print-config
  ertrain train --model mlp --dataset digits --method rigl --density-scheme erk --sparsity 0.9 --rigl-update-every 20

Unset hyper-parameters come from the recipe of the model and dataset (--recipe NAME picks another;
--print-config shows what was resolved), then from --protocol.
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    from ertrain.config import TrainConfig

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train one model (dense or ER-sparse) and write its run directory",
        description=(
            "Train one configuration in OUT/<run hash>/ (config.json, metrics.jsonl, checkpoint.pt, result.json). "
            "Re-running the same command resumes from the last good checkpoint; a finished run is not re-run."
        ),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    TrainConfig.add_arguments(parser)
    parser.add_argument("--out", default="runs", help="runs directory (default: runs/)")
    parser.add_argument("--no-resume", action="store_true",
                        help="start over: ignore existing checkpoints and retrain a finished run")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress on stderr: bars on a terminal, one line per epoch otherwise (default); "
                             "--no-progress: silent")
    parser.add_argument("--print-config", action="store_true",
                        help="print the fully resolved configuration as JSON (its fields, run_hash, and sources: "
                             "where each field's value came from) and exit without training")
    parser.add_argument("--json", action="store_true", help="print result.json as one JSON object")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ertheory.jsonio import print_json
    from ertrain.config import resolve_args
    from ertrain.runner import run_config

    resolved = resolve_args(args)
    config = resolved.config
    if args.print_config:
        print_json({**config.to_dict(), "run_hash": resolved.run_hash(), "sources": resolved.sources})
        return 0
    if not str(args.out):
        raise ValueError("--out must name a directory, got an empty path")
    outcome = run_config(config, args.out, resume=not args.no_resume, progress=args.progress)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    if outcome.cached:
        sys.stderr.write(f"already finished: {outcome.run_dir} (use --no-resume to retrain)\n")
    if args.json:
        print_json(outcome.result)
        return 0
    result = outcome.result
    acc = result.get("test_accuracy")
    print(f"run directory: {outcome.run_dir}")
    print(f"test accuracy: {'n/a' if acc is None else f'{acc:.4f}'}  density: {result['density']:.4f}  "
          f"epochs: {result['epochs_done']}")
    return 0
