"""Sweeps through a real SLURM scheduler: one array job with a concurrency limit, requeue, failure, scancel.

The cluster (munged + slurmctld + slurmd, one node) is started once per session by the fixture in
``tests/slurm_cluster.py``; the commands below are the ones ``docs/cluster.md`` documents.  Runs are tiny
digits MLPs; the run that is requeued or cancelled mid-training is longer (more epochs, smaller batches).

After ``scontrol requeue`` or ``scancel``, slurmd sends SIGTERM and waits max(KillWait, 5 s) before its
SIGKILL; submitit's tasks ignore SIGTERM (they wait for USR2), so the tests end the training process with
SIGKILL right after the scheduler command, which makes the interruption land mid-training for certain.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from slurm_cluster import SlurmCluster, slurm_cluster_fixture, start_cluster, wait_for  # noqa: F401 (fixture)

from ertrain.cli import main
from ertrain.executors import JOB_FOLDER, JOB_LIST, queue_status
from ertrain.sweep import build_configs, load_sweep

pytest.importorskip("submitit")

pytestmark = pytest.mark.slow

LONG_EPOCHS = 12  # the run that is requeued / cancelled mid-training
TIMEOUT = 600.0


def _sweep(path: Path, runs: list[dict[str, Any]]) -> tuple[Path, list[str]]:
    """A sweep file of tiny digits runs (one zip entry per run) and the runs' hashes, in array order."""
    entries = ", ".join("{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in r.items()) + "}" for r in runs)
    path.write_text(
        f'name = "{path.stem}"\n'
        "[base]\n"
        'model = "mlp"\ndataset = "digits"\nmodel_options = {hidden = [64]}\n'
        'density_scheme = "erk"\ndensity = 0.3\nepochs = 1\nbatch_size = 64\nlr = 0.05\n'
        f"[grid]\nzip = [{entries}]\n"
    )
    return path, [c.run_hash() for c in build_configs(load_sweep(path))]


