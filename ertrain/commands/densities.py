"""``ertrain densities``: the layer-wise densities of a scheme for one of the registered models."""

from __future__ import annotations

import argparse

from ertheory.cli_flags import json_object
from ertrain.commands._flags import add_protocol_flag, add_scheme_flag

EPILOG = """examples:
  ertrain densities --model vgg16 --density-scheme balanced --sparsity 0.9
  ertrain densities --model vgg16 --density-scheme balanced --sparsity 0.9 --protocol paper-code --json
  ertrain densities --model resnet18 --density-scheme erk --sparsity 0.99 --seed 0 --flow-repair random_add
  ertrain densities --model mlp --density-scheme snip --sparsity 0.9 --dataset digits
  ertrain densities --model torch.nn:TransformerEncoderLayer --model-options '{"d_model": 256, "nhead": 4}' \
      --density-scheme erk --sparsity 0.9 --seed 0
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ertheory.cli_flags import add_density_flags
    from ertrain.models import MODELS, TIED_MODES

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "densities",
        help="layer-wise densities of a density scheme for a model",
        description=(
            "Print the per-parameter densities p_l that a density scheme gives the masked parameters of a model "
            "(a registered one or any module:callable), their fan-in/fan-out and parameter-weighted overall "
            "density, and what stays dense (embeddings, norms, biases, excluded or tied weights). With --seed, "
            "also sample the ER masks as training does (and repair their flow with --flow-repair) and report "
            "the realised densities, over the masked weights and over all parameters, and the weights added."
        ),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help=f"model: {', '.join(MODELS.names())}, or module:callable (any importable factory, "
                        "called with --model-options as keyword arguments)")
    add_scheme_flag(parser, default="uniform")
    add_density_flags(parser)
    add_protocol_flag(parser)
    parser.add_argument("--num-classes", type=int, default=10, help="number of classes (default: 10)")
    parser.add_argument("--in-channels", type=int, default=3, help="input channels (default: 3)")
    parser.add_argument("--input-size", type=int, default=32, help="input height = width in pixels (default: 32)")
    parser.add_argument("--in-features", type=int, default=None, help="input features of mlp/gcn (default: flat image)")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier of hidden layers (default: 1)")
    parser.add_argument("--model-options", type=json_object("--model-options"), default={}, metavar="JSON",
                        help='model options as JSON, e.g. \'{"stem": "imagenet"}\'')
    parser.add_argument("--scheme-options", type=json_object("--scheme-options"), default={}, metavar="JSON",
                        help='scheme options as JSON, e.g. \'{"form": "text"}\'')
    parser.add_argument("--exclude-first", action="store_true", help="do not mask the first layer")
    parser.add_argument("--exclude-last", action="store_true", help="do not mask the last layer (classifier)")
    parser.add_argument("--include", action="append", default=[], metavar="GLOB",
                        help="also mask parameters whose full name matches GLOB (read as (out, in, ...)); repeatable")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="keep parameters whose full name matches GLOB dense; repeatable")
    parser.add_argument("--tied", choices=TIED_MODES, default="dense",
                        help="a weight tied to an embedding: keep it dense (default) or mask it")
    parser.add_argument("--seed", type=int, default=None, help="also sample ER masks with this seed")
    parser.add_argument(
        "--flow-repair", choices=("random_add", "rejection", "paper-code"), default=None,
        help="repair flow of the sampled masks (ertrain.masks.FLOW_REPAIR_MODES)"
    )
    parser.add_argument("--method", default="static", help="training method whose code path the paper-code protocol "
                        "follows (default: static)")
    parser.add_argument("--dataset", default=None, help="data for schemes that score a batch (snip)")
    parser.add_argument("--data-dir", default=None, help="directory of --dataset's files")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ertheory.cli_flags import density_from_args
    from ertheory.jsonio import print_json
    from ertrain.density_table import DensityRequest, density_report, format_report

    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed!r}")
    model_kwargs = {"num_classes": args.num_classes, "in_channels": args.in_channels, "input_size": args.input_size,
                    "in_features": args.in_features}
    out = density_report(DensityRequest(
        model=args.model, density_scheme=args.density_scheme, density=density_from_args(args),
        model_kwargs=model_kwargs, width=args.width, model_options=args.model_options,
        scheme_options=args.scheme_options, exclude_first=args.exclude_first, exclude_last=args.exclude_last,
        seed=args.seed, flow_repair=args.flow_repair, include=tuple(args.include), exclude=tuple(args.exclude),
        tied=args.tied, protocol=args.protocol, method=args.method, dataset=args.dataset,
        data_dir=args.data_dir,
    ))
    if args.json:
        print_json(out)
    else:
        print(format_report(out))
    return 0
