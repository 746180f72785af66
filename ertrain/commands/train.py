"""``ertrain train``: train one configuration into its run directory (resumes; never re-runs a finished run)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ertheory.cli_util import print_json


def register(subparsers: Any) -> argparse.ArgumentParser:
    from ertrain.config import TrainConfig

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train one model (dense or ER-sparse) and write its run directory",
        description=(
            "Train one configuration in OUT/<run hash>/ (config.json, metrics.jsonl, checkpoint.pt, result.json). "
            "Re-running the same command resumes from the last good checkpoint; a finished run is not re-run. "
            "Optimiser defaults are the paper's CIFAR settings (SGD 0.1, momentum 0.9, wd 5e-4, batch 128, "
            "160 epochs, cosine schedule)."
        ),
    )
    TrainConfig.add_arguments(parser)
    parser.add_argument("--out", default="runs", help="runs directory (default: runs/)")
    parser.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints and start over")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: only on a terminal)")
    parser.add_argument("--json", action="store_true", help="print result.json as one JSON object")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ertrain.config import TrainConfig
    from ertrain.train import run as run_training

    config = TrainConfig.from_args(args)
    result = run_training(config, args.out, resume=not args.no_resume, progress=args.progress)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    if args.json:
        print_json(result)
    else:
        from pathlib import Path

        acc = result.get("test_accuracy")
        acc_text = "n/a" if acc is None else f"{acc:.4f}"
        print(f"run directory: {Path(args.out) / config.run_hash()}")
        print(f"test accuracy: {acc_text}  density: {result['density']:.4f}  epochs: {result['epochs_done']}")
    return 0
