"""Executors: where the runs of a sweep execute.

- ``local``: a pool of worker processes on this machine.  Where GPUs exist (``CUDA_VISIBLE_DEVICES``, or
  every device torch sees), each worker owns one GPU, so one run per GPU; otherwise runs share the CPU
  cores (``max_parallel`` runs at a time, each with ``cores // max_parallel`` threads).  With one worker
  the runs execute in this process, one after the other.
- ``slurm``: one SLURM array job through submitit (partition, wall time, GPUs, array concurrency limit).
  A task that is preempted or reaches its wall time is requeued with the same arguments and resumes from
  its run's checkpoint (``ertrain.runner.run(..., resume=True)``).
- ``submitit-local``: the same submitit code path with submitit's local executor (real subprocesses on
  this machine, requeue included); this is how the SLURM path is tested without a cluster.

Every executor records a failed run's error in its run directory (``error.json``, written by
``ertrain.runner.run``; written here if the run failed before it could) and carries on with the others.

The submitit executors list every submitted task (job id, run hash) in ``RUNS/.submitit/jobs.jsonl``;
:func:`queue_status` joins that list with ``squeue`` and the run directories into pending, running,
done and failed counts (``ertrain sweep CONFIG --status``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ertrain.registry import Registry
from ertrain.sweep import SlurmOptions

if TYPE_CHECKING:
    from ertrain.config import TrainConfig


@dataclass(frozen=True)
class RunOutcome:
    """What happened to one launched run."""

    run_hash: str
    ok: bool
    error: str = ""


class Executor(Protocol):
    def launch(self, configs: Sequence[TrainConfig], runs_dir: Path) -> list[RunOutcome]: ...


def execute_run(config_json: str, runs_dir: str) -> RunOutcome:
    """Run one config (a ``TrainConfig.to_json()`` string) into ``runs_dir``; never raises ``Exception``.

    ``ertrain.runner.run`` locks the run directory (released by the kernel even when the process is
    killed), so two sweeps over the same runs directory never train the same run at once: a run
    locked by another process is skipped here and stays partial.  A failure is recorded in the run's
    ``error.json`` (by the runner, or here if the run failed before its directory existed).
    """
    from ertrain.config import TrainConfig
    from ertrain.rundir import RunDir, RunLockedError
    from ertrain.runner import run

    config = TrainConfig.from_json(config_json)
    run_hash = config.run_hash()
    try:
        run(config, runs_dir, resume=True)
    except RunLockedError as exc:
        return RunOutcome(run_hash, False, f"in progress in another process ({exc})")
    except Exception as exc:
        rd = RunDir.of(runs_dir, run_hash)
        if rd.read_error() is None:
            rd.path.mkdir(parents=True, exist_ok=True)
            rd.write_error(exc)
        return RunOutcome(run_hash, False, " ".join(f"{type(exc).__name__}: {exc}".split()))
    return RunOutcome(run_hash, True)


def visible_gpus() -> list[str]:
    """GPU ids runs may use: ``CUDA_VISIBLE_DEVICES`` if set, else every device torch sees."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())]


