"""``ertheory exact``: exact probabilities of the proof event and exact minimal widths, beside the theorem's.

Example: ``ertheory exact --target 784 128 10 --sparsity 0.9 --delta 0.001 [--json]``.  For a depth-2 target
(Theorem 2.1) it also gives the jointly minimal widths of the proof event and of the tighter construction; their
cost does not grow with the hidden width (the events depend on the target only through its degree table).
"""

from __future__ import annotations

import argparse
from typing import Any


def add_density_flags(parser: argparse.ArgumentParser) -> None:
    """``--density`` / ``--sparsity`` (exactly one), one value per layer or one for all."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--density", type=float, nargs="+", metavar="P", help="density per layer p_1 ... p_L (or one)")
    group.add_argument("--sparsity", type=float, nargs="+", metavar="S", help="sparsity 1 - p per layer (or one)")


def add_target_flags(parser: argparse.ArgumentParser) -> None:
    """``--target d n_1 ... n_L`` (required) and the density flags of :func:`add_density_flags`."""
    parser.add_argument("--target", type=int, nargs="+", metavar="N", required=True, help="target widths d n_1 ... n_L")
    add_density_flags(parser)


def densities(args: argparse.Namespace, n_layers: int) -> Any:
    """Per-layer densities from the flags, validated (sparsity 0.9 gives density 0.1 exactly)."""
    import numpy as np

    from ertheory._validate import check_density, check_sparsity

    if args.sparsity is not None:
        raw = 1.0 - check_sparsity(np.asarray(args.sparsity, dtype=float))
        rounded = np.round(raw, 12)
        p = np.where(rounded > 0, rounded, raw)
    else:
        p = check_density(np.asarray(args.density, dtype=float))
    if p.size not in (1, n_layers):
        raise ValueError(f"give one density or one per layer ({n_layers}), got {p.tolist()}")
    return np.broadcast_to(p, (n_layers,)).astype(float)


def target_widths(values: list[int] | None) -> list[int]:
    if values is None or len(values) < 2 or min(values) < 1:
        raise ValueError(f"--target needs positive widths d n_1 ... n_L (L >= 1), got {values}")
    return [int(v) for v in values]


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "exact",
        help="exact probability of the proofs' event (Thm 2.1/2.2) and exact minimal widths vs the theorem's",
        description="Exact probability that the construction of Theorems 2.1/2.2 goes through, the exact "
        "per-layer minimal copies q_l, and (depth 2) the minimal widths of the proof event and of the tighter "
        "construction that drops incomplete copies.",
    )
    add_target_flags(parser)
    parser.add_argument("--delta", type=float, default=0.001, help="failure probability (default 0.001)")
    parser.add_argument("--q", type=int, nargs="+", metavar="Q", help="also evaluate at these copies q_0 ... q_L")
    parser.add_argument("--no-tight", action="store_true", help="skip the depth-2 joint minimal widths")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
    return parser


def compute(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from ertheory import bounds, exact

    n_T = target_widths(args.target)
    L = len(n_T) - 1
    p = densities(args, L)
    theorem = bounds.theorem_2_2(n_T, p, args.delta)
    m_T = [n_T[l] * n_T[l + 1] for l in range(L)]
    q_exact = exact.proof_min_q(m_T, p, args.delta)
    out: dict[str, Any] = {
        "target_widths": n_T,
        "density": p,
        "delta": args.delta,
        "theorem_q": theorem.q_int,
        "theorem_widths": theorem.widths,
        "theorem_success_probability": exact.proof_success_probability(theorem.q_int, m_T, p),
        "exact_min_q": q_exact,
        "exact_min_widths": [int(q) * n for q, n in zip(q_exact.tolist(), n_T, strict=True)],  # exact integers
        "exact_min_q_success_probability": exact.proof_success_probability(q_exact, m_T, p),
    }
    if args.q is not None:
        if len(args.q) != L + 1:
            raise ValueError(f"--q needs {L + 1} values q_0 ... q_L, got {args.q}")
        out["q"] = args.q
        out["proof_success_probability"] = exact.proof_success_probability(args.q, m_T, p)
        if L == 2:
            table = exact.DegreeTable.dense(*n_T)  # one (in, out) degree pair: no per-neuron arrays
            out["tight_success_probability"] = np.exp(
                exact.tight_log_success_from_table(args.q[0], args.q[1], p[0], p[1], table)[0]
            )
    if L == 2 and not args.no_tight:
        total_theorem = int(theorem.widths[0] + theorem.widths[1])
        for event in ("proof", "tight"):
            try:
                res = exact.depth2_min_widths(n_T[0], n_T[1], n_T[2], (p[0], p[1]), args.delta, event)
            except ValueError as exc:
                raise ValueError(f"{exc} (--no-tight skips it)") from exc
            out[f"{event}_joint_min"] = {
                "q0": res.q0,
                "q1": res.q1,
                "n_S0": res.n_S0,
                "n_S1": res.n_S1,
                "probability": res.probability,
                "saving_vs_theorem": 1.0 - (res.n_S0 + res.n_S1) / total_theorem,
            }
    return out


def run(args: argparse.Namespace) -> int:
    from ertheory.cli_util import print_json, to_jsonable

    out = compute(args)
    if args.json:
        print_json(out)
    else:
        _print_text(to_jsonable(out))
    return 0


def _print_text(o: dict[str, Any]) -> None:
    """The plain-text report of :func:`compute`'s (JSON-ready) result."""
    print(f"target {o['target_widths']}, density {o['density']}, delta {o['delta']}")
    print(
        f"theorem q {o['theorem_q']} widths {o['theorem_widths']}  P(proof event) = "
        f"{o['theorem_success_probability']:.6g}"
    )
    print(
        f"exact per-layer minimal q {o['exact_min_q']} widths {o['exact_min_widths']}  P = "
        f"{o['exact_min_q_success_probability']:.6g}"
    )
    for event in ("proof", "tight"):
        if f"{event}_joint_min" in o:
            r = o[f"{event}_joint_min"]
            print(
                f"{event:5s} joint minimum: q0={r['q0']} q1={r['q1']} n_S0={r['n_S0']} n_S1={r['n_S1']} "
                f"P={r['probability']:.6g} (saves {100 * r['saving_vs_theorem']:.1f}% of n_S0+n_S1)"
            )
    if "q" in o:
        tight = o.get("tight_success_probability")
        tight_txt = "" if tight is None else f", P(tight event) = {tight:.6g}"
        print(f"at q {o['q']}: P(proof event) = {o['proof_success_probability']:.6g}{tight_txt}")
