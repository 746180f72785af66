"""The SLURM path through submitit, run with submitit's local executor (real subprocesses, real requeue)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from ertrain.executors import JOB_FOLDER, JOB_LIST, RunJob, SubmititExecutor, make_executor, queue_status, record_jobs
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


# ---------------------------------------------------------------------------------------------- queue status


def _fake_squeue(folder: Path, lines: str) -> Path:
    """An executable ``squeue`` that prints ``lines`` (``<job id>|<state>``) whatever it is asked."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "squeue"
    script.write_text(f"#!/bin/sh\ncat <<'END'\n{lines}\nEND\n")
    script.chmod(0o755)
    return script


def _six_runs(tmp_path: Path) -> tuple[Path, list[str], Path]:
    """A sweep of six runs in a runs directory: done, failed, two queued, one partial, one new."""
    sweep = tmp_path / "six.toml"
    sweep.write_text(
        'name = "six"\n[base]\nmodel = "mlp"\ndataset = "digits"\ndensity_scheme = "erk"\ndensity = 0.3\nepochs = 1\n'
        "[grid]\nseed = [0, 1, 2, 3, 4, 5]\n"
    )
    from ertrain.sweep import load_sweep

    hashes = [c.run_hash() for c in build_configs(load_sweep(sweep))]
    runs = tmp_path / "runs"
    for h in hashes[:5]:
        (runs / h).mkdir(parents=True)
    (runs / hashes[0] / "result.json").write_text("{}")
    (runs / hashes[1] / "error.json").write_text('{"type": "RuntimeError", "message": "boom"}')
    # tasks 7_0..7_4 were submitted for the first five runs; a later resubmission of run 3 is 9 (a lone job)
    record_jobs(runs / JOB_FOLDER, "slurm", ["7_0", "7_1", "7_2", "7_3", "7_4"], hashes[:5])
    record_jobs(runs / JOB_FOLDER, "slurm", ["9"], [hashes[3]])
    record_jobs(runs / JOB_FOLDER, "local", ["12345"], [hashes[5]])  # not a SLURM job: never asked about
    return sweep, hashes, runs


def test_queue_status_joins_run_directories_and_squeue(tmp_path: Path) -> None:
    _, hashes, runs = _six_runs(tmp_path)
    # squeue knows: the done run's task still completing, run 2 pending, run 3's old task (stale) and its new
    # job running, run 4's task gone (it stays partial), another user's job
    squeue = _fake_squeue(tmp_path / "bin", "7_0|COMPLETING\n7_2|PENDING\n7_3|PENDING\n9|RUNNING\n55|RUNNING")
    status = queue_status(hashes, runs, squeue=str(squeue))
    # by hand: run 0 done (result wins), 1 failed, 2 pending, 3 running (its latest job), 4 partial, 5 new
    assert (status.done, status.failed, status.pending, status.running, status.partial, status.new) == (
        1, 1, 1, 1, 1, 1,
    )
    assert status.job_ids == ("7", "9") and status.queued == 2
    assert status.line() == (
        "6 runs: 1 pending, 1 running, 1 done, 1 failed, 2 not queued (1 partial, 1 new); SLURM job(s) 7, 9"
    )
    # nothing submitted: squeue is not needed
    empty = tmp_path / "empty"
    assert queue_status(hashes, empty, squeue=str(tmp_path / "no-squeue")).new == 6
    with pytest.raises(ValueError, match="no-squeue.* not found"):
        queue_status(hashes, runs, squeue=str(tmp_path / "no-squeue"))
    failing = _fake_squeue(tmp_path / "bad", "")
    failing.write_text("#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\nexit 1\n")
    with pytest.raises(ValueError, match="failed: slurm_load_jobs error: Unable to contact"):
        queue_status(hashes, runs, squeue=str(failing))
    with open(runs / JOB_FOLDER / JOB_LIST, "a") as fh:
        fh.write("not json\n")
    with pytest.raises(ValueError, match=r"jobs.jsonl:8: not a job record"):
        queue_status(hashes, runs, squeue=str(squeue))


def test_sweep_status_command_and_slurm_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ertrain.cli import main

    sweep, hashes, runs = _six_runs(tmp_path)
    bin_dir = tmp_path / "bin"
    _fake_squeue(bin_dir, "7_2|PENDING\n9|RUNNING")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert main(["sweep", str(sweep), "--out", str(runs), "--status"]) == 0
    out = capsys.readouterr().out
    assert out == "sweep six: 6 runs: 1 pending, 1 running, 1 done, 1 failed, 2 not queued (1 partial, 1 new); " \
        "SLURM job(s) 7, 9\n"
    assert main(["sweep", str(sweep), "--out", str(runs), "--status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 1
    # bad --slurm-* values fail before anything happens, naming the value
    new = tmp_path / "new"
    assert main(["sweep", str(sweep), "--out", str(new), "--dry-run", "--slurm-array-parallelism", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "array_parallelism must be >= 1, got 0" in err
    assert not new.exists()


def test_executors_are_a_registry() -> None:
    from ertrain.executors import EXECUTORS, register_executor
    from ertrain.registry import DuplicateNameError, Registry

    assert isinstance(EXECUTORS, Registry)
    assert sorted(EXECUTORS) == ["local", "slurm", "submitit-local"]
    with pytest.raises(DuplicateNameError):
        register_executor("local")(lambda **_: None)
    with pytest.raises(ValueError, match="unknown executor 'pbs'.*local, slurm, submitit-local"):
        make_executor("pbs")


def test_the_slurm_executor_refuses_a_runs_directory_others_can_write(tmp_path: Path) -> None:
    from ertrain.executors import check_private

    runs = tmp_path / "runs"
    runs.mkdir(mode=0o755)
    check_private(runs)  # owner-only writable: fine
    runs.chmod(0o775)
    with pytest.raises(ValueError, match="writable by other users .*chmod go-w"):
        check_private(runs)
    runs.chmod(0o755)
    (runs / ".submitit").mkdir(mode=0o777)
    (runs / ".submitit").chmod(0o777)
    with pytest.raises(ValueError, match=r"\.submitit"):
        check_private(runs)
