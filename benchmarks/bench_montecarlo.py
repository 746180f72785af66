"""Speed and memory of ``ertheory.montecarlo`` and ``ertheory.exact`` on one core.

* count sampler (proofs' event) in Figure 2's setting: target 784-128-10, Theorem 2.1's ``q`` at
  sparsity 0.9 and 0.99, ``delta = 0.001``: trials per second (floor: 1e6);
* count sampler of the tighter construction's event, same setting: trials per second;
* mask sampler vs count sampler per trial on target 784-128-10 at sparsity 0.5 (Theorem 2.1's ``q``),
  measured in the same run, and their ratio;
* peak traced memory of the mask sampler on a source of width 20,000 (floor: < 1 GiB);
* exact minimal widths for the whole tightness figure (4 ``d`` x 100 sparsities; floor: < 10 s).

A warm-up call precedes every timing; each timing is the median of ``--repeats`` runs.

    OMP_NUM_THREADS=1 python benchmarks/bench_montecarlo.py [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from ertheory import bounds, exact, montecarlo


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (default 5)")
    parser.add_argument("--trials", type=int, default=1_000_000, help="count-sampler trials per timing")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    res: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__}
    d, n1, n2, delta = 784, 128, 10, 0.001
    ind, outd = exact.dense_degrees(d, n1, n2)
    for s in (0.9, 0.99):
        p = round(1 - s, 12)
        q = [int(v) for v in bounds.theorem_2_1(d, n1, n2, p, delta).q_int]
        m_T = [d * n1, n1 * n2]
        t = median_time(
            lambda q=q, m_T=m_T, p=p: montecarlo.count_sample_proof(q, m_T, p, args.trials, rng, progress=False),
            args.repeats,
        )
        tight_trials = 20_000
        tt = median_time(
            lambda q=q, p=p, n=tight_trials: montecarlo.count_sample_tight(
                q[0], q[1], p, p, ind, outd, n, rng, progress=False
            ),
            args.repeats,
        )
        res[f"sparsity_{s}"] = {
            "q": q,
            "count_proof_trials_per_s": args.trials / t,
            "count_tight_trials_per_s": tight_trials / tt,
        }

    # mask sampler vs count sampler, same setting, one run
    p = 0.5
    q = [int(v) for v in bounds.theorem_2_1(d, n1, n2, p, delta).q_int]
    sup = montecarlo.dense_supports([d, n1, n2])
    mask_trials = 3
    tm = median_time(lambda: montecarlo.mask_sample(sup, q, p, mask_trials, rng, progress=False), args.repeats)
    tc = median_time(
        lambda: montecarlo.count_sample_proof(q, [d * n1, n1 * n2], p, 100_000, rng, progress=False), args.repeats
    )
    per_mask, per_count = tm / mask_trials, tc / 100_000
    entries = q[1] * n1 * q[0] * d + n2 * q[1] * n1
    res["sparsity_0.5_masks"] = {
        "q": q,
        "mask_entries_per_trial": entries,
        "mask_s_per_trial": per_mask,
        "count_s_per_trial": per_count,
        "mask_over_count": per_mask / per_count,
    }

    # memory of the mask sampler at width 20,000
    tracemalloc.start()
    t0 = time.perf_counter()
    montecarlo.mask_sample(montecarlo.dense_supports([2, 2, 1]), [10_000, 10_000, 1], 0.01, 1, rng, progress=False)
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    res["width_20000_masks"] = {"peak_MiB": peak / 2**20, "seconds_per_trial": wall, "entries": 20_000 * 20_000}

    # exact widths of the whole tightness figure
    sparsity = np.linspace(0.5, 0.99, 100)
    dd = np.array([1, 10, 100, 784])[:, None]
    te = median_time(lambda: exact.lower_bound_min_width(dd, 1 - sparsity[None, :], 0.01), args.repeats)
    res["tightness_exact_widths_s"] = te
    td = median_time(lambda: exact.depth2_min_widths(d, n1, n2, 0.1, delta, "tight"), max(1, args.repeats // 2))
    res["depth2_tight_min_widths_s_sparsity_0.9"] = td

    if args.json:
        json.dump(res, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for key, val in res.items():
        print(f"{key}: {val}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
