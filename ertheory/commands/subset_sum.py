"""``ertheory subset-sum``: exact best subset (Lemma 2.4's subset-sum step) and coverage of [-1, 1].

Examples::

    ertheory subset-sum --values 0.5 -0.25 0.125 --target 0.3 --json
    ertheory subset-sum --coverage --values 0.5 -0.25 0.125 --epsilon 0.1 --json
    ertheory subset-sum --coverage --max-gap --random 24 --epsilon 0.01
    ertheory subset-sum --random 30 --density 0.5 --seed 1 --target 0.3 0.7

Every request is sized before any work: ``--random`` draws at most ``MAX_RANDOM`` values within
``--max-memory``; the coverage decision's interval lists and work are estimated from the inputs and refused
above ``--max-memory`` or ``MAX_COVERAGE_WORK``; ``--max-gap`` enumerates ``2^n`` sums only for
``n <= --max-direct`` (at most 32).
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

import numpy as np

from ertheory._sumsets import ENGINES
from ertheory.cli_util import add_max_memory, command_parser_kwargs, seed_type

#: Most values ``--random`` may draw (the exact best subset takes at most 48 of them, and the coverage
#: decision's cost grows with their number).
MAX_RANDOM = 10**7

#: Bytes per value drawn by ``--random``: the values, the uniforms of the mask, the mask, the kept copy.
_BYTES_PER_RANDOM = 8 + 8 + 1 + 8

#: Largest ``--max-direct``: ``--max-gap`` enumerates ``2^n`` sums (minutes at n = 32).
MAX_DIRECT_CAP = 32


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "subset-sum",
        **command_parser_kwargs(
            "ertheory subset-sum --values 0.5 -0.25 0.125 --target 0.3 --json",
            "ertheory subset-sum --coverage --values 0.5 -0.25 0.125 --epsilon 0.1",
            "ertheory subset-sum --coverage --max-gap --random 24 --epsilon 0.01",
            "ertheory subset-sum --random 30 --density 0.5 --seed 1 --target 0.3 0.7",
        ),
        help="exact best subset sum for targets, or exact coverage of [-1, 1] (Lemma 2.4)",
        description=textwrap.fill(
            "Best subset of VALUES for each target (|sum - target| minimal; exact, meet in the middle, n <= 48; "
            "about 2^(n/2) work per target).  With --coverage: whether every z in [-1, 1] is within EPSILON of a "
            "subset sum -- an exact decision for any n by propagating covered intervals (no enumeration; at most "
            "about (2 + sum |x|) / (2 EPSILON) intervals, usually milliseconds).  --max-gap adds max_gap, the largest "
            "gap between subset sums seen from [-1, 1] (twice the covering radius), also exact but by enumerating "
            "all 2^n sums in sorted chunks: bounded memory, time ~2^n (a second or two at n = 24-26, half a "
            "minute at 30); refused for n above --max-direct.",
            width=100,
        ),
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--values", type=float, nargs="+", metavar="X",
                     help="the values x_1 .. x_n (negative numbers such as -1e-3 are values)")
    src.add_argument("--random", type=int, metavar="N",
                     help=f"draw N values U[-1, 1] with an ER mask instead (N <= {MAX_RANDOM:.0e})")
    parser.add_argument("--density", type=float, help="ER density p of --random (default 1)")
    parser.add_argument("--sparsity", type=float, help="ER sparsity 1 - p of --random")
    parser.add_argument("--seed", type=seed_type, default=0, help="seed of --random, an integer >= 0 (default 0)")
    parser.add_argument("--target", type=float, nargs="+", metavar="Z", help="target value(s) z")
    parser.add_argument("--coverage", action="store_true", help="decide coverage of [-1, 1] instead (exact, fast)")
    parser.add_argument("--epsilon", type=float, help="coverage tolerance (with --coverage)")
    parser.add_argument("--max-gap", action="store_true",
                        help="with --coverage, also compute max_gap exactly by enumerating the 2^n sums (slow)")
    parser.add_argument(
        "--max-direct", type=int, default=26,
        help=f"largest n --max-gap enumerates (default 26, at most {MAX_DIRECT_CAP})",
    )
    parser.add_argument(
        "--engine", choices=ENGINES, default="auto",
        help="best-subset search: numba (compiled kernels, the [fast] extra), numpy, or auto = numba where installed "
             "(default); both give the same results",
    )
    parser.add_argument("--threads", type=int, default=1,
                        help="threads sharing the targets' lookups (numba engine; default 1)")
    add_max_memory(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
    return parser


#: Most interval operations the coverage decision may take (interval-steps summed over the values; each
#: value also costs a fixed ~1,000 for its numpy calls): about a minute on one core.
MAX_COVERAGE_WORK = 2 * 10**9


def _coverage_cost(values: np.ndarray, epsilon: float) -> tuple[float, float]:
    """Peak memory (bytes) and work of the interval method.  After value ``k`` the covered set is a union of
    at most ``min(2^k, (2 + R_k) / (2 eps) + 3)`` intervals, ``R_k`` the sum of ``|x|`` still to come (they are
    disjoint, at least ``2 eps`` long except at the window's ends, and clipped to a window of width
    ``2 + R_k``); a step holds about a dozen float64/int64 arrays of twice that length."""
    rest = np.concatenate([np.cumsum(np.abs(values)[::-1])[::-1][1:], [0.0]])
    k = np.arange(1, values.size + 1, dtype=np.float64)
    count = np.minimum(2.0 ** np.minimum(k, 1000.0), (2.0 + rest + 2.0 * epsilon) / (2.0 * epsilon) + 3.0)
    return float(count.max()) * 2 * 8 * 12, float(count.sum()) + 1000.0 * values.size


def _values(args: argparse.Namespace) -> tuple[Any, Any]:
    from ertheory import subsetsum
    from ertheory._validate import check_density_or_sparsity, check_memory

    if args.random is None:
        if args.density is not None or args.sparsity is not None:
            raise ValueError("--density/--sparsity only apply to --random")
        values = np.asarray(args.values, dtype=np.float64)
        return values, np.arange(values.size)
    if args.density is None and args.sparsity is None:
        args.density = 1.0
    p = check_density_or_sparsity(args.density, args.sparsity)
    if not 1 <= args.random <= MAX_RANDOM:
        raise ValueError(f"--random must be an integer in [1, {MAX_RANDOM}], got {args.random}")
    check_memory(float(args.random) * _BYTES_PER_RANDOM, f"--random {args.random}", args.max_memory)
    drawn, present = subsetsum.draw_er_values(args.random, p, np.random.default_rng(args.seed))
    values = drawn[present]
    if values.size == 0:
        raise ValueError(f"the ER mask kept none of the {args.random} values (density {p!r}); try another --seed")
    return values, np.flatnonzero(present)


def run(args: argparse.Namespace) -> int:
    from ertheory import subsetsum
    from ertheory._validate import check_memory, check_positive
    from ertheory.jsonio import print_json

    if not 0 <= args.max_direct <= MAX_DIRECT_CAP:
        raise ValueError(
            f"--max-direct must be in [0, {MAX_DIRECT_CAP}] (--max-gap enumerates 2^n sums), got {args.max_direct}"
        )
    if args.coverage:
        if args.epsilon is None:
            raise ValueError("--coverage needs --epsilon")
        if args.target is not None:
            raise ValueError("give either --target or --coverage, not both")
        eps = float(check_positive(args.epsilon, "--epsilon"))
    elif args.max_gap or args.epsilon is not None:
        raise ValueError("--epsilon and --max-gap only apply to --coverage")
    elif args.target is None:
        raise ValueError("give --target Z (or --coverage --epsilon E)")
    engine = subsetsum.resolve_engine(args.engine)
    if args.threads < 1:
        raise ValueError(f"--threads must be an integer >= 1, got {args.threads}")
    if args.threads > 1 and engine != "numba":
        raise ValueError(f"--threads {args.threads} needs the numba engine (the engine here is {engine}); "
                         "use --threads 1 or --engine numba")
    values, positions = _values(args)
    if args.coverage:
        if args.max_gap and values.size > args.max_direct:
            raise ValueError(
                f"--max-gap enumerates all 2^n subset sums; n={values.size} is above --max-direct={args.max_direct} "
                f"(at most {MAX_DIRECT_CAP}); drop --max-gap for the exact decision alone"
            )
        what = f"the coverage decision for n={values.size}, epsilon={eps:g}"
        memory, work = _coverage_cost(values, eps)
        if work > MAX_COVERAGE_WORK:
            raise ValueError(f"{what} would take about {work:.2g} interval operations, above the cap of "
                             f"{MAX_COVERAGE_WORK:.0e} (minutes); use fewer values or a larger epsilon")
        check_memory(memory, what, args.max_memory)
        cov = subsetsum.coverage(values, eps, max_direct=values.size if args.max_gap else -1)
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
            gap = "not computed (--max-gap)" if cov.max_gap is None else f"{cov.max_gap:.6g}"
            print(f"covered: {cov.covered}  (epsilon {cov.epsilon:g}, n {cov.n}, max_gap {gap})")
        return 0
    res = subsetsum.best_subset(values, np.asarray(args.target, dtype=np.float64), engine, args.threads)
    rows = []
    for k, z in enumerate(res.targets):
        idx = positions[res.indices(k)]
        rows.append({"target": float(z), "indices": idx, "sum": float(res.sums[k]), "error": float(res.errors[k])})
    if args.json:
        meta = {"n": int(values.size), "engine": res.engine}
        print_json(rows[0] | meta if len(rows) == 1 else meta | {"results": rows})
    else:
        for r in rows:
            print(f"target {r['target']:g}: indices {np.asarray(r['indices']).tolist()}  sum {r['sum']:.12g}  "
                  f"error {r['error']:.3g}")
    return 0
