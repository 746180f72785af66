"""A real single-node SLURM cluster for tests: munged, slurmctld and slurmd in a temporary directory.

``start_cluster(root)`` writes a munge key and a short ``slurm.conf`` (one node at 127.0.0.1,
``proctrack/linuxproc``, ``task/none``, no accounting, one partition), starts the three daemons in the
foreground as child processes, waits until ``sinfo`` shows the node idle, and on exit cancels every
job, waits for the queue to empty and stops each daemon it started by its PID.

The pytest fixture ``slurm_cluster`` (session scope; a test module imports ``slurm_cluster_fixture``)
yields one :class:`SlurmCluster` for a test session.  Under ``CI=true`` a missing or broken SLURM
installation fails the tests; elsewhere a missing ``slurmctld`` (or not being root, which ``slurmd``
needs) skips them with a one-line reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PARTITION = "debug"
NODE = "ertest"
DAEMONS = ("munged", "slurmctld", "slurmd")


@dataclass
class SlurmCluster:
    """A running cluster: its directory, ``slurm.conf``, partition and the daemons' processes."""

    root: Path
    conf: Path
    partition: str = PARTITION
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """This process's environment with ``SLURM_CONF`` pointing at the cluster (for every SLURM client)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a SLURM client command (``sbatch``, ``squeue``, ``scontrol``, ...) against this cluster."""
        return subprocess.run(args, env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def squeue(self) -> dict[str, str]:
        """Queued and running tasks: job id (``<array>_<task>`` for array tasks) -> state."""
        out = self.run("squeue", "--noheader", "--array", "--format=%i|%T").stdout
        return dict(line.split("|", 1) for line in out.split() if "|" in line)

    def job_field(self, job_id: str, name: str) -> str:
        """One ``Key=Value`` field of ``scontrol show job`` (the first task's, for an array)."""
        for token in self.run("scontrol", "show", "job", job_id).stdout.split():
            key, _, value = token.partition("=")
            if key == name:
                return value
        raise KeyError(f"no field {name!r} in scontrol show job {job_id}")

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.processes.items()}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll ``predicate`` until it holds; ``TimeoutError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def slurm_conf(root: Path, host: str, ctld_port: int, slurmd_port: int, cpus: int) -> str:
    """The cluster's ``slurm.conf``: one node, one partition, no accounting, no cgroups."""
    return "\n".join(
        [
            f"ClusterName=ertest\nSlurmctldHost={host}(127.0.0.1)\nSlurmUser=root",
            f"SlurmctldPort={ctld_port}\nSlurmdPort={slurmd_port}",
            f"AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket={root}/munge.socket",
            f"StateSaveLocation={root}/state\nSlurmdSpoolDir={root}/spool",
            f"SlurmctldPidFile={root}/slurmctld.pid\nSlurmdPidFile={root}/slurmd.pid",
            f"SlurmctldLogFile={root}/slurmctld.log\nSlurmdLogFile={root}/slurmd.log",
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none",
            "AccountingStorageType=accounting_storage/none\nJobAcctGatherType=jobacct_gather/none",
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\nSlurmdParameters=config_overrides",
            "ReturnToService=2\nKillWait=2\nMinJobAge=3600\nSchedulerParameters=batch_sched_delay=0",
            f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
        ]
    ) + "\n"


def _start(cluster: SlurmCluster, name: str, argv: list[str]) -> None:
    log = open(cluster.root / f"{name}.out", "wb")  # noqa: SIM115 - the daemon owns it until it exits
    cluster.processes[name] = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=cluster.env, start_new_session=True
    )
    log.close()


def _check_alive(cluster: SlurmCluster) -> None:
    for name, proc in cluster.processes.items():
        if proc.poll() is not None:
            tail = (cluster.root / f"{name}.out").read_text(errors="replace")[-1500:]
            raise RuntimeError(f"{name} exited with status {proc.returncode}:\n{tail}")


def _alive(cluster: SlurmCluster) -> bool:
    _check_alive(cluster)
    return True


def _node_idle(cluster: SlurmCluster) -> bool:
    _check_alive(cluster)
    out = cluster.run("sinfo", "--noheader", "--Node", "--format=%N %t", check=False)
    return out.returncode == 0 and f"{NODE} idle" in out.stdout


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


@contextlib.contextmanager
def start_cluster(root: Path, cpus: int = 4, timeout: float = 60.0) -> Iterator[SlurmCluster]:
    """Start munged, slurmctld and slurmd under ``root``; stop them (by PID) and cancel every job on exit."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # munged wants its socket directory searchable by every user
    for sub in ("state", "spool"):
        (root / sub).mkdir(exist_ok=True)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = root / "slurm.conf"
    host = socket.gethostname().split(".")[0]
    conf.write_text(slurm_conf(root, host, free_port(), free_port(), cpus))
    cluster = SlurmCluster(root=root, conf=conf)
    try:
        _start(
            cluster,
            "munged",
            ["munged", "--foreground", "--force", f"--socket={root}/munge.socket", f"--key-file={key}",
             f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log", f"--seed-file={root}/munged.seed"],
        )
        wait_for(lambda: _alive(cluster) and (root / "munge.socket").exists(), timeout, "the munge socket")
        _start(cluster, "slurmctld", ["slurmctld", "-D", "-f", str(conf)])
        _start(cluster, "slurmd", ["slurmd", "-D", "-N", NODE, "-f", str(conf)])
        wait_for(lambda: _node_idle(cluster), timeout, f"sinfo to show node {NODE} idle", interval=0.25)
        yield cluster
    finally:
        if "slurmctld" in cluster.processes and cluster.processes["slurmctld"].poll() is None:
            cluster.run("scancel", "--full", f"--partition={PARTITION}", check=False)
            with contextlib.suppress(TimeoutError, subprocess.SubprocessError):
                wait_for(lambda: not cluster.squeue(), 30, "the queue to empty", interval=0.25)
        for name in reversed(DAEMONS):
            if name in cluster.processes:
                _stop(cluster.processes[name])


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session", name="slurm_cluster")
def slurm_cluster_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A running single-node cluster for the whole session (skipped without SLURM outside CI)."""
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    reason = ""
    if missing:
        reason = f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge)"
    elif os.geteuid() != 0:
        reason = "slurmd must run as root to start jobs"
    if reason:
        if _ci():
            pytest.fail(f"CI=true needs a SLURM cluster: {reason}")
        pytest.skip(reason)
    with start_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster
