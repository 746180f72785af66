"""Killing a sweep mid-epoch and re-running it finishes every run exactly once; corrupt checkpoints are survived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ertrain.cli import main
from ertrain.sweep import build_configs, load_sweep

SWEEP = """
name = "kill-test"

[base]
model = "mlp"
dataset = "digits"
model_options = {{ hidden = [256, 256] }}
density_scheme = "erk"
density = 0.5
epochs = {epochs}
batch_size = {batch}
lr = 0.02

[grid]
seed = [0, 1]
"""


def _write(tmp_path: Path, epochs: int, batch: int) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP.format(epochs=epochs, batch=batch))
    return path


def _epochs(metrics: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in metrics.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_kill_mid_epoch_then_rerun_finishes_each_run_once(tmp_path: Path) -> None:
    epochs = 4
    path = _write(tmp_path, epochs, batch=16)
    runs = tmp_path / "runs"
    configs = build_configs(load_sweep(path))
    first = runs / configs[0].run_hash()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ertrain.cli", "sweep", str(path), "--out", str(runs), "--no-progress"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not (first / "checkpoint.pt").exists():  # the first epoch is over: we are inside the second
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint within the time limit"
            time.sleep(0.01)
        time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (first / "result.json").exists(), "the run finished before the kill; make it longer"
    before = (first / "metrics.jsonl").read_text().splitlines()
    assert 1 <= len(before) < epochs

    # re-run: the first run resumes from its checkpoint, the second starts; each finishes once
    assert main(["sweep", str(path), "--out", str(runs), "--no-progress"]) == 0
    results = {}
    for config in configs:
        run_dir = runs / config.run_hash()
        result = json.loads((run_dir / "result.json").read_text())
        assert result["epochs_done"] == epochs
        assert _epochs(run_dir / "metrics.jsonl") == list(range(epochs))  # no epoch lost or logged twice
        results[config.run_hash()] = (run_dir / "result.json").read_bytes()
    after = (first / "metrics.jsonl").read_text().splitlines()
    kept = len(before) - 1  # at most the line of an epoch whose checkpoint was not yet written is redone
    assert after[:kept] == before[:kept], "the epochs trained before the kill were redone"

    # the resumed run ends where an uninterrupted run of the same config ends (CPU training is deterministic)
    from ertrain.runner import run

    reference = run(configs[0], tmp_path / "reference")
    resumed = json.loads(results[configs[0].run_hash()])
    assert resumed["test_accuracy"] == reference["test_accuracy"]
    assert resumed["density"] == reference["density"]

    # a third call launches nothing and leaves every result byte-identical
    assert main(["sweep", str(path), "--out", str(runs), "--no-progress"]) == 0
    assert {h: (runs / h / "result.json").read_bytes() for h in results} == results


def test_corrupt_checkpoint_is_detected_and_the_run_recovers(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from ertrain.runner import run

    path = _write(tmp_path, epochs=3, batch=128)
    config = build_configs(load_sweep(path))[0]
    clean = run(config, tmp_path / "clean")
    runs = tmp_path / "runs"
    run(config, runs)
    run_dir = runs / config.run_hash()
    # pretend the run was interrupted while its last checkpoint was being written
    (run_dir / "result.json").unlink()
    ckpt = run_dir / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    capfd.readouterr()
    assert main(["sweep", str(path), "--out", str(runs), "--no-progress"]) == 0
    err = capfd.readouterr().err
    assert "checkpoint" in err and ("corrupt" in err or "unreadable" in err)
    recovered = json.loads((run_dir / "result.json").read_text())
    assert recovered["epochs_done"] == 3
    assert recovered["test_accuracy"] == clean["test_accuracy"]
    assert _epochs(run_dir / "metrics.jsonl") == [0, 1, 2]

    # flip bytes inside both checkpoints: neither is trusted, the run starts over and still finishes
    (run_dir / "result.json").unlink()
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        p = run_dir / name
        raw = bytearray(p.read_bytes())
        mid = len(raw) // 2
        raw[mid : mid + 64] = bytes(255 - b for b in raw[mid : mid + 64])
        p.write_bytes(bytes(raw))
    assert main(["sweep", str(path), "--out", str(runs), "--no-progress"]) == 0
    again = json.loads((run_dir / "result.json").read_text())
    assert again["epochs_done"] == 3 and again["test_accuracy"] == clean["test_accuracy"]


def test_a_failing_run_is_recorded_and_the_others_finish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the second run asks IMP to rewind past the steps it trains: it fails while training, the other one finishes
    sweep = tmp_path / "mixed.toml"
    sweep.write_text(
        """
