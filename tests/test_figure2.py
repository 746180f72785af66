"""Figure 2: the computation (``ertheory.figure2``), the files (``figures/figure2.py``) and ``ertheory figure2``."""

from __future__ import annotations

import argparse
import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ertheory.figure2 import BYTES_PER_POINT, compute, marked
from figures import figure2 as fig2

ERTHEORY = [sys.executable, "-m", "ertheory.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ERTHEORY, "figure2", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("sparsity", [0.5, 0.9, 0.99])
def test_marked_widths_by_hand(sparsity: float) -> None:
    """``q_1 = log(2 n_1 n_2 / delta) / log(1 / (1 - p))`` and ``n_{S,1} = ceil(q_1) * n_1`` (Theorem 2.1)."""
    data = compute(points=11, max_sparsity=0.995)
    q1 = math.log(2 * 128 * 10 / 0.001) / math.log(1 / sparsity)
    row = marked(data)[f"{sparsity:g}"]
    assert row["q1"] == pytest.approx(q1, rel=1e-12)
    assert row["width"] == math.ceil(q1) * 128


def test_the_grid_is_monotone_and_depth_two_is_panel_a() -> None:
    data = compute(points=50, max_sparsity=0.99)
    assert data.sparsity[0] == 0.0 and data.sparsity[-1] == 0.99
    assert np.all(np.diff(data.width) >= 0)
    assert np.array_equal(data.depth_width[0], data.width)  # L = 2 is Theorem 2.1
    assert np.all(data.depth_width[2] >= data.depth_width[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"points": 10**9}, "would need about"),
        ({"points": 1}, "at least 2"),
        ({"max_sparsity": 0.0}, "max_sparsity must be in"),
        ({"max_sparsity": 1.0}, "max_sparsity"),
        ({"delta": 0.0}, "delta"),
        ({"depths": (1, 2)}, "depths"),
    ],
)
def test_bad_values_raise_before_work(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute(**kwargs)  # type: ignore[arg-type]


def test_size_estimate_follows_the_limit() -> None:
    limit = 100 * BYTES_PER_POINT
    assert compute(points=100, max_memory=limit).sparsity.size >= 100
    with pytest.raises(ValueError, match="at most 100 points"):
        compute(points=101, max_memory=limit)


def test_files_are_deterministic_and_follow_the_umask(tmp_path: Path) -> None:
    """Two runs give byte-identical PNG and CSVs; no Software/time chunk in the PNG; mode 0666 & ~umask."""
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert fig2.main(["--out", str(out), "--points", "40"]) == 0
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]
    assert set(outputs[0]) == {"figure2.png", "figure2.csv", "figure2_depth.csv"}
    png = outputs[0]["figure2.png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Software" not in png and b"tIME" not in png
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "a" / "figure2.png").stat().st_mode & 0o777 == 0o666 & ~mask
    with open(tmp_path / "a" / "figure2.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    data = compute(points=40)
    assert [float(r["sparsity"]) for r in rows] == data.sparsity.tolist()
    assert [float(r["q1"]) for r in rows] == data.q1.tolist()
    assert [int(r["width"]) for r in rows] == data.width.tolist()


@pytest.mark.parametrize(
    "args",
    [
        ["--points", "1e9"],
        ["--max-sparsity", "0"],
        ["--out", ""],
        ["--out", "a_file"],
        ["--out", "a_file/below"],
    ],
)
def test_command_refuses_in_one_line_and_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "a_file").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = args if "--out" in args else ["--out", "new_dir", *args]
    result = run(*argv, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ertheory: error:"), result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_unwritable_out_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory the user cannot write (simulated for root, who may write anywhere)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    try:
        with pytest.raises(ValueError, match="not a writable directory"):
            fig2.generate(fig2_args(locked / "out"))
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def fig2_args(out: Path) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    fig2.add_arguments(parser)
    return parser.parse_args(["--out", str(out)])


def test_command_writes_the_png_and_csv(tmp_path: Path) -> None:
    result = run("--out", "f", "--points", "30", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "f" / "figure2.png").read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "f" / "figure2.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["sparsity", "q1", "width"]
