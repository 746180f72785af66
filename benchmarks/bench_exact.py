"""Time of ``ertheory exact`` against the hidden width: target ``784-N-10``, sparsity 0.9, delta 0.001.

The command's computation (``ertheory.commands.exact.compute``: the theorem, the exact per-layer copies and the
jointly minimal widths of the proof and tight events) is timed in process for N = 128, 1e5 and 1e6, the widths
interleaved within each repeat; the ratio N = 1e6 / N = 128 is the measure (floor: at most 1.2).  With
``--compare PATH`` the same runs use the package found under PATH as well (e.g. an older checkout extracted with
``git archive <commit> ertheory | tar -x -C PATH``), in a subprocess, for before/after numbers.

    OMP_NUM_THREADS=1 python benchmarks/bench_exact.py [--repeats 5] [--compare /tmp/old_tree]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WIDTHS = (128, 10**5, 10**6)


def _measure(repeats: int) -> dict[int, list[float]]:
    from ertheory.cli import make_parser
    from ertheory.commands.exact import compute

    parser = make_parser()
    times: dict[int, list[float]] = {n: [] for n in WIDTHS}
    args = {n: parser.parse_args(["exact", "--target", "784", str(n), "10", "--sparsity", "0.9", "--delta", "0.001"])
            for n in WIDTHS}
    compute(args[WIDTHS[0]])  # warm-up
    for _ in range(repeats):
        for n in WIDTHS:
            t0 = time.perf_counter()
            compute(args[n])
            times[n].append(time.perf_counter() - t0)
    return times


def _report(label: str, times: dict[int, list[float]]) -> dict[str, float]:
    med = {n: statistics.median(t) for n, t in times.items()}
    for n in WIDTHS:
        spread = f"{min(times[n]):.3f}-{max(times[n]):.3f}"
        print(f"{label}: N={n:>8}: median {med[n]:.3f} s (range {spread} s, {len(times[n])} repeats)")
    ratio = med[WIDTHS[-1]] / med[WIDTHS[0]]
    print(f"{label}: ratio N=1e6 / N=128 = {ratio:.2f}")
    return {f"median_s_{n}": med[n] for n in WIDTHS} | {"ratio_1e6_128": ratio}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare", type=Path, help="also time the ertheory package under this directory")
    parser.add_argument("--raw", action="store_true", help=argparse.SUPPRESS)  # print the timings as JSON
    args = parser.parse_args(argv)
    if args.raw:
        print(json.dumps({str(k): v for k, v in _measure(args.repeats).items()}))
        return 0
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; cpus {os.cpu_count()}")
    results = {"current": _report("current", _measure(args.repeats))}
    if args.compare is not None:
        env = dict(os.environ, PYTHONPATH=str(args.compare))
        out = subprocess.run([sys.executable, __file__, "--raw", "--repeats", str(args.repeats)], env=env,
                             capture_output=True, text=True, check=True, cwd=args.compare)
        raw = json.loads(out.stdout.strip().splitlines()[-1])
        results["compare"] = _report(f"compare ({args.compare})", {int(k): v for k, v in raw.items()})
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
