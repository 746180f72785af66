"""Start-up cost of the command-line tools: whole-process wall time of small commands against a bare import.

* ``ertheory exact``, ``lower-bound`` and ``simulate`` on tiny inputs against ``python -c "import numpy"``
  (floor: at most 1.5x);
* ``ertrain densities`` against ``python -c "import torch"`` (floor: at most 1.2x).

The processes run interleaved, one round after another; each round gives one ratio per command (command time
over the baseline's time in the same round); the median ratio and its range over the rounds are printed, with
the median times.  ``--compare PATH`` runs the same commands with ``PYTHONPATH=PATH`` as well (an older
checkout, e.g. ``git archive <commit> ertheory ertrain | tar -x -C PATH``).  ``--importtime`` prints the five
largest cumulative imports of each command (``python -X importtime``).  Module bytecode is cached (the
benchmark drops ``PYTHONDONTWRITEBYTECODE``), as after any installation.

    python benchmarks/bench_startup.py [--rounds 9] [--compare /tmp/old_tree] [--importtime]
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

PY = sys.executable
THEORY = {
    "exact": ["-m", "ertheory.cli", "exact", "--target", "20", "8", "2", "--density", "0.5"],
    "lower-bound": ["-m", "ertheory.cli", "lower-bound", "--inputs", "10", "--density", "0.5", "--trials", "1000"],
    "simulate": ["-m", "ertheory.cli", "simulate", "--target", "6", "4", "2", "--density", "0.5", "--q", "4", "3",
                 "1", "--trials", "1000"],
}
TRAIN = {"densities": ["-m", "ertrain.cli", "densities", "--model", "vgg16", "--density-scheme", "balanced",
                       "--sparsity", "0.9"]}
BASELINES = {"numpy": ["-c", "import numpy"], "torch": ["-c", "import torch"]}


def _wall(args: list[str], env: dict[str, str]) -> float:
    # run from the directory that holds the packages: ``python -m`` puts the working directory first on the path
    cwd = env.get("PYTHONPATH") or str(Path(__file__).resolve().parents[1])
    t0 = time.perf_counter()
    subprocess.run([PY, *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    return time.perf_counter() - t0


def _rounds(commands: dict[str, list[str]], baseline: list[str], rounds: int, env: dict[str, str]
            ) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {name: [] for name in ["baseline", *commands]}
    for cmd in [baseline, *commands.values()]:  # warm the file cache
        _wall(cmd, env)
    for _ in range(rounds):
        times["baseline"].append(_wall(baseline, env))
        for name, cmd in commands.items():
            times[name].append(_wall(cmd, env))
    out = {"baseline": {"median_s": statistics.median(times["baseline"])}}
    for name in commands:
        ratios = [c / b for c, b in zip(times[name], times["baseline"], strict=True)]
        out[name] = {"median_s": statistics.median(times[name]), "ratio": statistics.median(ratios),
                     "ratio_min": min(ratios), "ratio_max": max(ratios)}
    return out


def _print(label: str, base: str, res: dict[str, dict[str, float]], floor: float) -> None:
    print(f"{label}: baseline import {base}: {res['baseline']['median_s']:.3f} s")
    for name, r in res.items():
        if name != "baseline":
            print(f"{label}:   {name:12s} {r['median_s']:.3f} s  ratio {r['ratio']:.2f} "
                  f"(range {r['ratio_min']:.2f}-{r['ratio_max']:.2f}; floor {floor})")


def _importtime(args: list[str], env: dict[str, str]) -> list[tuple[int, str]]:
    cwd = env.get("PYTHONPATH") or str(Path(__file__).resolve().parents[1])
    res = subprocess.run([PY, "-X", "importtime", *args], env=env, capture_output=True, text=True, cwd=cwd)
    rows = []
    for line in res.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].strip()))
    top_level = [r for r in rows if not r[1].startswith(" ") and "." not in r[1]]
    return sorted(top_level or rows, reverse=True)[:5]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--compare", type=Path, help="also run with PYTHONPATH set to this directory")
    parser.add_argument("--importtime", action="store_true", help="print the largest imports of each command")
    parser.add_argument("--skip-train", action="store_true", help="skip ertrain (no torch)")
    args = parser.parse_args(argv)
    # bytecode is cached as in any installation (a PYTHONDONTWRITEBYTECODE environment would recompile every
    # module of the package in every process and time the compiler instead)
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    setups = [("current", base_env)]
    if args.compare is not None:
        setups.append((f"compare {args.compare}", dict(base_env, PYTHONPATH=str(args.compare))))
    print(f"cpus {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds")
    results = {}
    for label, env in setups:
        theory = _rounds(THEORY, BASELINES["numpy"], args.rounds, env)
        _print(label, "numpy", theory, 1.5)
        results[label] = {"theory": theory}
        if not args.skip_train:
            try:
                train = _rounds(TRAIN, BASELINES["torch"], max(3, args.rounds // 2), env)
            except subprocess.CalledProcessError as exc:
                print(f"{label}: ertrain densities failed ({exc.returncode}); skipped")
            else:
                _print(label, "torch", train, 1.2)
                results[label]["train"] = train
        if args.importtime:
            for name, cmd in {**THEORY, **TRAIN}.items():
                top = ", ".join(f"{mod} {us / 1e6:.2f} s" for us, mod in _importtime(cmd, env))
                print(f"{label}:   importtime {name}: {top}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