[base]
model = "mlp"
dataset = "digits"
model_options = { hidden = [8] }
epochs = 1

[[grid]]
method = ["static"]

[[grid]]
method = ["imp"]
method_options.rewind = ["iteration:1000000"]
"""
    )
    runs = tmp_path / "runs"
    assert main(["sweep", str(sweep), "--out", str(runs), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "2 runs: 2 exist, 1 done, 1 remain (1 failed" in out
    assert "failed runs" in out
    configs = build_configs(load_sweep(sweep))
    ok, bad = (runs / c.run_hash() for c in configs)
    assert (ok / "result.json").is_file()
    error = json.loads((bad / "error.json").read_text())
    assert error["type"] and error["message"] and "Traceback" in error["traceback"]
    assert error["message"].split()[0] in out


def test_a_sweep_with_missing_data_launches_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sweep = tmp_path / "missing.toml"
    sweep.write_text('[base]\nmodel = "gcn"\ndataset = "cora"\nepochs = 1\n[grid]\nseed = [0, 1]\n')
    runs = tmp_path / "runs"
    assert main(["sweep", str(sweep), "--out", str(runs), "--data-dir", str(tmp_path / "none")]) == 2
    assert "cora" in capsys.readouterr().err
    assert not runs.exists() or not any(runs.iterdir())


def test_a_run_locked_by_another_process_is_not_trained_twice(tmp_path: Path) -> None:
    import fcntl

    from ertrain.executors import execute_run

    config = build_configs(load_sweep(_write(tmp_path, epochs=1, batch=128)))[0]
    run_dir = tmp_path / "runs" / config.run_hash()
    run_dir.mkdir(parents=True)
    with open(run_dir / ".lock", "a") as held:  # another sweep is training this run right now
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        outcome = execute_run(config.to_json(), str(tmp_path / "runs"))
        assert not outcome.ok and "in progress" in outcome.error
        assert not (run_dir / "result.json").exists() and not (run_dir / "error.json").exists()
    assert execute_run(config.to_json(), str(tmp_path / "runs")).ok  # lock released: the run trains
    assert (run_dir / "result.json").is_file()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_pool_workers_die_with_the_sweep_process(tmp_path: Path) -> None:
    path = _write(tmp_path, epochs=50, batch=16)
    runs = tmp_path / "runs"
    configs = build_configs(load_sweep(path))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ertrain.cli", "sweep", str(path), "--out", str(runs), "--no-progress",
         "--max-parallel", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not any((runs / c.run_hash() / "metrics.jsonl").exists() for c in configs):
            assert proc.poll() is None, "the sweep ended early"
            assert time.monotonic() < deadline, "no run started within the time limit"
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert len(workers) >= 2, workers  # the pool's workers (and multiprocessing's helper)
    finally:
        proc.send_signal(signal.SIGKILL)  # the parent only, not its process group
        proc.wait()
    deadline = time.monotonic() + 5
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [w for w in workers if _alive(w)]
    for w in survivors:  # clean up before failing
        os.kill(w, signal.SIGKILL)
    assert not survivors, f"processes outlived their sweep by more than 5 s: {survivors}"
