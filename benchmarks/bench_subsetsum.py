"""Benchmark of ertheory.subsetsum: best subset for n = 40 values x 1,000 targets, ratio to brute force at
n = 20, and the coverage decision at n = 24.  Warm-up first, then medians of several repeats.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_subsetsum.py [--repeats 3] [--targets 1000]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from ertheory import subsetsum as ss


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call; the median process CPU time is printed
    to stderr beside it (on a shared machine CPU time is the steadier measure of single-core cost)."""
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(f"    (wall {statistics.median(times):.4g} s, cpu {statistics.median(cpu):.4g} s)", file=sys.stderr)
    return statistics.median(times)


def brute_force_batch(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """All 2^n sums once, then a full scan per target."""
    sums = ((np.arange(1 << x.size)[:, None] >> np.arange(x.size)) & 1) @ x
    return np.array([np.abs(sums - t).min() for t in z])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    x40 = rng.uniform(-1, 1, 40)
    z = rng.uniform(-1, 1, args.targets)
    t40 = median_time(lambda: ss.best_subset(x40, z), max(1, args.repeats - 1))
    res = ss.best_subset(x40, z)
    print(f"best subset, n=40, {z.size} targets: {t40:.2f} s (median); max error {res.errors.max():.2e}")

    x20 = rng.uniform(-1, 1, 20)
    z20 = z[:100]
    t_mitm = median_time(lambda: ss.best_subset(x20, z20), args.repeats)
    t_brute = median_time(lambda: brute_force_batch(x20, z20), args.repeats)
    assert np.allclose(ss.best_subset(x20, z20).errors, brute_force_batch(x20, z20), atol=1e-12)
    print(f"n=20, {z20.size} targets: meet in the middle {t_mitm * 1e3:.1f} ms, brute force {t_brute * 1e3:.1f} ms, "
          f"ratio brute/mitm = {t_brute / t_mitm:.1f}")

    x24 = rng.uniform(-1, 1, 24)
    t_dec = median_time(lambda: ss.coverage(x24, 0.01, max_direct=0), args.repeats)
    t_gap = median_time(lambda: ss.coverage(x24, 0.01), args.repeats)
    cov = ss.coverage(x24, 0.01)
    print(f"coverage n=24, eps=0.01: decision (interval method) {t_dec * 1e3:.2f} ms; with exact max_gap by "
          f"enumeration {t_gap:.2f} s; covered={cov.covered}, max_gap={cov.max_gap:.3g}")
    x200 = rng.uniform(-1, 1, 200)
    t_big = median_time(lambda: ss.coverage(x200, 1e-3), args.repeats)
    print(f"coverage n=200, eps=1e-3 (interval method): {t_big * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
