"""``ertrain densities``: the layer-wise densities of a scheme for one of the registered models."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "densities",
        help="layer-wise densities of a density scheme for a model",
        description=(
            "Print the per-layer densities p_l that a density scheme gives the masked (conv/linear) layers of a "
            "model, and their parameter-weighted overall density. With --seed, also sample the ER masks (and "
            "repair their flow with --flow-repair) and report realised densities and edges added."
        ),
    )
    parser.add_argument("--model", required=True, help="registered model name (e.g. vgg16, resnet18)")
    parser.add_argument("--density-scheme", default="uniform", help="registered density scheme (default: uniform)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--density", type=float, help="overall density (fraction of weights kept)")
    group.add_argument("--sparsity", type=float, help="overall sparsity (1 - density)")
    parser.add_argument("--num-classes", type=int, default=10, help="number of classes (default: 10)")
    parser.add_argument("--in-channels", type=int, default=3, help="input channels (default: 3)")
    parser.add_argument("--input-size", type=int, default=32, help="input height = width in pixels (default: 32)")
    parser.add_argument("--in-features", type=int, default=None, help="input features of mlp/gcn (default: flat image)")
    parser.add_argument("--width", type=float, default=1.0, help="width multiplier of hidden layers (default: 1)")
    parser.add_argument("--model-options", default="{}", help='model options as JSON, e.g. \'{"stem": "imagenet"}\'')
    parser.add_argument("--scheme-options", default="{}", help='scheme options as JSON, e.g. \'{"form": "text"}\'')
    parser.add_argument("--exclude-first", action="store_true", help="do not mask the first layer")
    parser.add_argument("--exclude-last", action="store_true", help="do not mask the last layer (classifier)")
    parser.add_argument("--seed", type=int, default=None, help="also sample ER masks with this seed")
    parser.add_argument(
        "--flow-repair", choices=("random_add", "rejection"), default=None, help="repair flow of the sampled masks"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
    return parser


def _json_dict(text: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag} must be a JSON object, got {text!r}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ertheory._validate import check_density_or_sparsity
    from ertheory.cli_util import print_json
    from ertrain.density import DENSITY_SCHEMES, layer_densities, layer_sizes
    from ertrain.masks import flow_repair, sample_er_masks
    from ertrain.models import MODELS, build_model, layer_weight, maskable_layers

    density = check_density_or_sparsity(args.density, args.sparsity)
    if args.model not in MODELS:
        raise ValueError(f"unknown model {args.model!r}; valid names: {', '.join(sorted(MODELS))}")
    if args.density_scheme not in DENSITY_SCHEMES:
        raise ValueError(
            f"unknown density scheme {args.density_scheme!r}; valid names: {', '.join(sorted(DENSITY_SCHEMES))}"
        )
    if args.flow_repair is not None and args.seed is None:
        raise ValueError("--flow-repair needs --seed (it repairs sampled masks)")
    model = build_model(
        args.model,
        num_classes=args.num_classes,
        in_channels=args.in_channels,
        input_size=args.input_size,
        width=args.width,
        in_features=args.in_features,
        **_json_dict(args.model_options, "--model-options"),
    )
    named = maskable_layers(model, exclude_first=args.exclude_first, exclude_last=args.exclude_last)
    shapes = [tuple(int(d) for d in layer_weight(m).shape) for _, m in named]
    p = layer_densities(args.density_scheme, shapes, density, **_json_dict(args.scheme_options, "--scheme-options"))
    sizes = layer_sizes(shapes).astype(np.int64)
    layers: list[dict[str, Any]] = [
        {"name": n, "shape": list(s), "params": int(m), "density": float(p_l), "expected_nnz": float(p_l * m)}
        for (n, _), s, m, p_l in zip(named, shapes, sizes, p, strict=True)
    ]
    overall = float(np.dot(sizes, p) / sizes.sum())
    out: dict[str, Any] = {
        "model": args.model,
        "density_scheme": args.density_scheme,
        "requested_density": density,
        "overall_density": overall,
        "density_error": abs(overall - density),
        "params": int(sizes.sum()),
        "layers": layers,
    }
    if args.seed is not None:
        gen = torch.Generator().manual_seed(args.seed)
        masks = sample_er_masks(shapes, p, gen)
        added = [0] * len(masks)
        if args.flow_repair is not None:
            masks, added = flow_repair(masks, args.flow_repair, gen, densities=p)
        nnz = [int(mk.sum()) for mk in masks]
        for layer, k, a in zip(layers, nnz, added, strict=True):
            layer["realised_density"] = k / layer["params"]
            layer["edges_added"] = a
        out.update(
            seed=args.seed,
            flow_repair=args.flow_repair,
            realised_density=sum(nnz) / int(sizes.sum()),
            edges_added=int(sum(added)),
        )
    if args.json:
        print_json(out)
        return 0
    print(
        f"{args.model}  scheme={args.density_scheme}  requested density={density:.6g}  "
        f"overall density={overall:.12g}  ({int(sizes.sum()):,} masked weights)"
    )
    sampled = args.seed is not None
    print(f"{'layer':<32} {'shape':<20} {'params':>11} {'density':>10}" + (" realised  added" if sampled else ""))
    for layer in layers:
        shape = "x".join(map(str, layer["shape"]))
        line = f"{layer['name']:<32} {shape:<20} {layer['params']:>11,} {layer['density']:>10.6f}"
        if sampled:
            line += f" {layer['realised_density']:>8.6f} {layer['edges_added']:>6}"
        print(line)
    if sampled:
        print(f"realised overall density {out['realised_density']:.6f}; edges added: {out['edges_added']}")
    return 0
