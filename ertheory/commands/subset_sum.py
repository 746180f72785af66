"""``ertheory subset-sum``: exact best subset (Lemma 2.4's subset-sum step) and coverage of [-1, 1].

Examples::

    ertheory subset-sum --values 0.5 -0.25 0.125 --target 0.3 --json
    ertheory subset-sum --coverage --values 0.5 -0.25 0.125 --epsilon 0.1 --json
    ertheory subset-sum --random 30 --density 0.5 --seed 1 --target 0.3 0.7
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "subset-sum",
        help="exact best subset sum for targets, or exact coverage of [-1, 1] (Lemma 2.4)",
        description=(
            "Best subset of VALUES for each target (|sum - target| minimal; meet in the middle, n <= 48), or with "
            "--coverage whether every z in [-1, 1] is within EPSILON of a subset sum (exact for any n)."
        ),
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--values", type=float, nargs="+", metavar="X", help="the values x_1 .. x_n")
    src.add_argument("--random", type=int, metavar="N", help="draw N values U[-1, 1] with an ER mask instead")
    parser.add_argument("--density", type=float, help="ER density p of --random (default 1)")
    parser.add_argument("--sparsity", type=float, help="ER sparsity 1 - p of --random")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random (default 0)")
    parser.add_argument("--target", type=float, nargs="+", metavar="Z", help="target value(s) z")
    parser.add_argument("--coverage", action="store_true", help="decide coverage of [-1, 1] instead")
    parser.add_argument("--epsilon", type=float, help="coverage tolerance (with --coverage)")
    parser.add_argument(
        "--max-direct", type=int, default=26, help="compute max_gap by enumeration up to this n (default 26)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ertheory import subsetsum
    from ertheory._validate import check_density_or_sparsity
    from ertheory.cli_util import print_json

    if args.random is not None:
        if args.density is None and args.sparsity is None:
            args.density = 1.0
        p = check_density_or_sparsity(args.density, args.sparsity)
        if args.random < 1:
            raise ValueError(f"--random must be >= 1, got {args.random!r}")
        drawn, present = subsetsum.draw_er_values(args.random, p, np.random.default_rng(args.seed))
        values = drawn[present]
        positions = np.flatnonzero(present)
        if values.size == 0:
            raise ValueError(f"the ER mask kept none of the {args.random} values (density {p!r}); try another --seed")
    else:
        if args.density is not None or args.sparsity is not None:
            raise ValueError("--density/--sparsity only apply to --random")
        values = np.asarray(args.values, dtype=np.float64)
        positions = np.arange(values.size)
    if args.coverage:
        if args.epsilon is None:
            raise ValueError("--coverage needs --epsilon")
        if args.target is not None:
            raise ValueError("give either --target or --coverage, not both")
        cov = subsetsum.coverage(values, args.epsilon, max_direct=args.max_direct)
        out: dict[str, Any] = {
            "covered": cov.covered,
            "max_gap": cov.max_gap,
            "radius": cov.radius,
            "epsilon": cov.epsilon,
            "n": cov.n,
            "uncovered": cov.uncovered,
            "method": "intervals (exact); max_gap by enumeration" if cov.max_gap is not None else "intervals (exact)",
        }
        if args.json:
            print_json(out)
        else:
            gap = "n/a (n > --max-direct)" if cov.max_gap is None else f"{cov.max_gap:.6g}"
            print(f"covered: {cov.covered}  (epsilon {cov.epsilon:g}, n {cov.n}, max_gap {gap})")
        return 0
    if args.target is None:
        raise ValueError("give --target Z (or --coverage --epsilon E)")
    res = subsetsum.best_subset(values, np.asarray(args.target, dtype=np.float64))
    rows = []
    for k, z in enumerate(res.targets):
        idx = positions[res.indices(k)]
        rows.append({"target": float(z), "indices": idx, "sum": float(res.sums[k]), "error": float(res.errors[k])})
    if args.json:
        print_json(rows[0] | {"n": int(values.size)} if len(rows) == 1 else {"n": int(values.size), "results": rows})
    else:
        for r in rows:
            print(f"target {r['target']:g}: indices {np.asarray(r['indices']).tolist()}  sum {r['sum']:.12g}  "
                  f"error {r['error']:.3g}")
    return 0