def _submit(
    cluster: SlurmCluster, sweep: Path, runs: Path, parallel: int, capsys: pytest.CaptureFixture[str]
) -> tuple[str, list[str]]:
    """``ertrain sweep --executor slurm``; returns the array job id and the task ids it printed."""
    code = main(
        [
            "sweep", str(sweep), "--executor", "slurm", "--out", str(runs), "--no-progress",
            "--slurm-partition", cluster.partition, "--slurm-time-min", "10", "--slurm-gpus-per-node", "0",
            "--slurm-cpus-per-task", "1", "--slurm-array-parallelism", str(parallel),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    single = re.search(r"submitted 1 run as SLURM job (\d+)$", out, re.MULTILINE)
    if single:  # submitit submits a lone run as a plain job
        return single.group(1), [single.group(1)]
    match = re.search(r"submitted (\d+) runs as SLURM array job (\d+) \(at most (\d+) at once\): (.*)", out)
    assert match, out
    array, tasks = match.group(2), match.group(4).split()
    assert int(match.group(1)) == len(tasks) and int(match.group(3)) == parallel
    assert all(t.startswith(f"{array}_") for t in tasks)  # one array job
    return array, tasks


def _epochs(run_dir: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _complete_lines(run_dir: Path) -> list[str]:
    text = (run_dir / "metrics.jsonl").read_text()
    return text.splitlines()[: text.count("\n")]


def _kill_task(task: str) -> None:
    """SIGKILL the training process of array task ``<array>_<index>`` (found by its SLURM environment)."""
    array, index = task.split("_")
    wanted = {f"SLURM_ARRAY_JOB_ID={array}", f"SLURM_ARRAY_TASK_ID={index}"}
    killed = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = set((proc / "environ").read_bytes().decode(errors="replace").split("\0"))
        except OSError:
            continue
        if b"submitit.core._submit" in cmdline and b"srun" not in cmdline[0] and wanted <= environ:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
    assert killed == 1, f"found {killed} training processes of task {task}"


def _tasks_of(cluster: SlurmCluster, array: str) -> dict[str, str]:
    return {k: v for k, v in cluster.squeue().items() if k.split("_")[0] == array}


@pytest.fixture
def slurm_env(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    """The session's cluster, with ``SLURM_CONF`` set for submitit's ``sbatch``/``squeue`` calls."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return slurm_cluster


def test_array_job_requeue_failure_status_and_report(
    slurm_env: SlurmCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = slurm_env
    sweep, hashes = _sweep(
        tmp_path / "array.toml",
        [{"seed": 0, "epochs": LONG_EPOCHS, "batch_size": 16}, {"seed": 1}, {"seed": 2}],
    )
    runs = tmp_path / "runs"
    long_dir, failing_dir, short_dir = (runs / h for h in hashes)
    (failing_dir / "metrics.jsonl").mkdir(parents=True)  # this run cannot write its metrics: it fails

    array, tasks = _submit(cluster, sweep, runs, 2, capsys)
    assert len(tasks) == 3
    assert cluster.job_field(array, "ArrayTaskThrottle") == "2"
    status = queue_status(hashes, runs)
    assert status.job_ids == (array,) and status.queued + status.done + status.failed == 3

    long_task = tasks[0]
    before: list[str] = []
    requeued = released = False
    requeued_at = 0.0
    max_running = 0
    deadline = time.monotonic() + TIMEOUT
    while True:
        queue = _tasks_of(cluster, array)
        max_running = max(max_running, sum(state == "RUNNING" for state in queue.values()))
        if not requeued and (long_dir / "checkpoint.pt").exists():
            # mid-training: a checkpoint exists and the run has not finished
            assert not (long_dir / "result.json").exists(), "the long run finished before it could be requeued"
            cluster.run("scontrol", "requeue", long_task)
            _kill_task(long_task)  # end it now rather than after slurmd's 5-second grace
            before = _complete_lines(long_dir)
            requeued, requeued_at = True, time.monotonic()
        # skip the requeue delay, but not within the second of the requeue: slurmd refuses a credential issued in
        # the same second as the old one's revocation ("Job credential revoked")
        if requeued and not released and queue.get(long_task) == "PENDING" and time.monotonic() - requeued_at > 2.0:
            cluster.run("scontrol", "update", f"jobid={long_task}", "StartTime=now")  # skip the requeue delay
            released = True
        # an empty queue right after the requeue is the task between its two lives: wait until it came back
        # (seen pending again) or finished
        if not queue and requeued and (released or (long_dir / "result.json").exists()):
            break
        assert time.monotonic() < deadline, f"array job {array} still queued: {queue}"
        time.sleep(0.05)

    assert 1 <= max_running <= 2
    assert cluster.job_field(long_task, "Restarts") == "1"
    # the requeued run resumed from its checkpoint: the epochs it had logged are kept byte for byte
    # (their wall-clock times included), and every epoch appears once
    result = json.loads((long_dir / "result.json").read_text())
    assert result["epochs_done"] == LONG_EPOCHS
    assert _epochs(long_dir) == list(range(LONG_EPOCHS))
    assert 1 <= len(before) < LONG_EPOCHS
    assert _complete_lines(long_dir)[: len(before)] == before
    log = "".join(p.read_text() for p in sorted((runs / JOB_FOLDER / long_task).glob("*_log.*")))
    assert log.count("Starting with JobEnvironment") == 2, log[-3000:]  # started, requeued, started again
    assert log.count("Job completed successfully") == 1, log[-3000:]  # and finished once
    # the failing run recorded its error; the others finished
    error = json.loads((failing_dir / "error.json").read_text())
    assert "metrics.jsonl" in error["message"] and not (failing_dir / "result.json").exists()
    assert (short_dir / "result.json").exists()

    status = queue_status(hashes, runs)
    assert (status.done, status.failed, status.pending, status.running, status.new) == (2, 1, 0, 0, 0)
    assert main(["sweep", str(sweep), "--out", str(runs), "--status"]) == 0
    line = capsys.readouterr().out
    assert "3 runs: 0 pending, 0 running, 2 done, 1 failed, 0 not queued (0 partial, 0 new)" in line
    assert line.rstrip().endswith(f"SLURM job(s) {array}")

    assert main(["report", str(runs), "--no-save", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    accuracies = {json.loads((d / "result.json").read_text())["test_accuracy"] for d in (long_dir, short_dir)}
    assert report["runs"] == 2 and {c["mean"] for c in report["cells"]} == accuracies


def test_scancel_then_rerun_finishes_the_remainder_once(
    slurm_env: SlurmCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = slurm_env
    long_run = {"seed": 1, "epochs": LONG_EPOCHS, "batch_size": 16}
    sweep, hashes = _sweep(tmp_path / "cancel.toml", [{"seed": 0}, long_run, {"seed": 2}])
    runs = tmp_path / "runs"
    done_dir, partial_dir, new_dir = (runs / h for h in hashes)
    array, tasks = _submit(cluster, sweep, runs, 1, capsys)
    assert len(tasks) == 3

    # one task at a time: cancel the array while the second run trains; the third never started
    wait_for(lambda: (partial_dir / "checkpoint.pt").exists(), TIMEOUT, "the second run's first checkpoint", 0.05)
    cluster.run("scancel", array)
    _kill_task(tasks[1])
    wait_for(lambda: not _tasks_of(cluster, array), 60, f"array job {array} to leave the queue")
    assert not (partial_dir / "result.json").exists()
    before = _complete_lines(partial_dir)
    first_result = (done_dir / "result.json").stat().st_mtime_ns
    status = queue_status(hashes, runs)
    assert (status.done, status.partial, status.new, status.queued) == (1, 1, 1, 0)

    again, again_tasks = _submit(cluster, sweep, runs, 1, capsys)
    assert again != array and len(again_tasks) == 2  # only the remainder is submitted
    wait_for(lambda: not _tasks_of(cluster, again), TIMEOUT, f"array job {again} to finish")

    assert queue_status(hashes, runs).done == 3
    assert (done_dir / "result.json").stat().st_mtime_ns == first_result  # the finished run was not re-run
    assert _epochs(partial_dir) == list(range(LONG_EPOCHS))  # the cancelled run resumed: every epoch once
    assert 1 <= len(before) < LONG_EPOCHS and _complete_lines(partial_dir)[: len(before)] == before
    assert _epochs(new_dir) == [0]
    submitted = [json.loads(line)["run_hash"] for line in (runs / JOB_FOLDER / JOB_LIST).read_text().splitlines()]
    assert submitted == [*hashes, hashes[1], hashes[2]]


def test_cluster_stops_every_daemon_it_started(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    # a second cluster beside the session's: its jobs and daemons are gone once it is stopped
    marker = f"{random.randint(10**6, 10**7)}.5"
    with start_cluster(tmp_path / "cluster") as cluster:
        cluster.run("sbatch", "--parsable", f"--output={tmp_path}/job.out", "--wrap", f"sleep {marker}")
        wait_for(lambda: "RUNNING" in cluster.squeue().values(), 60, "the sleep job to start")
        pids = cluster.pids()
        assert set(pids) == {"munged", "slurmctld", "slurmd"}
    for name, pid in pids.items():
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"{name} (pid {pid}) still running"
    sleepers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p) == ["sleep", marker]]
    assert not sleepers, "the cancelled job's process survived"
    assert "idle" in slurm_cluster.run("sinfo", "--noheader").stdout  # the session's cluster is untouched


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def _cmdline(proc: Path) -> list[str]:
    try:
        return (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []
