"""A sweep that cannot finish every run says which remain and why, and exits 3; the lock names its holder."""

from __future__ import annotations

import fcntl
import os
import platform
from pathlib import Path

import pytest

from ertrain.cli import main
from ertrain.commands.sweep import EXIT_UNFINISHED
from ertrain.rundir import LOCK, RunDir, RunLockedError
from ertrain.sweep import build_configs, load_sweep

SWEEP = """
name = "locked"

[base]
model = "mlp"
dataset = "digits"
model_options = { hidden = [32] }
density_scheme = "erk"
density = 0.5
epochs = 1
batch_size = 256

[grid]
seed = [0, 1]
"""


def test_sweep_with_a_run_held_by_another_process_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP)
    runs = tmp_path / "runs"
    held, free = (c.run_hash() for c in build_configs(load_sweep(path)))
    (runs / held).mkdir(parents=True)
    with open(runs / held / LOCK, "w") as fh:  # another process trains this run and has recorded its pid
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fh.write("pid 424242 on elsewhere")
        fh.flush()
        rc = main(["sweep", str(path), "--out", str(runs), "--no-progress", "--max-parallel", "1"])
    out = capsys.readouterr().out
    assert rc == EXIT_UNFINISHED == 3
    assert (runs / free / "result.json").is_file() and not (runs / held / "result.json").exists()
    remain = out.split("runs that remain")[1]
    assert held in remain and free not in remain
    assert "in progress in another process" in remain and "pid 424242 on elsewhere" in remain
    # the lock is gone: the next call trains the run and exits 0
    assert main(["sweep", str(path), "--out", str(runs), "--no-progress"]) == 0


def test_lock_names_its_holder_and_replaces_a_dead_ones(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    rd.file(LOCK).write_text("pid 1 on a machine that rebooted")  # stale: nobody holds it
    me = f"pid {os.getpid()} on {platform.node()}"
    with rd.lock():
        assert rd.file(LOCK).read_text() == me
        assert rd.is_locked()  # an flock belongs to an open file: another open of .lock sees it held
        with open(rd.file(LOCK)) as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        child = os.fork()
        if child == 0:  # another process asks for the lock: refused, naming us
            try:
                with rd.lock():
                    os._exit(1)
            except RunLockedError as exc:
                os._exit(0 if me in str(exc) else 2)
            os._exit(3)
        assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
    assert sorted(p.name for p in rd.path.iterdir()) == [LOCK]  # no temporary left behind
    with rd.lock():  # released: taken again
        pass
