"""``ertrain export``: a finished run as a standalone model file (torch, torchscript, onnx, safetensors)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="export a finished run as a standalone model file",
        description=(
            "Write the trained sparse network of a finished run with its masks folded into the weights (pruned "
            "entries exactly zero), loadable without ertrain: torch (torch.export .pt2), torchscript, onnx "
            "(onnxruntime) or safetensors (state dict). A sidecar FILE.json holds the run's config, per-layer "
            "densities, test accuracy and the check that the written file reproduces the trained model's outputs."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory (runs_dir/<run_hash>) with result.json")
    parser.add_argument("--format", dest="fmt", required=True, metavar="FORMAT",
                        help="torch, torchscript, onnx or safetensors")
    parser.add_argument("--out", required=True, metavar="FILE", help="output file (the sidecar is FILE.json)")
    parser.add_argument("--packed", action="store_true",
                        help="safetensors only: compact sparse encoding (bitmask or CSR per tensor)")
    parser.add_argument("--check-batch", type=int, default=8,
                        help="batch size of the seeded random inputs of the output check (default: 8)")
    parser.add_argument("--json", action="store_true", help="print the sidecar as one JSON object")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ertheory.jsonio import print_json
    from ertrain.export import export_run, sidecar_path

    sidecar = export_run(args.run_dir, args.fmt, args.out, packed=args.packed, check_batch=args.check_batch)
    if args.json:
        print_json(sidecar)
    else:
        check = sidecar["check"]
        print(f"wrote {args.out} ({sidecar['bytes']} bytes, {args.fmt}) and {sidecar_path(args.out)}; "
              f"density {sidecar['density']}, test accuracy {sidecar['test_accuracy']}; "
              f"check: {check['kind']}, max |diff| {check['max_abs_diff']:.3g}")
    return 0