class _RunLines:
    """Off a terminal: one line per finished run (``sweep: 3/12 runs, 1a2b... done``)."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.done = total, desc, 0

    def update(self, n: int = 1, outcome: RunOutcome | None = None) -> None:
        self.done += n
        what = "" if outcome is None else f", {outcome.run_hash} {'done' if outcome.ok else 'failed'}"
        sys.stderr.write(f"{self.desc}: {self.done}/{self.total} runs{what}\n")
        sys.stderr.flush()

    def close(self) -> None:
        """Nothing to tear down."""


def _progress(total: int, desc: str, disable: bool | None) -> Any:
    """A tqdm bar on a terminal, one line per finished run otherwise; nothing with ``disable=True``."""
    from tqdm import tqdm

    if disable is None and not sys.stderr.isatty():
        return _RunLines(total, desc)
    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, disable=bool(disable))


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to kill this worker when its parent dies (Linux ``PR_SET_PDEATHSIG``); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request was in place
        os._exit(1)


def _init_worker(slots: Any, threads: int | None, parent: int) -> None:
    """Pool initialiser: die with the sweep's process; pin this worker to one GPU (from ``slots``) or to
    ``threads`` CPU threads."""
    _die_with_parent(parent)
    if slots is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(slots.get())
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)


class LocalExecutor:
    """Runs on this machine: one run per GPU where GPUs exist, ``max_parallel`` CPU runs otherwise."""

    def __init__(
        self,
        max_parallel: int | None = None,
        *,
        gpus: Sequence[str] | None = None,
        progress: bool | None = None,
    ) -> None:
        if max_parallel is not None and max_parallel < 1:
            raise ValueError(f"max_parallel must be >= 1, got {max_parallel!r}")
        self.gpus = list(visible_gpus() if gpus is None else gpus)
        if self.gpus:
            self.workers = min(max_parallel or len(self.gpus), len(self.gpus))
            self.threads: int | None = None
        else:
            self.workers = max_parallel or 1
            self.threads = max(1, (os.cpu_count() or 1) // self.workers) if self.workers > 1 else None
        self.disable_progress = None if progress is None else not progress

    def launch(self, configs: Sequence[TrainConfig], runs_dir: Path) -> list[RunOutcome]:
        jobs = [c.to_json() for c in configs]
        bar = _progress(len(jobs), "sweep", self.disable_progress)
        outcomes: list[RunOutcome] = []
        try:
            if self.workers == 1 or len(jobs) == 1:
                for job in jobs:
                    outcomes.append(execute_run(job, str(runs_dir)))
                    _tick(bar, outcomes[-1])
                return outcomes
            outcomes = self._launch_pool(jobs, runs_dir, lambda outcome: _tick(bar, outcome))
            return outcomes
        finally:
            bar.close()

    def _launch_pool(self, jobs: list[str], runs_dir: Path, tick: Callable[[RunOutcome], Any]) -> list[RunOutcome]:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # torch and fork do not mix; spawn also gives each worker a clean CUDA state
        slots = None
        if self.gpus:
            slots = ctx.Queue()
            for gpu in self.gpus[: self.workers]:
                slots.put(gpu)
        outcomes: list[RunOutcome] = []
        with ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
            initargs=(slots, self.threads, os.getpid()),
        ) as pool:
            futures: list[tuple[str, Future[RunOutcome]]] = [
                (job, pool.submit(execute_run, job, str(runs_dir))) for job in jobs
            ]
            for job, fut in futures:
                try:
                    outcomes.append(fut.result())
                except BrokenProcessPool as exc:  # a worker died (killed, out of memory): the run stays partial
                    outcomes.append(RunOutcome(_hash_of(job), False, f"worker process died: {exc}"))
                tick(outcomes[-1])
        return outcomes


def check_private(runs_dir: Path) -> None:
    """Refuse a runs directory that others may write: submitit unpickles the jobs it stores under ``.submitit``,
    so whoever can write there can run code as the sweep's user."""
    import stat

    for folder in (Path(runs_dir), Path(runs_dir) / ".submitit"):
        if folder.exists() and folder.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ValueError(
                f"{str(folder)!r} is writable by other users (mode {stat.filemode(folder.stat().st_mode)}); the "
                f"SLURM executor loads jobs stored there: run 'chmod go-w {folder}' first"
            )


def _tick(bar: Any, outcome: RunOutcome) -> None:
    if isinstance(bar, _RunLines):
        bar.update(1, outcome)
    else:
        bar.update(1)


def _hash_of(config_json: str) -> str:
    from ertrain.config import TrainConfig

    return TrainConfig.from_json(config_json).run_hash()


class RunJob:
    """The callable submitit runs for one array task.

    ``checkpoint`` makes submitit requeue the task with the same arguments when it is preempted or
    times out; the requeued task calls ``ertrain.trainer.run`` again, which resumes from the run's last
    good checkpoint (and does nothing if the run has finished).
    """

    def __call__(self, config_json: str, runs_dir: str) -> dict[str, Any]:
        outcome = execute_run(config_json, runs_dir)
        if not outcome.ok:
            raise RuntimeError(f"run {outcome.run_hash} failed: {outcome.error}")
        return asdict(outcome)

    def checkpoint(self, config_json: str, runs_dir: str) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, config_json, runs_dir)


