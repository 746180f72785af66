"""Benchmark of ertheory.subsetsum: best subset for n = 40 values x 1,000 targets, ratio to brute force at
n = 20, and coverage at n = 24 / 26 (the exact decision, and max_gap by enumeration) with peak memory.

Timings are medians after a warm-up (wall time, process CPU time beside it).  Peak memory of the coverage
command is the child process's maximum resident set size.  ``--compare PATH`` also times the package under
PATH (an older checkout, ``git archive <commit> ertheory | tar -x -C PATH``) in subprocesses: the best subset
at n = 40 once, and the coverage command with its defaults at n = 26.

The best subset at n = 40 is timed with each engine (numpy; numba with 1 and 2 threads when numba is
installed), the engines alternating round by round.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_subsetsum.py [--repeats 3] [--targets 1000] [--compare PATH]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ertheory import subsetsum as ss


def median_time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU time of ``repeats`` calls after one warm-up call."""
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpu)


def interleaved(
    cases: dict[str, Callable[[], object]], repeats: int
) -> dict[str, tuple[float, float, float, float]]:
    """Median wall, median CPU, min and max wall of each case, the cases alternating round by round after one
    warm-up call each (a numba kernel compiles or loads its cache there)."""
    for fn in cases.values():
        fn()
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for k, fn in cases.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k]), min(wall[k]), max(wall[k])) for k in cases}


def brute_force_batch(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """All 2^n sums once, then a full scan per target."""
    sums = ((np.arange(1 << x.size)[:, None] >> np.arange(x.size)) & 1) @ x
    return np.array([np.abs(sums - t).min() for t in z])


# VmHWM is the peak resident set of this process's own memory map (getrusage's ru_maxrss would include the
# parent's memory inherited at fork)
_CHILD = (
    "import sys, time\nt0 = time.perf_counter()\nfrom ertheory.cli import main\nrc = main(sys.argv[1:])\n"
    "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM')][0].split()[1]\n"
    "print('BENCH', time.perf_counter() - t0, int(hwm) / 1024)\n"
)


def cli_run(argv: list[str], pythonpath: Path | None = None) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of one ``ertheory`` command in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cwd = Path(__file__).resolve().parents[1]
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
        cwd = pythonpath
    res = subprocess.run([sys.executable, "-c", _CHILD, *argv], env=env, cwd=cwd, capture_output=True, text=True,
                         check=True)
    seconds, rss = res.stdout.split("BENCH")[-1].split()
    return float(seconds), float(rss)


def old_best_subset(path: Path, n: int, targets: int, seed: int) -> float:
    code = (
        "import sys, time\nimport numpy as np\nfrom ertheory import subsetsum as ss\n"
        f"rng = np.random.default_rng({seed})\nx = rng.uniform(-1, 1, {n})\nz = rng.uniform(-1, 1, {targets})\n"
        "t0 = time.perf_counter()\nss.best_subset(x, z)\nprint('BENCH', time.perf_counter() - t0)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(path)}
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=path, capture_output=True, text=True, check=True)
    return float(res.stdout.split("BENCH")[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", type=Path, help="also time the ertheory package under this directory")
    parser.add_argument("--only-n40", action="store_true", help="time only the best subset at n = 40")
    args = parser.parse_args(argv)
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; cpus {os.cpu_count()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    rng = np.random.default_rng(args.seed)

    x40 = rng.uniform(-1, 1, 40)
    z = rng.uniform(-1, 1, args.targets)
    engines = [("numpy", 1)] + ([("numba", 1), ("numba", 2)] if importlib.util.find_spec("numba") else [])
    times = interleaved({f"{e} engine, {t} thread(s)": (lambda e=e, t=t: ss.best_subset(x40, z, e, t))
                         for e, t in engines}, args.repeats)
    res = ss.best_subset(x40, z, "numpy")
    for label, (w, c, lo, hi) in times.items():
        print(f"best subset, n=40, {z.size} targets, {label}: {w:.2f} s wall (range {lo:.2f}-{hi:.2f}), "
              f"{c:.2f} s CPU; median of {args.repeats}")
    wall, cpu = times["numpy engine, 1 thread(s)"][:2]
    print(f"  max error {res.errors.max():.2e}")
    if len(times) > 1:
        fast = times["numba engine, 1 thread(s)"][0]
        same = np.array_equal(ss.best_subset(x40, z, "numba").masks, res.masks)
        print(f"  ratio numpy / numba (1 thread) = {wall / fast:.2f}; numba finds the same subsets: {same}")
    if args.compare is not None:
        t_old = old_best_subset(args.compare, 40, args.targets, args.seed)
        print(f"  compare ({args.compare}): {t_old:.2f} s wall (one run); ratio old/new = {t_old / wall:.1f}")

    if args.only_n40:
        return 0
    x20 = rng.uniform(-1, 1, 20)
    z20 = z[:100]
    t_mitm, _ = median_time(lambda: ss.best_subset(x20, z20, "numpy"), args.repeats)
    t_brute, _ = median_time(lambda: brute_force_batch(x20, z20), args.repeats)
    assert np.array_equal(ss.best_subset(x20, z20).errors, brute_force_batch(x20, z20)) or np.allclose(
        ss.best_subset(x20, z20).errors, brute_force_batch(x20, z20), rtol=0, atol=1e-12)
    print(f"n=20, {z20.size} targets: meet in the middle {t_mitm * 1e3:.1f} ms, brute force {t_brute * 1e3:.1f} ms, "
          f"ratio brute/mitm = {t_brute / t_mitm:.1f}")

    x24 = rng.uniform(-1, 1, 24)
    t_dec, _ = median_time(lambda: ss.coverage(x24, 0.01, max_direct=-1), args.repeats)
    t_gap, _ = median_time(lambda: ss.covering_radius(x24), args.repeats)
    print(f"coverage n=24, eps=0.01: exact decision {t_dec * 1e3:.2f} ms; max_gap by enumeration {t_gap:.2f} s")
    base = ["subset-sum", "--coverage", "--random", "26", "--epsilon", "0.01", "--seed", str(args.seed)]
    for label, extra in (("defaults (decision)", []), ("--max-gap", ["--max-gap"])):
        seconds, rss = cli_run(base + extra)
        print(f"coverage command n=26, {label}: {seconds:.2f} s in process, peak RSS {rss:.0f} MiB (floor 500)")
    if args.compare is not None:
        seconds, rss = cli_run(base, args.compare)
        print(f"  compare ({args.compare}) n=26 with its defaults: {seconds:.2f} s, peak RSS {rss:.0f} MiB")
    x200 = rng.uniform(-1, 1, 200)
    t_big, _ = median_time(lambda: ss.coverage(x200, 1e-3, max_direct=-1), args.repeats)
    print(f"coverage n=200, eps=1e-3 (exact decision): {t_big * 1e3:.1f} ms")
    print(json.dumps({"n40_wall_s": wall, "n40_cpu_s": cpu, "n20_ratio": t_brute / t_mitm}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
