"""``ertheory simulate``: Monte-Carlo estimates of the proof event (and the tighter one) with exact intervals.

Example: ``ertheory simulate --target 20 8 2 --density 0.3 --q 12 9 1 --trials 100000 --seed 0 [--json]``.
``--sampler counts`` (default) draws only binomial counts; ``--sampler masks`` draws every ER mask.  Before
any sampling the request is sized: at most ``montecarlo.MAX_TRIALS`` trials and ``montecarlo.MAX_DRAWS``
random numbers, and an estimated memory within ``--max-memory`` (default 4 GiB).
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from ertheory.cli_util import add_command, add_max_memory, positive_int, seed_type
from ertheory.commands.exact import add_target_flags, densities, target_widths


def _counts(n_T: list[int], q: list[int], p: Any, args: argparse.Namespace) -> dict[str, Any]:
    from ertheory import montecarlo

    L = len(n_T) - 1
    m_T = [n_T[l] * n_T[l + 1] for l in range(L)]
    montecarlo.check_draws(args.trials, L, "count sampler")
    if L == 2:  # the tight sampler draws a binomial pair per hidden neuron and trial: size it before any work
        montecarlo.check_draws(args.trials, 2.0 * n_T[1], "count sampler (tight)")
        _check_memory(montecarlo.count_tight_bytes(n_T[1]) + 16.0 * n_T[1], "the tight count sampler", args)
    out = {"proof": montecarlo.count_sample_proof(q, m_T, p, args.trials, args.seed, confidence=args.confidence)}
    if L == 2:
        import numpy as np

        ind, outd = np.full(n_T[1], n_T[0], dtype=np.int64), np.full(n_T[1], n_T[2], dtype=np.int64)
        out["tight"] = montecarlo.count_sample_tight(
            q[0], q[1], p[0], p[1], ind, outd, args.trials, args.seed + 1, confidence=args.confidence,
            max_memory=args.max_memory,
        )
    return {k: v.as_dict() for k, v in out.items()}


def _masks(n_T: list[int], q: list[int], p: Any, args: argparse.Namespace) -> dict[str, Any]:
    from ertheory import montecarlo

    shapes = [(n_T[l + 1], n_T[l], 1) for l in range(len(n_T) - 1)]
    montecarlo.check_draws(args.trials, montecarlo.mask_sample_draws(shapes, q), "mask sampler")
    _check_memory(montecarlo.mask_sample_bytes(shapes, q), "the mask sampler", args)
    res = montecarlo.mask_sample(
        montecarlo.dense_supports(n_T), q, p, args.trials, args.seed, confidence=args.confidence,
        max_memory=args.max_memory,
    )
    return res.as_dict()


def _check_memory(estimate: float, what: str, args: argparse.Namespace) -> None:
    from ertheory._validate import check_memory

    check_memory(estimate, f"{what} (target {args.target}, q {args.q})", args.max_memory)


#: Samplers by name: each returns {"proof": estimate, ["tight": estimate]} as dicts.
SAMPLERS: dict[str, Callable[[list[int], list[int], Any, argparse.Namespace], dict[str, Any]]] = {
    "counts": _counts,
    "masks": _masks,
}


#: Example command lines shown in ``--help``.
_EXAMPLES = (
    "ertheory simulate --target 20 8 2 --density 0.3 --q 12 9 1 --trials 100000 --seed 0",
    "ertheory simulate --target 6 4 2 --density 0.5 --q 4 3 1 --trials 2000 --sampler masks --json",
)
_HELP = "Monte-Carlo check of the proofs' event (and the tighter construction's) against the exact value"
_DESCRIPTION = textwrap.fill(
    "Estimate the probability that an ER source with q_l copies per target neuron holds the "
    "event of Theorems 2.1/2.2 (and, from masks or for depth 2, the tighter construction's event), with "
    "Clopper-Pearson intervals, beside the exact probability.  Requests are sized before any work: at most "
    "1e9 trials and 1e11 random draws (binomial counts, or mask entries with --sampler masks) per run, and "
    "an estimated memory within --max-memory.",
    width=100,
)


def add_monte_carlo_flags(parser: argparse.ArgumentParser, samplers: Sequence[str]) -> None:
    """The flags of a Monte-Carlo check: ``--seed``, ``--sampler`` (one of ``samplers``), ``--confidence``,
    ``--max-memory`` and ``--json``."""
    parser.add_argument("--seed", type=seed_type, default=0, help="random seed, a non-negative integer (default 0)")
    parser.add_argument("--sampler", choices=samplers, default="counts", help="counts (fast) or masks")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval confidence (default 0.95)")
    add_max_memory(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_command(subparsers, "simulate", examples=_EXAMPLES, help=_HELP, description=_DESCRIPTION)
    add_target_flags(parser)
    parser.add_argument("--q", type=positive_int, nargs="+", metavar="Q",
                        help="copies q_0 ... q_L (default: the theorem's)")
    parser.add_argument("--delta", type=float, default=0.001, help="delta for the theorem's default q (0.001)")
    parser.add_argument("--trials", type=positive_int, default=10000,
                        help="Monte-Carlo trials (default 10000, at most 1e9)")
    add_monte_carlo_flags(parser, sorted(SAMPLERS))
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ertheory import bounds, exact, montecarlo
    from ertheory._validate import check_open_unit
    from ertheory.jsonio import print_json

    n_T = target_widths(args.target)
    L = len(n_T) - 1
    p = densities(args, L)
    montecarlo.check_trials(args.trials)
    check_open_unit(args.confidence, "--confidence")
    q = list(bounds.theorem_2_2(n_T, p, args.delta).q_int) if args.q is None else args.q
    if len(q) != L + 1 or q[-1] != 1 or min(q) < 1:
        raise ValueError(f"--q needs {L + 1} positive values q_0 ... q_L with q_L = 1, got {q}")
    q = [int(v) for v in q]
    args.q = q
    m_T = [n_T[l] * n_T[l + 1] for l in range(L)]
    est = SAMPLERS[args.sampler](n_T, q, p, args)
    out: dict[str, Any] = {
        "target_widths": n_T,
        "density": p,
        "q": q,
        "sampler": args.sampler,
        "trials": args.trials,
        "seed": args.seed,
        "exact_proof_probability": exact.proof_success_probability(q, m_T, p),
        "mc_proof": est["proof"],
    }
    if L == 2:
        table = exact.DegreeTable.dense(*n_T)
        out["exact_tight_probability"] = np.exp(exact.tight_log_success_from_table(q[0], q[1], p[0], p[1], table)[0])
    if "tight" in est:
        out["mc_tight"] = est["tight"]
    if args.json:
        print_json(out)
        return 0
    print(f"target {n_T}, density {p.tolist()}, q {q}, {args.trials} trials ({args.sampler})")
    for event in ("proof", "tight"):
        if f"mc_{event}" in out:
            e = out[f"mc_{event}"]
            ex = out.get(f"exact_{event}_probability")
            exact_txt = "n/a (depth > 2)" if ex is None else f"{float(ex):.6g}"
            print(f"{event:5s}: MC {e['estimate']:.6g} [{e['ci_low']:.6g}, {e['ci_high']:.6g}]  exact {exact_txt}")
    return 0