class SubmititExecutor:
    """Submits the runs as one submitit array job (``cluster="slurm"`` or ``"local"``)."""

    def __init__(
        self,
        options: SlurmOptions | None = None,
        *,
        cluster: str = "slurm",
        folder: str | Path | None = None,
        wait: bool = True,
        name: str = "ertrain",
        progress: bool | None = None,
    ) -> None:
        if cluster not in ("slurm", "local"):
            raise ValueError(f"cluster must be 'slurm' or 'local', got {cluster!r}")
        self.options = options or SlurmOptions()
        self.cluster = cluster
        self.folder = None if folder is None else Path(folder)
        self.wait = wait
        self.name = name
        self.disable_progress = None if progress is None else not progress
        self.jobs: list[Any] = []

    def job_folder(self, runs_dir: Path) -> Path:
        """Where submitit keeps its job files and this executor its job list (default ``RUNS/.submitit``)."""
        return self.folder or Path(runs_dir) / JOB_FOLDER

    def make_executor(self, runs_dir: Path) -> Any:
        try:
            import submitit
        except ImportError as exc:
            raise ValueError("the slurm executor needs submitit: pip install 'ertoolkit[cluster]'") from exc
        folder = self.job_folder(runs_dir)
        opts = self.options
        try:
            executor = submitit.AutoExecutor(
                folder=str(folder / "%j"),
                cluster=self.cluster,
                **{f"{self.cluster}_max_num_timeout": opts.max_requeue},
            )
        except RuntimeError as exc:  # no srun on this machine
            raise ValueError(f"cannot use the {self.cluster!r} executor here: {exc}") from exc
        params: dict[str, Any] = {
            "name": self.name,
            "timeout_min": int(opts.time_min),
            "gpus_per_node": int(opts.gpus_per_node),
            "cpus_per_task": int(opts.cpus_per_task),
            "mem_gb": opts.mem_gb,
            "slurm_array_parallelism": int(opts.array_parallelism),
            "slurm_partition": opts.partition,
        }
        extra = {k: v for k, v in (("account", opts.account), ("qos", opts.qos)) if v}
        if extra:
            params["slurm_additional_parameters"] = extra
        if not params["gpus_per_node"]:  # ask for no GPU by not asking: clusters without GRES reject a zero count
            del params["gpus_per_node"]
        if self.cluster == "local":
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
            params["gpus_per_node"] = min(int(opts.gpus_per_node), len(visible_gpus()))
        executor.update_parameters(**params)
        return executor

    def launch(self, configs: Sequence[TrainConfig], runs_dir: Path) -> list[RunOutcome]:
        check_private(runs_dir)
        executor = self.make_executor(runs_dir)
        payload = [c.to_json() for c in configs]
        hashes = [c.run_hash() for c in configs]
        self.jobs = list(executor.map_array(RunJob(), payload, [str(runs_dir)] * len(payload)))
        record_jobs(self.job_folder(runs_dir), self.cluster, [str(j.job_id) for j in self.jobs], hashes)
        if not self.wait:
            return []
        outcomes: list[RunOutcome] = []
        bar = _progress(len(self.jobs), "sweep", self.disable_progress)
        try:
            for run_hash, job in zip(hashes, self.jobs, strict=True):
                try:
                    job.result()
                    outcomes.append(RunOutcome(run_hash, True))
                except Exception as exc:  # submitit wraps the task's error; its error.json has the details
                    outcomes.append(RunOutcome(run_hash, False, " ".join(str(exc).split())[-500:]))
                _tick(bar, outcomes[-1])
        finally:
            bar.close()
        return outcomes


# ---------------------------------------------------------------------------------------------- queue status

#: Folder of the runs directory holding submitit's job files and the list of submitted jobs.
JOB_FOLDER = ".submitit"
#: One JSON object per submitted task: ``{"job_id", "run_hash", "cluster", "time"}``.
JOB_LIST = "jobs.jsonl"

#: squeue states (``%T``) of a task that waits for resources, and of one that holds them.
PENDING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED"})
RUNNING_STATES = frozenset({"RUNNING", "CONFIGURING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"})


