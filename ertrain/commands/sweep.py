"""``ertrain sweep CONFIG``: expand a sweep file, count its runs, launch the ones not done."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ertheory.cli_util import print_json


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sweep",
        help="run a sweep file (a grid over training configs), resumably, locally or on SLURM",
        description=(
            "Expand the grid of a sweep file (TOML), print how many runs exist / are done / remain, and launch "
            "the rest. Runs live in OUT/<run_hash>; finished runs are never re-run, interrupted ones resume from "
            "their checkpoint, failed ones are listed and retried on the next call."
        ),
    )
    parser.add_argument("config", metavar="CONFIG", help="sweep file, e.g. configs/t01_vgg16_cifar10_ratios/smoke.toml")
    parser.add_argument(
        "--executor",
        default="local",
        choices=("local", "slurm", "submitit-local"),
        help="local: process pool (one run per GPU, CPU otherwise); slurm: submitit array job; "
        "submitit-local: the slurm code path on this machine (default: local)",
    )
    parser.add_argument("--out", default="runs", help="runs directory (default: runs/)")
    parser.add_argument("--max-parallel", type=int, default=None, help="runs at a time (local executor)")
    parser.add_argument("--dry-run", action="store_true", help="print the counts and the runs to launch; run nothing")
    parser.add_argument("--data-dir", default=None, help="dataset directory for every run (does not change run hashes)")
    parser.add_argument("--device", default=None, help="device for every run, e.g. cpu or cuda (default: the config's)")
    parser.add_argument("--no-validate", action="store_true", help="skip checking registry names before launching")
    slurm = parser.add_argument_group("slurm", "override the sweep file's [slurm] table")
    slurm.add_argument("--partition", default=None, help="SLURM partition")
    slurm.add_argument("--time-min", type=int, default=None, help="wall time of one array task in minutes")
    slurm.add_argument("--gpus-per-node", type=int, default=None, help="GPUs per array task")
    slurm.add_argument("--cpus-per-task", type=int, default=None, help="CPU cores per array task")
    slurm.add_argument("--mem-gb", type=float, default=None, help="memory per array task in GB")
    slurm.add_argument("--array-parallelism", type=int, default=None, help="array tasks running at once")
    slurm.add_argument("--wait", action="store_true", help="wait for the SLURM jobs and print the final counts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ertrain.executors import make_executor
    from ertrain.sweep import (
        build_configs,
        describe,
        load_sweep,
        run_sweep,
        sweep_status,
        validate_config,
        varying_fields,
    )

    if args.max_parallel is not None and args.max_parallel < 1:
        raise ValueError(f"--max-parallel must be >= 1, got {args.max_parallel}")
    spec = load_sweep(args.config)
    overrides = {k: v for k, v in (("data_dir", args.data_dir), ("device", args.device)) if v is not None}
    configs = build_configs(spec, overrides)
    if not args.no_validate:
        for config in configs:
            validate_config(config)
    runs_dir = Path(args.out)
    states, before = sweep_status(configs, runs_dir)
    keys = varying_fields(configs)
    todo = [(c, s) for c, s in zip(configs, states, strict=True) if s.state != "done"]
    title = f"sweep {spec.name}" + (f" ({spec.reproduces})" if spec.reproduces else "")
    report: dict[str, Any] = {
        "name": spec.name,
        "reproduces": spec.reproduces,
        "runs_dir": str(runs_dir),
        "executor": args.executor,
        "dry_run": bool(args.dry_run),
        "before": before.to_dict(),
        "to_launch": [{"run_hash": s.run_hash, "state": s.state, "fields": describe(c, keys)} for c, s in todo],
    }
    if not args.json:
        print(f"{title}: {before.line()}", flush=True)
    if args.dry_run or not todo:
        if not args.json:
            for c, s in todo:
                print(f"  {s.run_hash}  [{s.state}]  {describe(c, keys)}")
        if args.json:
            print_json(report)
        return 0
    slurm = spec.slurm
    changes = {
        name: getattr(args, name)
        for name in ("partition", "time_min", "gpus_per_node", "cpus_per_task", "mem_gb", "array_parallelism")
        if getattr(args, name) is not None
    }
    if changes:
        slurm = dataclasses.replace(slurm, **changes)
    executor = make_executor(
        args.executor,
        max_parallel=args.max_parallel,
        slurm=slurm,
        wait=args.wait or args.executor == "submitit-local",
        progress=False if args.no_progress else None,
    )
    after = run_sweep(configs, runs_dir, executor)
    jobs = getattr(executor, "jobs", [])
    report["after"] = after.to_dict()
    report["job_ids"] = [str(j.job_id) for j in jobs]
    if args.json:
        print_json(report)
    else:
        if jobs and args.executor == "slurm" and not args.wait:
            print(f"submitted {len(jobs)} array tasks (job {jobs[0].job_id.split('_')[0]}); re-run to see the counts")
        print(f"{title}: {after.line()}")
        if after.failures:
            print("failed runs (error.json in each run directory):")
            for f in after.failures:
                print(f"  {f.run_hash}  {f.error}")
    sys.stdout.flush()
    return 1 if after.failures else 0
