"""The SLURM path through submitit, run with submitit's local executor (real subprocesses, real requeue)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from ertrain.executors import RunJob, SubmititExecutor, make_executor
from ertrain.sweep import SlurmOptions, build_configs, parse_sweep, run_sweep

pytest.importorskip("submitit")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _configs(epochs_first: int) -> list:
    spec = parse_sweep(
        {
            "base": {
                "model": "mlp",
                "dataset": "digits",
                "model_options": {"hidden": [256, 256]},
                "density_scheme": "balanced",
                "density": 0.3,
                "batch_size": 16,
                "lr": 0.02,
            },
            "grid": {"zip": [{"epochs": epochs_first, "seed": 0}, {"epochs": 1, "seed": 1}]},
        }
    )
    return build_configs(spec)


def test_slurm_parameters_reach_submitit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from submitit.slurm.slurm import SlurmExecutor

    if SlurmExecutor.affinity() <= 0:
        with pytest.raises(ValueError, match="cannot use the 'slurm' executor here"):
            SubmititExecutor(cluster="slurm", folder=tmp_path / "jobs").make_executor(tmp_path)
        monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # pretend srun exists
    opts = SlurmOptions(partition="gpu", time_min=90, gpus_per_node=2, cpus_per_task=4, array_parallelism=7, qos="high")
    executor = SubmititExecutor(opts, cluster="slurm", folder=tmp_path / "jobs").make_executor(tmp_path)
    params = executor._executor.parameters
    assert params["partition"] == "gpu" and params["time"] == 90 and params["gpus_per_node"] == 2
    assert params["cpus_per_task"] == 4 and params["array_parallelism"] == 7
    assert params["additional_parameters"] == {"qos": "high"}
    assert executor._executor.max_num_timeout == 3
    with pytest.raises(ValueError, match="unknown executor 'pbs'"):
        make_executor("pbs")
    with pytest.raises(ValueError, match="cluster must be"):
        SubmititExecutor(cluster="pbs")


def test_checkpoint_resubmits_the_same_call() -> None:
    job = RunJob()
    delayed = job.checkpoint("{}", "/runs")
    assert delayed.function is job and delayed.args == ("{}", "/runs")


@pytest.mark.slow
def test_array_job_with_preemption_requeues_and_resumes(tmp_path: Path) -> None:
    epochs = 4
    configs = _configs(epochs)
    runs = tmp_path / "runs"
    opts = SlurmOptions(time_min=30, gpus_per_node=0, cpus_per_task=1, array_parallelism=2)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    executor = SubmititExecutor(opts, cluster="local", folder=tmp_path / "jobs", wait=False)
    executor.launch(configs, runs)
    jobs = executor.jobs
    assert len(jobs) == 2
    first = runs / configs[0].run_hash()
    deadline = time.monotonic() + 300
    while not (first / "checkpoint.pt").exists():
        assert time.monotonic() < deadline, "no checkpoint within the time limit"
        assert jobs[0].state == "RUNNING", jobs[0].stderr()
        time.sleep(0.01)
    before = (first / "metrics.jsonl").read_text().splitlines()
    # preempt the running task the way SLURM does (USR2 to the task): submitit checkpoints and requeues it
    tasks = _children(int(jobs[0].job_id))
    assert tasks, "the task process of the first array job was not found"
    os.kill(tasks[0], signal.SIGUSR2)
    # without a requeue the signal would end the task before its run finished
    summaries = [job.result() for job in jobs]
    assert [s["ok"] for s in summaries] == [True, True]
    log = (jobs[0].stdout() or "") + (jobs[0].stderr() or "")
    assert "this job is preempted" in log, log[-2000:]

    for config in configs:
        run_dir = runs / config.run_hash()
        result = json.loads((run_dir / "result.json").read_text())
        assert result["epochs_done"] == config.epochs
        epochs_logged = [json.loads(x)["epoch"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert epochs_logged == list(range(config.epochs))
    after = (first / "metrics.jsonl").read_text().splitlines()
    assert after[: len(before) - 1] == before[: len(before) - 1]  # trained epochs kept, not redone

    # the executor reports nothing left to do; a second launch through run_sweep submits nothing
    again = SubmititExecutor(opts, cluster="local", folder=tmp_path / "jobs2", wait=True)
    summary = run_sweep(configs, runs, again)
    assert (summary.done, summary.remain) == (2, 0) and again.jobs == []
