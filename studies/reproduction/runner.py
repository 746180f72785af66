"""Run a study: train every arm whose result file is missing, in phases, then summarise.

Each phase expands the design's arms against the result files present (:func:`studies.reproduction.arms.build_arms`),
trains the configurations that have no result file yet (arms that wait for another run train that run
first) and writes one result file per finished run.  Re-running skips everything that has a file, so a
study interrupted on one machine continues on another from the committed files; a run interrupted in the
middle resumes from its checkpoint in ``runs_dir`` on the same machine.

Flow repair that adds no edge leaves the ER mask unchanged (random addition draws nothing when no neuron is
cut off), so such a run equals the unrepaired one: it is not trained twice, its result file copies the
unrepaired run's and records ``trained_as``.

Runs go through :func:`ertrain.runner.run_config` in ``jobs`` worker processes (one thread each by default).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ertrain.config import TrainConfig
from studies.reproduction.arms import Arm, build_arms
from studies.reproduction.design import Design
from studies.reproduction.results import ResultStore, compact

Log = Callable[[str], None]


@dataclass(frozen=True)
class Summary:
    """What a study invocation found and did."""

    variant: str
    arms: int
    runs: int
    trained: int
    cpu_s: float
    results_dir: Path
    pending: tuple[str, ...] = field(default=())


def repair_edges(config: TrainConfig) -> int:
    """Edges flow repair adds to ``config``'s ER mask (the same sampling as its run; no training)."""
    from ertrain.trainer import Trainer
    from studies.reproduction.datashapes import dataset_of

    trainer = Trainer.from_config(config.replace(device="cpu"), data=dataset_of(config), progress=False)
    assert trainer.masking is not None
    return int(sum(trainer.masking.edges_added.values()))


def plan(arms: Iterable[Arm], index: dict[str, Any]) -> dict[str, list[TrainConfig]]:
    """Configurations to train now -> the configurations whose result files they give (flow-repair twins)."""
    todo: dict[str, list[TrainConfig]] = {}
    trained: dict[str, TrainConfig] = {}
    for arm in arms:
        config = arm.config if arm.config is not None else arm.waits_for
        assert config is not None
        if config.run_hash() in index or any(config == c for cs in todo.values() for c in cs):
            continue
        target = config
        if config.flow_repair is not None and config.density_scheme != "dense" and repair_edges(config) == 0:
            target = config.replace(flow_repair=None)
        trained.setdefault(target.run_hash(), target)
        todo.setdefault(target.run_hash(), []).append(config)
    return {h: [trained[h], *[c for c in cs if c.run_hash() != h]] for h, cs in todo.items()}


def train_one(config_json: str, runs_dir: str) -> dict[str, Any]:
    """Train one configuration (or read its finished run) and return its compact record."""
    from ertrain.rundir import RunDir
    from ertrain.runner import run_config
    from studies.reproduction.datashapes import majority_share

    config = TrainConfig.from_json(config_json)
    start = time.process_time()
    outcome = run_config(config, runs_dir, progress=False)
    record = compact(config, outcome.result, RunDir(outcome.run_dir).read_metrics(), time.process_time() - start)
    share = majority_share(config)
    if share is not None:
        record["test_majority_share"] = share
    return record


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def execute(work: dict[str, list[TrainConfig]], store: ResultStore, runs_dir: Path, jobs: int, threads: int,
            log: Log) -> float:
    """Train ``work`` (see :func:`plan`) with ``jobs`` processes; write each result file when its run ends."""
    cpu = 0.0

    def finish(configs: list[TrainConfig], record: dict[str, Any]) -> None:
        nonlocal cpu
        cpu += float(record["cpu_s"])
        for i, config in enumerate(configs):
            twin = record if i == 0 else {**record, "config": _config_json(config), "trained_as": configs[0].run_hash(),
                                          "flow_repair_edges_added_total": 0}
            store.write(config, twin)
        log(f"done {configs[0].run_hash()} {configs[0].model} {configs[0].method} {configs[0].density_scheme} "
            f"density {configs[0].density:g} seed {configs[0].seed}: {100 * record['test_accuracy']:.2f}% "
            f"({record['cpu_s']:.0f} CPU-s)")

    if jobs == 1:
        _init_worker(threads)
        for configs in work.values():
            finish(configs, train_one(configs[0].to_json(), str(runs_dir)))
        return cpu
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(train_one, cs[0].to_json(), str(runs_dir)): cs for cs in work.values()}
        for future in cf.as_completed(futures):
            finish(futures[future], future.result())
    return cpu


def _config_json(config: TrainConfig) -> dict[str, Any]:
    import json

    out: dict[str, Any] = json.loads(config.to_json())
    return out


def run_study(design: Design, results_dir: Path, runs_dir: Path, *, jobs: int = 1, threads: int = 1,
              claims: tuple[int, ...] = (1, 2, 3, 4, 5), dry_run: bool = False, log: Log = print,
              select: Callable[[Arm], bool] | None = None) -> Summary:
    """Train what is missing, phase by phase, until every arm of ``claims`` (that ``select`` keeps) has its file."""
    if jobs < 1 or threads < 1:
        raise ValueError(f"jobs and threads must be >= 1, got jobs={jobs!r}, threads={threads!r}")
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    store = ResultStore(results_dir)
    trained, cpu = 0, 0.0
    while True:
        index = store.index()
        arms = [a for a in build_arms(design, index, claims) if select is None or select(a)]
        work = plan(arms, index)
        if not work or dry_run:
            break
        log(f"{design.name}: phase with {len(work)} run(s) to train")
        cpu += execute(work, store, runs_dir, jobs, threads, log)
        trained += len(work)
    pending = tuple(sorted(work)) if dry_run else ()
    runs = {(a.config or a.waits_for).run_hash() for a in arms}  # type: ignore[union-attr]
    return Summary(design.name, len(arms), len(runs), trained, cpu, results_dir, pending)


__all__ = ["Summary", "execute", "plan", "repair_edges", "run_study", "train_one"]
