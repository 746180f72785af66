"""``ertheory lower-bound``: Theorem 2.3's bounds beside the exact minimal width (and a Monte-Carlo check).

Example: ``ertheory lower-bound --inputs 100 --density 0.05 --delta 0.01 --trials 100000 --seed 0 --json``.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable
from typing import Any

from ertheory.cli_util import add_command, positive_int
from ertheory.commands.simulate import add_monte_carlo_flags

#: Samplers of Theorem 2.3's event by name.
SAMPLERS: dict[str, Callable[..., Any]] = {}


def _samplers() -> dict[str, Callable[..., Any]]:
    if not SAMPLERS:
        from ertheory import montecarlo

        SAMPLERS.update(counts=montecarlo.count_sample_lower_bound, masks=montecarlo.mask_sample_lower_bound)
    return SAMPLERS


#: Example command lines shown in ``--help``.
_EXAMPLES = (
    "ertheory lower-bound --inputs 100 --density 0.05 --delta 0.01",
    "ertheory lower-bound --inputs 10 --sparsity 0.8 --trials 2000 --sampler masks --seed 1 --json",
)
_HELP = "Theorem 2.3: paper and proof bounds vs the exact minimal hidden width of a 1-hidden-layer ER source"
_DESCRIPTION = textwrap.fill(
    "For a target relu(w^T x + b) with d inputs and a one-hidden-layer ER(p) source: the paper's "
    "bound, the proof's sharper bound, and the exact smallest width at which every input has a path to the "
    "output with probability at least 1 - delta.  The Monte-Carlo check is sized before it starts: at most "
    "1e9 trials and 1e11 random draws, and an estimated memory within --max-memory.",
    width=100,
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_command(subparsers, "lower-bound", examples=_EXAMPLES, help=_HELP, description=_DESCRIPTION)
    parser.add_argument("--inputs", type=positive_int, required=True, metavar="D",
                        help="number of inputs d (at most 2**53)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--density", type=float, help="density p of both layers")
    group.add_argument("--sparsity", type=float, help="sparsity 1 - p")
    parser.add_argument("--delta", type=float, default=0.01, help="failure probability (default 0.01)")
    parser.add_argument("--trials", type=positive_int,
                        help="also estimate P at the exact minimal width by Monte-Carlo (at most 1e9 trials)")
    add_monte_carlo_flags(parser, ("counts", "masks"))
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ertheory import bounds, exact, montecarlo
    from ertheory._validate import MAX_EXACT_INT, check_density_or_sparsity, check_open_unit
    from ertheory.jsonio import print_json

    p = check_density_or_sparsity(args.density, args.sparsity)
    if args.sparsity is not None:
        p = round(p, 12) if round(p, 12) > 0 else p
    if not 1 <= args.inputs <= MAX_EXACT_INT:
        raise ValueError(f"--inputs must be a positive integer at most 2**53 = {MAX_EXACT_INT}, got {args.inputs}")
    check_open_unit(args.delta, "--delta")
    check_open_unit(args.confidence, "--confidence")
    if args.trials is not None:
        montecarlo.check_trials(args.trials)
    lb = bounds.theorem_2_3(args.inputs, p, args.delta)
    n_min = int(exact.lower_bound_min_width(args.inputs, p, args.delta))
    out: dict[str, Any] = {
        "inputs": args.inputs,
        "density": p,
        "delta": args.delta,
        "paper_bound": lb.paper_bound,
        "proof_bound": lb.proof_bound,
        "paper_width": lb.paper_width,
        "proof_width": lb.proof_width,
        "exact_min_width": n_min,
        "exact_success_probability": exact.lower_bound_success_probability(args.inputs, n_min, p),
        "exact_success_probability_below": exact.lower_bound_success_probability(args.inputs, n_min - 1, p),
    }
    if args.trials is not None:
        if args.sampler == "masks":  # sized before the masks exist: n_min x (d + 1) entries per trial
            est = montecarlo.mask_sample_lower_bound(
                args.inputs, n_min, p, args.trials, args.seed, confidence=args.confidence, max_memory=args.max_memory
            )
        else:
            est = _samplers()[args.sampler](args.inputs, n_min, p, args.trials, args.seed, confidence=args.confidence)
        out.update(
            mc_success_probability=est.estimate,
            mc_ci_low=est.ci_low,
            mc_ci_high=est.ci_high,
            mc_trials=est.trials,
            mc_confidence=est.confidence,
            mc_sampler=args.sampler,
        )
    if args.json:
        print_json(out)
        return 0
    print(f"d={args.inputs} p={p} delta={args.delta}")
    print(
        f"paper bound {float(lb.paper_bound):.2f}, proof bound {float(lb.proof_bound):.2f}, exact minimal width "
        f"{n_min} (P = {float(out['exact_success_probability']):.6g})"
    )
    if args.trials is not None:
        print(f"MC at {n_min}: {out['mc_success_probability']:.6g} [{out['mc_ci_low']:.6g}, {out['mc_ci_high']:.6g}]")
    return 0
