"""``ertheory bounds``: coverage factors ``q_l`` and source widths of Theorems 2.1, 2.2, A.5 and 2.5.

Example: ``ertheory bounds --target 784 128 10 --sparsity 0.9 --delta 0.001 [--json]``.  Densities
(or sparsities) are per layer ``l = 1..L``; one value applies to every layer.
"""

from __future__ import annotations

import argparse
from typing import Any

from ertheory.cli_util import add_command

THEOREMS = ("auto", "2.1", "2.2", "A.5", "2.5")


def _kernel(text: str) -> int:
    """A kernel area given as ``9`` or as ``3x3``."""
    parts = text.lower().split("x")
    try:
        values = [int(v) for v in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"kernel must be an area like 9 or a shape like 3x3, got {text!r}") from exc
    area = 1
    for v in values:
        area *= v
    return area


#: Example command lines shown in ``--help``.
_EXAMPLES = (
    "ertheory bounds --target 784 128 10 --sparsity 0.9 --delta 0.001",
    "ertheory bounds --target 784 128 128 10 --density 0.1 0.2 0.5 --json",
    "ertheory bounds --conv --channels 3 64 10 --kernel 3x3 1 --sparsity 0.9",
    "ertheory bounds --target 2 3 1 --density 0.5 --theorem 2.5 --epsilon 0.01",
)
_HELP = "per-layer q_l and source widths an ER network needs to contain a target (Thm 2.1/2.2/A.5/2.5)"
_DESCRIPTION = (
    "Coverage factors q_l (real and integer) and source widths n_S,l = ceil(q_l) n_T,l that an "
    "ER source needs to contain a target network with probability at least 1 - delta."
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser = add_command(subparsers, "bounds", examples=_EXAMPLES, help=_HELP, description=_DESCRIPTION)
    parser.add_argument("--target", type=int, nargs="+", metavar="N", help="target widths d n_1 ... n_L")
    parser.add_argument("--conv", action="store_true", help="convolutional target (Theorem A.5)")
    parser.add_argument("--channels", type=int, nargs="+", metavar="C", help="with --conv: channels c_0 ... c_L")
    parser.add_argument(
        "--kernel", type=_kernel, nargs="+", metavar="K", help="with --conv: kernel areas k_1 ... k_L (9 or 3x3)"
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--density", type=float, nargs="+", metavar="P", help="density per layer p_1 ... p_L (or one)")
    group.add_argument("--sparsity", type=float, nargs="+", metavar="S", help="sparsity 1 - p per layer (or one)")
    parser.add_argument("--delta", type=float, default=0.001, help="failure probability (default 0.001)")
    parser.add_argument("--m-T", dest="m_T", type=int, nargs="+", metavar="M", help="non-zeros per target layer")
    parser.add_argument(
        "--theorem", choices=THEOREMS, default="auto", help="auto: 2.1 for L = 2, 2.2 deeper, A.5 with --conv"
    )
    parser.add_argument(
        "--recursion", choices=("integer", "real"), default="integer", help="q_{l+1} fed into q_l (default integer)"
    )
    parser.add_argument("--epsilon", type=float, nargs="+", metavar="E", help="Theorem 2.5: eps_1 ... eps_L (or one)")
    parser.add_argument("--C", dest="C", type=float, default=1.0, help="Theorem 2.5: generic constant (default 1)")
    parser.add_argument("--gamma", type=float, default=0.1, help="Theorem 2.5: gamma > 0 in rho (default 0.1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
    return parser


def _density(args: argparse.Namespace) -> Any:
    import numpy as np

    from ertheory._validate import check_density, check_sparsity

    if args.sparsity is not None:
        # rounded so that sparsity 0.9 gives density 0.1 rather than 0.09999999999999998
        raw = 1.0 - check_sparsity(np.asarray(args.sparsity, dtype=float))
        rounded = np.round(raw, 12)
        return np.where(rounded > 0, rounded, raw)
    return check_density(np.asarray(args.density, dtype=float))


def _compute(args: argparse.Namespace) -> tuple[Any, list[int]]:
    from ertheory import bounds

    density = _density(args)
    theorem = args.theorem
    if args.conv or theorem == "A.5":
        if args.target is not None:
            raise ValueError(f"--target is for fully-connected targets; with --conv give --channels, got {args.target}")
        if args.channels is None or args.kernel is None:
            raise ValueError("--conv needs --channels c_0 ... c_L and --kernel k_1 ... k_L")
        return bounds.theorem_a5(args.channels, args.kernel, density, args.delta, args.m_T, recursion=args.recursion), [
            int(c) for c in args.channels
        ]
    if args.target is None:
        raise ValueError("give --target d n_1 ... n_L (or --conv --channels ... --kernel ...)")
    if args.channels is not None or args.kernel is not None:
        raise ValueError("--channels/--kernel need --conv")
    widths = [int(n) for n in args.target]
    if theorem == "auto":
        theorem = "2.1" if len(widths) == 3 else "2.2"
    if theorem == "2.5":
        if args.epsilon is None:
            raise ValueError("Theorem 2.5 needs --epsilon eps_1 ... eps_L")
        return bounds.theorem_2_5(widths, density, args.delta, args.epsilon, C=args.C, gamma=args.gamma), widths
    if args.epsilon is not None:
        raise ValueError(f"--epsilon is only used by --theorem 2.5, got theorem {theorem}")
    if theorem == "2.1":
        if len(widths) != 3:
            raise ValueError(f"Theorem 2.1 needs --target d n_hidden n_out (three widths), got {widths}")
        d, n_hidden, n_out = widths
        return bounds.theorem_2_1(d, n_hidden, n_out, density, args.delta, args.m_T, recursion=args.recursion), widths
    return bounds.theorem_2_2(widths, density, args.delta, args.m_T, recursion=args.recursion), widths


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ertheory.jsonio import print_json

    result, n_T = _compute(args)
    L = len(n_T) - 1
    total = sum(int(w) for w in result.widths)  # Python integers: no overflow however deep the target
    density = np.broadcast_to(np.asarray(result.inputs["density"], dtype=float), (L,))
    layers = [
        {
            "l": l,
            "n_T": n_T[l],
            "density_next": float(density[l]) if l < L else None,
            "q": float(result.q[l]),
            "q_int": int(result.q_int[l]),
            "width": int(result.widths[l]),
        }
        for l in range(L + 1)
    ]
    if args.json:
        out = result.as_dict()
        out.update(
            density=density,
            sparsity=1.0 - density,
            delta=float(args.delta),
            layers=layers,
            total_source_neurons=total,
        )
        print_json(out)
        return 0
    kind = "channels" if result.theorem == "A.5" else "target"
    print(
        f"Theorem {result.theorem}: {kind} {'-'.join(map(str, n_T))}, delta = {args.delta:g}, "
        f"density p_1..p_L = {', '.join(f'{p:g}' for p in density)}"
    )
    if result.theorem == "2.5":
        print(f"rho = {float(result.inputs['rho']):.6g}, C = {args.C:g}, gamma = {args.gamma:g}")
    print(f"{'l':>3} {'n_T,l':>8} {'p_(l+1)':>9} {'q_l (real)':>14} {'q_l (int)':>10} {'n_S,l':>12}")
    for row in layers:
        p_next = "-" if row["density_next"] is None else f"{row['density_next']:.6g}"
        print(f"{row['l']:>3} {row['n_T']:>8} {p_next:>9} {row['q']:>14.6f} {row['q_int']:>10} {row['width']:>12}")
    print(f"source neurons (layers 0..L): {total}")
    return 0
