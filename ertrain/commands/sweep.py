"""``ertrain sweep CONFIG``: expand a sweep file, count its runs, launch the ones not done.

Exit status: 0 when every run is done (or, for ``--executor slurm`` without ``--wait``, submitted);
:data:`EXIT_FAILED` (1) when a run failed; :data:`EXIT_UNFINISHED` (3) when the sweep waited for its runs
and some are still not done without having failed (trained by another process, a worker that ended
early); 2 for bad input.  The runs that remain are listed with why.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ertheory.jsonio import print_json

if TYPE_CHECKING:
    from ertrain.sweep import SweepPlan, SweepSummary

#: Exit status when a run of the sweep failed.
EXIT_FAILED = 1
#: Exit status when the sweep waited for its runs and some are neither done nor failed.
EXIT_UNFINISHED = 3

#: ``--slurm-<field>`` flags: ``SlurmOptions`` field -> (type, help).
SLURM_FLAGS: dict[str, tuple[type, str]] = {
    "partition": (str, "SLURM partition"),
    "time_min": (int, "wall time of one array task in minutes (after it the task is requeued and resumes)"),
    "gpus_per_node": (int, "GPUs per array task, i.e. per run (0: ask for none)"),
    "cpus_per_task": (int, "CPU cores per array task"),
    "mem_gb": (float, "memory per array task in GB"),
    "array_parallelism": (int, "array tasks running at once (the array's %%N limit)"),
    "max_requeue": (int, "requeues of a task after a time-out"),
    "account": (str, "SLURM account"),
    "qos": (str, "SLURM quality of service"),
}
#: Fields whose flag also has its older name without the ``slurm-`` prefix (``--partition``, ...).
SHORT_SLURM_FLAGS = frozenset(
    {"partition", "time_min", "gpus_per_node", "cpus_per_task", "mem_gb", "array_parallelism"}
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    from ertrain.executors import EXECUTORS

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sweep",
        help="run a sweep file (a grid over training configs), resumably, locally or on SLURM",
        description=(
            "Expand the grid of a sweep file (TOML), print how many runs exist / are done / remain, and launch "
            "the rest. Runs live in OUT/<run_hash>; finished runs are never re-run, interrupted ones resume from "
            "their checkpoint, failed ones are listed and retried on the next call. Exit status: 0 when every "
            "run is done (or submitted to SLURM without --wait), 1 when a run failed, 3 when runs remain neither "
            "done nor failed (e.g. trained by another process; each is listed with why), 2 for bad input."
        ),
    )
    parser.add_argument("config", metavar="CONFIG", help="sweep file, e.g. configs/t01_vgg16_cifar10_ratios/smoke.toml")
    parser.add_argument(
        "--executor",
        default="local",
        choices=list(EXECUTORS),
        help="local: process pool (one run per GPU, CPU otherwise); slurm: submitit array job; "
        "submitit-local: the slurm code path on this machine (default: local)",
    )
    parser.add_argument("--out", default="runs", help="runs directory (default: runs/)")
    parser.add_argument("--max-parallel", type=int, default=None, help="runs at a time (local executor)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the counts and the runs to launch (with --json: every run's resolved config and "
                             "the source of each field); run nothing, needs neither the data nor a GPU (missing "
                             "datasets are listed)")
    parser.add_argument("--data-dir", default=None, help="dataset directory for every run (does not change run hashes)")
    parser.add_argument("--device", default=None, help="device for every run, e.g. cpu or cuda (default: the config's)")
    parser.add_argument("--no-validate", action="store_true", help="skip checking registry names before launching")
    parser.add_argument(
        "--status",
        action="store_true",
        help="print pending/running/done/failed counts (run directories and, for SLURM submissions, squeue); "
        "launch nothing",
    )
    slurm = parser.add_argument_group("slurm", "override the sweep file's [slurm] table")
    for name, (kind, text) in SLURM_FLAGS.items():
        flag = name.replace("_", "-")
        aliases = [f"--{flag}"] if name in SHORT_SLURM_FLAGS else []
        slurm.add_argument(f"--slurm-{flag}", *aliases, dest=name, type=kind, default=None, help=text)
    slurm.add_argument("--wait", action="store_true", help="wait for the SLURM jobs and print the final counts")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ertrain.executors import make_executor
    from ertrain.sweep import describe, load_configs, plan_sweep, run_sweep

    overrides = {k: v for k, v in (("data_dir", args.data_dir), ("device", args.device)) if v is not None}
    changes = {name: getattr(args, name) for name in SLURM_FLAGS if getattr(args, name) is not None}
    if args.max_parallel is not None and args.max_parallel < 1:
        raise ValueError(f"--max-parallel must be >= 1, got {args.max_parallel}")
    spec, runs, slurm = load_configs(args.config, overrides, changes)
    runs_dir = Path(args.out)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise ValueError(f"--out {str(runs_dir)!r} is a file; it must name a runs directory (existing or new)")
    if args.status:
        return _print_status(spec.name, [r.run_hash() for r in runs], runs_dir, args.json)
    plan = plan_sweep(spec, runs, slurm, runs_dir, validate=not args.no_validate, dry_run=args.dry_run)
    report = plan.report(args.executor, args.dry_run)
    if not args.json:
        print(f"{plan.title}: {plan.before.line()}", flush=True)
    if args.dry_run or not plan.todo:
        if args.json:
            print_json(report)
        else:
            for c, s in plan.todo:
                print(f"  {s.run_hash}  [{s.state}]  {describe(c, plan.keys)}")
            for m in plan.missing_data:
                print(f"missing data: {m['dataset']}: {m['error']}")
        return 0
    executor = make_executor(
        args.executor,
        max_parallel=args.max_parallel,
        slurm=slurm,
        wait=args.wait or args.executor == "submitit-local",
        progress=False if args.no_progress else None,
    )
    after = run_sweep(plan.configs, runs_dir, executor)
    jobs = getattr(executor, "jobs", [])
    report.update(after=after.to_dict(), job_ids=[str(j.job_id) for j in jobs])
    if args.json:
        print_json(report)
    else:
        _print_launched(args, plan, after, [str(j.job_id) for j in jobs])
    sys.stdout.flush()
    if after.failures:
        return EXIT_FAILED
    waited = args.executor != "slurm" or args.wait
    return EXIT_UNFINISHED if waited and after.unfinished else 0


def _print_launched(args: argparse.Namespace, plan: SweepPlan, after: SweepSummary, ids: list[str]) -> None:
    """The SLURM job ids (and how to follow them), the counts after launching, and the failed runs."""
    if ids and args.executor == "slurm":
        if len(ids) == 1:  # submitit submits a single run as a plain job
            print(f"submitted 1 run as SLURM job {ids[0]}")
        else:
            print(
                f"submitted {len(ids)} runs as SLURM array job {ids[0].split('_')[0]} "
                f"(at most {plan.slurm.array_parallelism} at once): {' '.join(ids)}"
            )
        if not args.wait:
            print(f"follow it with: ertrain sweep {args.config} --out {args.out} --status")
    print(f"{plan.title}: {after.line()}")
    if after.failures:
        print("failed runs (error.json in each run directory):")
        for f in after.failures:
            print(f"  {f.run_hash}  {f.error}")
    if after.unfinished and (args.executor != "slurm" or args.wait):
        print("runs that remain (neither done nor failed):")
        for u in after.unfinished:
            print(f"  {u.run_hash}  [{u.state}]  {u.error}")


def _print_status(name: str, run_hashes: list[str], runs_dir: Path, as_json: bool) -> int:
    from ertrain.executors import queue_status

    status = queue_status(run_hashes, runs_dir)
    if as_json:
        print_json({"name": name, "runs_dir": str(runs_dir), **status.to_dict()})
    else:
        print(f"sweep {name}: {status.line()}")
    return 0
