"""Start-up cost of the command-line tools: whole-process time of small commands against a bare import.

* ``ertheory exact``, ``lower-bound`` and ``simulate`` on tiny inputs against ``python -c "import numpy"``
  (floor: at most 1.5x);
* ``ertrain densities`` against ``python -c "import torch"`` (floor: at most 1.2x).

The processes run interleaved, one round after another; each round gives one ratio per command (command time
over the baseline's time in the same round); the median ratio and its range over the rounds are printed, with
the median times, for wall time and for the process's CPU time (user + system: less sensitive to other load
on the machine).  ``--compare PATH`` runs the same commands with ``PYTHONPATH=PATH`` as well, in the same
rounds (an older checkout, e.g. ``git archive <commit> ertheory ertrain | tar -x -C PATH``).
``--importtime`` prints the five largest cumulative imports of each command (``python -X importtime``).
Module bytecode is cached (the benchmark drops ``PYTHONDONTWRITEBYTECODE``), as after any installation.

    python benchmarks/bench_startup.py [--rounds 9] [--train-rounds 5] [--compare /tmp/old_tree] [--importtime]
                                       [--skip-theory | --skip-train]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, of the child) of one process."""
    # run from the directory that holds the packages: ``python -m`` puts the working directory first on the path
    cwd = env.get("PYTHONPATH") or str(Path(__file__).resolve().parents[1])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([PY, *args], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _summary(times: list[float], base: list[float]) -> dict[str, float]:
    ratios = [c / b for c, b in zip(times, base, strict=True)]
    return {"median_s": statistics.median(times), "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios)}


def _rounds(commands: dict[str, list[str]], baseline: list[str], rounds: int, envs: dict[str, dict[str, str]]
            ) -> dict[str, dict[str, dict[str, float]]]:
    """Per setup: the baseline's median times, and each command's times and ratios (wall, and CPU as ``cpu_*``).

    Each round runs every setup's baseline and commands in turn, so that setups see the same load.
    """
    names = ["baseline", *commands]
    cmds = {"baseline": baseline, **commands}
    wall: dict[str, dict[str, list[float]]] = {label: {n: [] for n in names} for label in envs}
    cpu: dict[str, dict[str, list[float]]] = {label: {n: [] for n in names} for label in envs}
    for env in envs.values():  # warm the file cache
        for cmd in cmds.values():
            _run(cmd, env)
    for _ in range(rounds):
        for label, env in envs.items():
            for name, cmd in cmds.items():
                wall_s, cpu_s = _run(cmd, env)
                wall[label][name].append(wall_s)
                cpu[label][name].append(cpu_s)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for label in envs:
        ws, cs = wall[label], cpu[label]
        out[label] = {"baseline": {"median_s": statistics.median(ws["baseline"]),
                                   "cpu_median_s": statistics.median(cs["baseline"])}}
        for name in commands:
            out[label][name] = {**_summary(ws[name], ws["baseline"]),
                                **{f"cpu_{k}": v for k, v in _summary(cs[name], cs["baseline"]).items()}}
    return out


def _print(label: str, base: str, res: dict[str, dict[str, float]], floor: float) -> None:
    b = res["baseline"]
    print(f"{label}: baseline import {base}: {b['median_s']:.3f} s wall, {b['cpu_median_s']:.3f} s CPU")
    for name, r in res.items():
        if name != "baseline":
            print(f"{label}:   {name:12s} {r['median_s']:.3f} s  ratio {r['ratio']:.2f} "
                  f"(range {r['ratio_min']:.2f}-{r['ratio_max']:.2f}; floor {floor}); "
                  f"CPU {r['cpu_median_s']:.3f} s  ratio {r['cpu_ratio']:.2f} "
                  f"(range {r['cpu_ratio_min']:.2f}-{r['cpu_ratio_max']:.2f})")


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
    parser.add_argument("--train-rounds", type=int, default=None,
                        help="rounds of ertrain densities (default: half of --rounds, at least 3)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--skip-train", action="store_true", help="skip ertrain (no torch)")
    only.add_argument("--skip-theory", action="store_true", help="skip the ertheory commands")
    args = parser.parse_args(argv)
    if args.rounds < 1 or (args.train_rounds is not None and args.train_rounds < 1):
        parser.error(f"--rounds and --train-rounds must be >= 1, got {args.rounds} and {args.train_rounds}")
    train_rounds = args.train_rounds or max(3, args.rounds // 2)
    # bytecode is cached as in any installation (a PYTHONDONTWRITEBYTECODE environment would recompile every
    # module of the package in every process and time the compiler instead)
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    setups = [("current", base_env)]
    if args.compare is not None:
        setups.append((f"compare {args.compare}", dict(base_env, PYTHONPATH=str(args.compare))))
    print(f"cpus {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds "
          f"({train_rounds} of ertrain)")
    envs = dict(setups)
    results: dict[str, dict[str, object]] = {label: {} for label in envs}
    parts = ([] if args.skip_theory else [("theory", THEORY, "numpy", args.rounds, 1.5)]) + (
        [] if args.skip_train else [("train", TRAIN, "torch", train_rounds, 1.2)])
    for part, commands, base, rounds, floor in parts:
        try:
            res = _rounds(commands, BASELINES[base], rounds, envs)
        except subprocess.CalledProcessError as exc:
            print(f"{part}: {' '.join(exc.cmd[1:])} failed ({exc.returncode}); skipped")
            continue
        for label in envs:
            _print(label, base, res[label], floor)
            results[label][part] = res[label]
    if args.importtime:
        commands = {**({} if args.skip_theory else THEORY), **({} if args.skip_train else TRAIN)}
        for label, env in envs.items():
            for name, cmd in commands.items():
                top = ", ".join(f"{mod} {us / 1e6:.2f} s" for us, mod in _importtime(cmd, env))
                print(f"{label}:   importtime {name}: {top}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