def record_jobs(folder: Path, cluster: str, job_ids: Sequence[str], run_hashes: Sequence[str]) -> None:
    """Append the submitted tasks (job id -> run hash) to ``folder/jobs.jsonl``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    lines = "".join(
        json.dumps({"job_id": j, "run_hash": h, "cluster": cluster, "time": now}) + "\n"
        for j, h in zip(job_ids, run_hashes, strict=True)
    )
    with open(folder / JOB_LIST, "a") as fh:
        fh.write(lines)


def submitted_jobs(folder: Path, cluster: str = "slurm") -> dict[str, str]:
    """Run hash -> id of its latest submitted task, from ``folder/jobs.jsonl`` (``{}`` if none)."""
    path = folder / JOB_LIST
    if not path.is_file():
        return {}
    latest: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
            if entry["cluster"] == cluster:
                latest[str(entry["run_hash"])] = str(entry["job_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a job record ({exc}): {line[:80]!r}") from exc
    return latest


def squeue_states(squeue: str = "squeue") -> dict[str, str]:
    """This user's queued tasks: job id (``<array>_<task>`` for array tasks) -> squeue state."""
    command = [squeue, "--noheader", "--array", "--me", "--format=%i|%T"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as exc:
        raise ValueError(f"{squeue!r} not found: the queue status of SLURM jobs needs SLURM's client commands") from exc
    except subprocess.TimeoutExpired as exc:
        raise ValueError(f"{' '.join(command)} did not answer within 60 s") from exc
    if out.returncode != 0:
        raise ValueError(f"{' '.join(command)} failed: {' '.join(out.stderr.split())}")
    return dict(line.split("|", 1) for line in out.stdout.split() if "|" in line)


@dataclass(frozen=True)
class QueueStatus:
    """Where a sweep's runs stand: run directories (done, failed, partial, new) and the SLURM queue."""

    total: int
    done: int
    failed: int
    running: int
    pending: int
    partial: int
    new: int
    job_ids: tuple[str, ...] = ()  # array job ids of the runs' latest submissions

    @property
    def queued(self) -> int:
        return self.running + self.pending

    def line(self) -> str:
        jobs = f"; SLURM job(s) {', '.join(self.job_ids)}" if self.job_ids else ""
        return (
            f"{self.total} runs: {self.pending} pending, {self.running} running, {self.done} done, "
            f"{self.failed} failed, {self.partial + self.new} not queued ({self.partial} partial, {self.new} new)"
            + jobs
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "job_ids": list(self.job_ids), "queued": self.queued}


def queue_status(
    run_hashes: Sequence[str],
    runs_dir: str | Path,
    *,
    folder: str | Path | None = None,
    squeue: str = "squeue",
) -> QueueStatus:
    """Counts of a sweep's runs: ``done`` from ``result.json``, else pending/running from ``squeue`` for the
    runs submitted through the slurm executor (listed in ``RUNS/.submitit/jobs.jsonl``), else the run
    directory's state (failed, partial or new).  ``squeue`` runs only if a run was submitted to SLURM.
    """
    from ertrain.sweep import run_status

    runs_dir = Path(runs_dir)
    jobs = submitted_jobs(Path(folder) if folder is not None else runs_dir / JOB_FOLDER)
    dir_states = {h: run_status(h, runs_dir).state for h in run_hashes}
    waiting = {h: jobs[h] for h in run_hashes if dir_states[h] != "done" and h in jobs}
    queue = squeue_states(squeue) if waiting else {}
    counts = dict.fromkeys(("done", "failed", "running", "pending", "partial", "new"), 0)
    for run_hash in run_hashes:
        state = dir_states[run_hash]
        queued = queue.get(waiting.get(run_hash, ""), "")
        if state != "done" and queued in RUNNING_STATES:
            state = "running"
        elif state != "done" and queued in PENDING_STATES:
            state = "pending"
        counts[state] += 1
    arrays = sorted({jobs[h].split("_")[0] for h in run_hashes if h in jobs}, key=lambda j: (len(j), j))
    return QueueStatus(total=len(run_hashes), job_ids=tuple(arrays), **counts)


#: Executor factories by name: ``factory(max_parallel=..., slurm=SlurmOptions, wait=..., progress=...)``.
EXECUTORS: Registry[Callable[..., Executor]] = Registry("executors", builtins=("ertrain.executors",))


def register_executor(name: str, *, help: str = "") -> Callable[[Callable[..., Executor]], Callable[..., Executor]]:
    """Decorator registering an executor factory under ``name`` (duplicates raise)."""
    decorator: Callable[[Callable[..., Executor]], Callable[..., Executor]] = EXECUTORS.register(name, help=help)
    return decorator


@register_executor("local", help="a process pool on this machine (one run per GPU, CPU otherwise)")
def _local(*, max_parallel: int | None = None, progress: bool | None = None, **_: Any) -> Executor:
    return LocalExecutor(max_parallel, progress=progress)


@register_executor("slurm", help="one SLURM array job through submitit")
def _slurm(
    *, slurm: SlurmOptions | None = None, wait: bool = False, progress: bool | None = None, **_: Any
) -> Executor:
    return SubmititExecutor(slurm, cluster="slurm", wait=wait, progress=progress)


@register_executor("submitit-local", help="the slurm code path with submitit's local executor")
def _submitit_local(
    *, slurm: SlurmOptions | None = None, wait: bool = True, progress: bool | None = None, **_: Any
) -> Executor:
    return SubmititExecutor(slurm, cluster="local", wait=wait, progress=progress)


def make_executor(name: str, **kwargs: Any) -> Executor:
    """The executor registered as ``name``; unknown names raise ``UnknownNameError`` listing the valid ones."""
    factory: Callable[..., Executor] = EXECUTORS.entry(name).obj
    return factory(**kwargs)
