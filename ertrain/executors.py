"""Executors: where the runs of a sweep execute.

- ``local``: a pool of worker processes on this machine.  Where GPUs exist (``CUDA_VISIBLE_DEVICES``, or
  every device torch sees), each worker owns one GPU, so one run per GPU; otherwise runs share the CPU
  cores (``max_parallel`` runs at a time, each with ``cores // max_parallel`` threads).  With one worker
  the runs execute in this process, one after the other.
- ``slurm``: one SLURM array job through submitit (partition, wall time, GPUs, array concurrency limit).
  A task that is preempted or reaches its wall time is requeued with the same arguments and resumes from
  its run's checkpoint (``ertrain.train.run(..., resume=True)``).
- ``submitit-local``: the same submitit code path with submitit's local executor (real subprocesses on
  this machine, requeue included); this is how the SLURM path is tested without a cluster.

Every executor records a failed run's error in its run directory (``error.json``, written by
``ertrain.train.run``; written here if the run failed before it could) and carries on with the others.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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


def _atomic_write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def execute_run(config_json: str, runs_dir: str) -> RunOutcome:
    """Run one config (a ``TrainConfig.to_json()`` string) into ``runs_dir``; never raises ``Exception``.

    The run directory is locked (``flock`` on ``<run_dir>/.lock``, released by the kernel even when the
    process is killed) so that two sweeps over the same runs directory never train the same run at once;
    a run locked by another process is skipped and stays partial.
    """
    from ertrain.config import TrainConfig
    from ertrain.train import run

    config = TrainConfig.from_json(config_json)
    run_hash = config.run_hash()
    run_dir = Path(runs_dir) / run_hash
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return RunOutcome(run_hash, False, "in progress in another process")
        return _run_locked(config, run, runs_dir)


def _run_locked(config: TrainConfig, run: Callable[..., Any], runs_dir: str) -> RunOutcome:
    run_hash = config.run_hash()
    try:
        run(config, runs_dir, resume=True)
    except Exception as exc:
        error_path = Path(runs_dir) / run_hash / "error.json"
        if not error_path.exists():
            error_path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write_json(
                error_path,
                {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()},
            )
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


def _progress(total: int, desc: str, disable: bool | None) -> Any:
    from tqdm import tqdm

    if disable is None:
        disable = not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, disable=disable)


def _init_worker(slots: Any, threads: int | None) -> None:
    """Pool initialiser: pin this worker to one GPU (from ``slots``) or to ``threads`` CPU threads."""
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
                    bar.update(1)
                return outcomes
            outcomes = self._launch_pool(jobs, runs_dir, bar.update)
            return outcomes
        finally:
            bar.close()

    def _launch_pool(self, jobs: list[str], runs_dir: Path, tick: Callable[[int], Any]) -> list[RunOutcome]:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # torch and fork do not mix; spawn also gives each worker a clean CUDA state
        slots = None
        if self.gpus:
            slots = ctx.Queue()
            for gpu in self.gpus[: self.workers]:
                slots.put(gpu)
        outcomes: list[RunOutcome] = []
        with ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_init_worker, initargs=(slots, self.threads)
        ) as pool:
            futures: list[tuple[str, Future[RunOutcome]]] = [
                (job, pool.submit(execute_run, job, str(runs_dir))) for job in jobs
            ]
            for job, fut in futures:
                try:
                    outcomes.append(fut.result())
                except BrokenProcessPool as exc:  # a worker died (killed, out of memory): the run stays partial
                    outcomes.append(RunOutcome(_hash_of(job), False, f"worker process died: {exc}"))
                tick(1)
        return outcomes


def _hash_of(config_json: str) -> str:
    from ertrain.config import TrainConfig

    return TrainConfig.from_json(config_json).run_hash()


class RunJob:
    """The callable submitit runs for one array task.

    ``checkpoint`` makes submitit requeue the task with the same arguments when it is preempted or
    times out; the requeued task calls ``ertrain.train.run`` again, which resumes from the run's last
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

    def make_executor(self, runs_dir: Path) -> Any:
        try:
            import submitit
        except ImportError as exc:
            raise ValueError("the slurm executor needs submitit: pip install 'ertoolkit[cluster]'") from exc
        folder = self.folder or (runs_dir / ".submitit")
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
        if self.cluster == "local":
            params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
            params["gpus_per_node"] = min(params["gpus_per_node"], len(visible_gpus()))
        executor.update_parameters(**params)
        return executor

    def launch(self, configs: Sequence[TrainConfig], runs_dir: Path) -> list[RunOutcome]:
        executor = self.make_executor(runs_dir)
        payload = [c.to_json() for c in configs]
        hashes = [c.run_hash() for c in configs]
        self.jobs = list(executor.map_array(RunJob(), payload, [str(runs_dir)] * len(payload)))
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
                bar.update(1)
        finally:
            bar.close()
        return outcomes


#: Executor factories by name: ``factory(max_parallel=..., slurm=SlurmOptions, wait=..., progress=...)``.
EXECUTORS: dict[str, Callable[..., Executor]] = {}


def register_executor(name: str) -> Callable[[Callable[..., Executor]], Callable[..., Executor]]:
    def deco(factory: Callable[..., Executor]) -> Callable[..., Executor]:
        EXECUTORS[name] = factory
        return factory

    return deco


@register_executor("local")
def _local(*, max_parallel: int | None = None, progress: bool | None = None, **_: Any) -> Executor:
    return LocalExecutor(max_parallel, progress=progress)


@register_executor("slurm")
def _slurm(
    *, slurm: SlurmOptions | None = None, wait: bool = False, progress: bool | None = None, **_: Any
) -> Executor:
    return SubmititExecutor(slurm, cluster="slurm", wait=wait, progress=progress)


@register_executor("submitit-local")
def _submitit_local(
    *, slurm: SlurmOptions | None = None, wait: bool = True, progress: bool | None = None, **_: Any
) -> Executor:
    return SubmititExecutor(slurm, cluster="local", wait=wait, progress=progress)


def make_executor(name: str, **kwargs: Any) -> Executor:
    """The executor registered as ``name``; unknown names raise listing the valid ones."""
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; valid: {', '.join(sorted(EXECUTORS))}")
    return EXECUTORS[name](**kwargs)
