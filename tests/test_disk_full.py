"""A full disk while saving: one line naming the file and the cause, exit 2, nothing half-written left as
valid, and a resume after space is freed that gives the run the uninterrupted run gives."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from ertrain import rundir
from ertrain.cli import main
from ertrain.rundir import RunDir, SaveError, read_checkpoint

TRAIN = ["train", "--model", "mlp", "--dataset", "digits", "--density-scheme", "erk", "--density", "0.5",
         "--epochs", "3", "--batch-size", "64", "--seed", "3", "--no-progress"]


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _fail_writes_after(monkeypatch: pytest.MonkeyPatch, ok_calls: int) -> None:
    """Make the checkpoint writer's file writes fail with ENOSPC after ``ok_calls`` successful ones."""
    original = rundir._ErrorKeepingWriter.write
    calls = {"n": 0}

    def write(self: Any, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] > ok_calls:
            self.fh.write(bytes(memoryview(data))[: len(memoryview(data)) // 2])  # a part reaches the disk
            exc = _enospc()
            self.error = exc
            raise exc
        return int(original(self, data))

    monkeypatch.setattr(rundir._ErrorKeepingWriter, "write", write)


def _only_result(runs: Path) -> tuple[Path, dict[str, Any]]:
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir, json.loads((run_dir / "result.json").read_text())


def test_checkpoint_save_on_a_full_disk_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rd = RunDir(tmp_path)
    rd.save_checkpoint({"w": torch.arange(4.0)}, "h")
    before = (tmp_path / "checkpoint.pt").read_bytes()
    _fail_writes_after(monkeypatch, 1)
    with pytest.raises(SaveError) as info:
        rd.save_checkpoint({"w": torch.arange(10_000.0)}, "h")
    assert info.value.errno == errno.ENOSPC
    assert str(tmp_path / "checkpoint.pt") in info.value.strerror and "No space left on device" in info.value.strerror
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]  # no temporary, no half-written checkpoint
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert read_checkpoint(tmp_path / "checkpoint.pt")["w"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_metrics_append_on_a_full_disk_leaves_no_partial_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rd = RunDir(tmp_path)
    rd.append_metrics({"epoch": 1, "loss": 0.5})
    real_write = os.write

    def half_then_enospc(fd: int, data: bytes) -> int:
        if len(data) > 2:
            return real_write(fd, data[: len(data) // 2])
        raise _enospc()

    monkeypatch.setattr(rundir.os, "write", half_then_enospc)
    with pytest.raises(SaveError, match="metrics.jsonl: No space left on device"):
        rd.append_metrics({"epoch": 2, "loss": 0.25})
    monkeypatch.undo()
    assert rd.read_metrics() == [{"epoch": 1, "loss": 0.5}]


def test_result_save_on_a_full_disk_leaves_no_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rd = RunDir(tmp_path)

    def no_space(*_args: Any, **_kwargs: Any) -> None:
        raise _enospc()

    monkeypatch.setattr(rundir, "atomic_write_text", no_space)
    with pytest.raises(SaveError, match="result.json: No space left on device"):
        rd.write_result({"test_accuracy": 0.5})
    assert rd.result_state() == "absent"


def test_train_on_a_full_disk_exits_2_with_one_line_and_resumes_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    straight = tmp_path / "straight"
    assert main([*TRAIN, "--out", str(straight)]) == 0
    _, expected = _only_result(straight)
    capsys.readouterr()

    runs = tmp_path / "runs"
    saves = {"n": 0}
    original = rundir.save_checkpoint

    def save_fails_at_the_second(run_dir: Any, state: dict[str, Any], run_hash: str | None = None) -> Path:
        saves["n"] += 1
        if saves["n"] == 2:
            _fail_writes_after(monkeypatch, 3)
        return original(run_dir, state, run_hash)

    monkeypatch.setattr(rundir, "save_checkpoint", save_fails_at_the_second)
    assert main([*TRAIN, "--out", str(runs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "checkpoint.pt" in err[0] and "No space left on device" in err[0]
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert not (run_dir / "result.json").exists()
    assert not list(run_dir.glob(".*.tmp"))
    assert read_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1  # the last good save

    monkeypatch.undo()  # space is freed
    assert main([*TRAIN, "--out", str(runs)]) == 0
    _, resumed = _only_result(runs)
    volatile = {"wall_time_s"}
    assert {k: v for k, v in resumed.items() if k not in volatile} == {
        k: v for k, v in expected.items() if k not in volatile
    }
    straight_state = read_checkpoint(straight / resumed["run_hash"] / "checkpoint.pt")
    resumed_state = read_checkpoint(run_dir / "checkpoint.pt")
    assert rundir.state_digest(straight_state["model"]) == rundir.state_digest(resumed_state["model"])


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def test_checkpoint_on_a_real_full_tmpfs(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "1m"):
        pytest.skip("needs root and mount to provide a small tmpfs")
    try:
        rd = RunDir(mnt / "run")
        rd.path.mkdir()
        rd.save_checkpoint({"w": torch.arange(10.0)}, "h")
        with pytest.raises(SaveError, match="checkpoint.pt: No space left on device"):
            rd.save_checkpoint({"w": torch.zeros(400_000)}, "h")
        assert sorted(os.listdir(rd.path)) == ["checkpoint.pt"]
        assert read_checkpoint(rd.path / "checkpoint.pt")["w"].tolist() == list(map(float, range(10)))
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("fmt", ["safetensors", "torchscript", "torch"])
def test_export_on_a_full_disk_exits_2_and_leaves_nothing(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ertrain import export

    assert main([*TRAIN[:-3], "--epochs", "1", "--no-progress", "--out", str(tmp_path / "runs")]) == 0
    run_dir, _ = _only_result(tmp_path / "runs")
    capsys.readouterr()

    def half_then_enospc(path: str, data: bytes) -> None:
        with open(path, "wb") as fh:
            fh.write(data[: len(data) // 2])
        raise _enospc()

    monkeypatch.setattr(export, "_write_bytes", half_then_enospc)
    out = tmp_path / "out" / f"model.{fmt}"
    out.parent.mkdir()
    assert main(["export", str(run_dir), "--format", fmt, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and str(out) in err[0], err
    assert list(out.parent.iterdir()) == []  # no model, no temporary, no sidecar


def test_figure_on_a_full_disk_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ertheory import fileio
    from figures import figure2 as fig2

    real_replace = os.replace

    def enospc_on_rename(src: Any, dst: Any) -> None:  # the data reach the temporary file; the disk is full after
        if str(dst).endswith(".png"):
            raise _enospc()
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", enospc_on_rename)
    out = tmp_path / "fig"
    assert fig2.main(["--out", str(out), "--points", "40"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out / "figure2.png") in err[0] and "No space left on device" in err[0], err
    assert not list(out.glob("*.png")) and not list(out.glob(".*.tmp"))
