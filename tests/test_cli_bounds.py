"""The ``ertheory bounds`` and ``ertheory figure2`` commands."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ertheory import bounds
from ertheory.cli import main


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    assert main(argv) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_bounds_json_issue_example(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bounds", "--target", "784", "128", "10", "--sparsity", "0.9", "--delta", "0.001", "--json"]
    out = run_json(capsys, argv)
    expected = bounds.theorem_2_1(784, 128, 10, 0.1, 0.001)
    assert out["theorem"] == "2.1"
    np.testing.assert_allclose(out["q"], expected.q, rtol=1e-12)
    assert out["q_int"] == expected.q_int.tolist() and out["widths"] == expected.widths.tolist()
    assert out["density"] == [0.1, 0.1] and out["sparsity"] == pytest.approx([0.9, 0.9])
    assert [row["width"] for row in out["layers"]] == expected.widths.tolist()
    assert out["total_source_neurons"] == sum(expected.widths.tolist())


def test_bounds_density_and_per_layer_values(capsys: pytest.CaptureFixture[str]) -> None:
    a = run_json(capsys, ["bounds", "--target", "20", "16", "8", "3", "--density", "0.2", "0.3", "0.4", "--json"])
    b = run_json(capsys, ["bounds", "--target", "20", "16", "8", "3", "--sparsity", "0.8", "0.7", "0.6", "--json"])
    assert a["theorem"] == "2.2" and a["widths"] == b["widths"]
    assert a["widths"] == bounds.theorem_2_2([20, 16, 8, 3], [0.2, 0.3, 0.4], 0.001).widths.tolist()
    real = run_json(capsys, ["bounds", "--target", "20", "16", "8", "3", "--density", "0.2", "--recursion", "real",
                             "--json"])
    assert real["inputs"]["recursion"] == "real"


def test_bounds_conv_and_theorem_2_5(capsys: pytest.CaptureFixture[str]) -> None:
    conv = run_json(capsys, ["bounds", "--conv", "--channels", "3", "16", "32", "--kernel", "3x3", "9",
                             "--density", "0.1", "--json"])
    assert conv["theorem"] == "A.5" and conv["inputs"]["m_T"] == [16 * 3 * 9, 32 * 16 * 9]
    assert conv["widths"] == bounds.theorem_a5([3, 16, 32], [9, 9], 0.1, 0.001).widths.tolist()
    slt = run_json(capsys, ["bounds", "--target", "5", "4", "2", "--density", "0.2", "--theorem", "2.5",
                            "--epsilon", "0.01", "0.02", "--delta", "0.01", "--json"])
    assert slt["widths"] == bounds.theorem_2_5([5, 4, 2], 0.2, 0.01, [0.01, 0.02]).widths.tolist()


def test_bounds_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bounds", "--target", "784", "128", "10", "--sparsity", "0.9"]) == 0
    text = capsys.readouterr().out
    assert "Theorem 2.1" in text and "18048" in text and "140.047889" in text


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--target", "784", "128", "10", "--sparsity", "1.5"], "1.5"),
        (["--target", "784", "128", "10", "--sparsity", "0.9", "--density", "0.1"], "not allowed with"),
        (["--target", "784", "128", "10"], "--density --sparsity"),
        (["--target", "784", "128", "10", "--density", "0.1", "--delta", "1.0"], "delta"),
        (["--target", "784", "0", "10", "--density", "0.1"], "0"),
        (["--target", "784", "128", "10", "--density", "0.1", "0.2", "0.3"], "density"),
        (["--target", "784", "128", "128", "10", "--density", "0.1", "--theorem", "2.1"], "2.1"),
        (["--conv", "--channels", "3", "8", "--density", "0.1"], "--kernel"),
        (["--conv", "--channels", "3", "8", "--kernel", "3y3", "--density", "0.1"], "3y3"),
        (["--target", "5", "4", "2", "--density", "0.1", "--theorem", "2.5"], "--epsilon"),
    ],
)
def test_bounds_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    assert main(["bounds", *argv, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]


def test_figure2_command_writes_png_and_csv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    summary = run_json(capsys, ["figure2", "--out", str(tmp_path), "--json"])
    assert (tmp_path / "figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(tmp_path / "figure2.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["sparsity", "q1", "width"]
    data = np.array(rows[1:], dtype=float)
    sparsity, q1, width = data.T
    assert len(data) >= 200 and sparsity.min() == 0.0 and sparsity.max() == pytest.approx(0.995)
    assert (np.diff(sparsity) > 0).all() and (np.diff(width) >= 0).all()
    # Theorem 2.1's q_1 = log(2 * 1280 / 0.001) / log(1 / (1 - p)), at least 1; width = ceil(q_1) * 128
    density = 1.0 - sparsity
    with np.errstate(divide="ignore"):
        expected = np.maximum(1.0, math.log(2 * 1280 / 0.001) / -np.log1p(-density))
    np.testing.assert_allclose(q1, expected, rtol=1e-8)
    np.testing.assert_array_equal(width, np.ceil(q1 * (1 - 1e-12)) * 128)
    # at sparsity 0.025, q_1 = log(2.56e6) / log(40) is exactly 4 (40^4 = 2.56e6): 4 copies, not 5
    assert width[np.isclose(sparsity, 0.025)].tolist() == [4 * 128]
    assert summary["marked"]["0.9"]["width"] == 141 * 128
    with open(tmp_path / "figure2_depth.csv", newline="") as fh:
        depth_rows = list(csv.DictReader(fh))
    assert {row["L"] for row in depth_rows} == {"2", "3", "4"}
    two = [int(row["width"]) for row in depth_rows if row["L"] == "2"]
    assert two == width.astype(int).tolist()  # Theorem 2.2 at L = 2 is Theorem 2.1


def test_figure2_bad_points_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["figure2", "--out", str(tmp_path), "--points", "1"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "figure2.csv").exists()
