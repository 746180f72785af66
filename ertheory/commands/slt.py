"""``ertheory slt``: build a strong lottery ticket in an ER source for a small random target (Theorem 2.5).

Examples::

    ertheory slt --target 2 3 1 --density 0.5 --q 80 --epsilon 0.05 --json
    ertheory slt --target 2 3 1 --density 0.5 --sweep 20 40 80 120 --draws 10
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ertheory.cli_util import add_command, add_max_memory, positive_int, seed_type

#: Example command lines shown in ``--help``.
_EXAMPLES = (
    "ertheory slt --target 2 3 1 --density 0.5 --q 80 --epsilon 0.05 --json",
    "ertheory slt --target 2 3 1 --sparsity 0.5 --sweep 20 40 80 120 --draws 10 --seed 1",
)
_HELP = "construct a strong lottery ticket by subset sums (Theorem 2.5) and verify its sup error"
_DESCRIPTION = (
    "Draw a random two-layer ReLU target (entries U[-1, 1]) and an ER source of depth 3 with U[-1, 1] "
    "weights, pick the sub-mask layer by layer with the exact subset-sum solver, and check the sup error "
    "over the unit ball.  --sweep reports the success rate against the block size q."
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_command(subparsers, "slt", examples=_EXAMPLES, help=_HELP, description=_DESCRIPTION)
    parser.add_argument("--target", type=positive_int, nargs=3, default=[2, 3, 1], metavar=("D", "N1", "N2"),
                        help="target widths d n_T1 n_T2 (default 2 3 1)")
    parser.add_argument("--density", type=float, help="ER density p_1 = p_2 of the source (default 0.5)")
    parser.add_argument("--sparsity", type=float, help="ER sparsity 1 - p")
    parser.add_argument("--density0", type=float, default=1.0, help="density of layer 0 (default 1)")
    parser.add_argument("--q", type=positive_int, default=80,
                        help="block size q_1 (copies per hidden neuron; default 80)")
    parser.add_argument("--q0", type=positive_int, help="block size q_0 of layer 0 (default 2 q)")
    parser.add_argument("--epsilon", type=float, default=0.05, help="sup-error tolerance (default 0.05)")
    parser.add_argument("--delta", type=float, default=0.1, help="delta for the theorem's width (default 0.1)")
    parser.add_argument("--C", type=float, default=1.0, help="the theorem's generic constant (default 1)")
    parser.add_argument("--max-values", type=int, default=16, help="candidates per subset-sum problem (default 16)")
    parser.add_argument("--sweep", type=positive_int, nargs="+", metavar="Q", help="block sizes q to sweep instead")
    parser.add_argument("--draws", type=positive_int, default=10, help="sources per q in --sweep (default 10)")
    parser.add_argument("--seed", type=seed_type, default=0, help="seed, a non-negative integer (default 0)")
    add_max_memory(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ertheory import slt
    from ertheory._validate import check_density_or_sparsity, check_memory
    from ertheory.jsonio import print_json

    if args.density is None and args.sparsity is None:
        args.density = 0.5
    p = check_density_or_sparsity(args.density, args.sparsity)
    if not 1 <= args.max_values <= 40:
        raise ValueError(f"--max-values must be an integer in [1, 40], got {args.max_values}")
    largest = max(args.sweep) if args.sweep else args.q
    q0 = args.q0 if args.q0 is not None and not args.sweep else 2 * largest
    estimate = slt.source_memory(args.target, q0, largest, max_values=args.max_values)
    check_memory(estimate, f"an ER source with block sizes q0={q0}, q1={largest}", args.max_memory)
    rng = np.random.default_rng(args.seed)
    d, n1, n2 = args.target
    target = slt.random_target(d, n1, n2, rng=rng)
    theorem = slt.theorem_widths(target, p, args.delta, min(args.epsilon, 0.999), C=args.C)
    out: dict[str, Any] = {"target_widths": list(target.widths), "density": p, "epsilon": args.epsilon,
                           "theorem_widths": list(theorem), "C": args.C}
    if args.sweep:
        sw = slt.width_sweep(target, p, args.sweep, args.epsilon, draws=args.draws, seed=args.seed,
                             max_values=args.max_values, density0=args.density0, max_memory=args.max_memory)
        out |= {"q": sw.q, "n_S1": sw.widths_1, "success_rate": sw.success_rate[0], "smallest_q": int(sw.smallest_q[0]),
                "level": sw.level, "draws": sw.draws}
        if args.json:
            print_json(out)
        else:
            for q, w, r in zip(sw.q, sw.widths_1, sw.success_rate[0], strict=True):
                print(f"q={q:4d}  n_S1={w:5d}  success {r:.2f}")
            print(f"smallest q with success >= {sw.level:g}: {int(sw.smallest_q[0])}; theorem widths (C={args.C:g}): "
                  f"{theorem}")
        return 0
    source = slt.random_source(target.widths, q0, args.q, (args.density0, p, p), rng, max_memory=args.max_memory)
    res = slt.construct_slt(target, source, args.epsilon, max_values=args.max_values, rng=rng)
    out |= {"success": res.success, "bound": res.bound, "sup_error": res.sup_error, "widths": list(res.widths),
            "q": list(res.q), "problems": res.problems, "kept_weights": res.kept_weights}
    if args.json:
        print_json(out)
    else:
        print(f"success: {res.success}  bound {res.bound.max():.3g}  sampled sup error {res.sup_error:.3g}  "
              f"(epsilon {args.epsilon:g})")
        print(f"source widths {res.widths} (q0={q0}, q1={args.q}); theorem widths (C={args.C:g}) {theorem}")
    return 0
