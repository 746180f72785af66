"""The teacher-student study's theory marks and outputs (``figures/teacher_student.py``)."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ertheory import bounds, montecarlo

FIGURES = Path(__file__).resolve().parent.parent / "figures"


def _study() -> ModuleType:
    spec = importlib.util.spec_from_file_location("figures_teacher_student", FIGURES / "teacher_student.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("d", "hidden", "density"), [(8, 16, 0.5), (8, 16, 0.25), (20, 32, 0.1)])
def test_theorem_multiplier_satisfies_theorem_2_2(d: int, hidden: int, density: float) -> None:
    """``k = max(q_0, q_1)``, and ``q`` meets Theorem 2.2's inequalities written out by hand (L = 2)."""
    k, q = _study().theorem_multiplier(d, hidden, density, 0.01)
    factor = 1.0 / np.log(1.0 / (1.0 - density))
    assert q[2] == 1
    assert q[1] >= factor * np.log(2 * hidden * 1 / 0.01) > q[1] - 1
    assert q[0] >= factor * np.log(2 * d * hidden * q[1] / 0.01) > q[0] - 1
    assert k == max(q[0], q[1]) == max(bounds.theorem_2_2([d, hidden, 1], density, 0.01).q_int[:-1])


def test_exact_multiplier_against_monte_carlo() -> None:
    """At ``k_exact`` some ``q_1 <= k`` reaches ``1 - delta`` in a count simulation of the tight construction;
    at ``k_exact - 1`` none does (Clopper-Pearson intervals at level 1 - 1e-6, 20000 trials each)."""
    d, hidden, density, delta = 4, 4, 0.5, 0.1
    k = _study().exact_multiplier(d, hidden, density, delta, 50)
    assert k > 1
    degrees = (np.full(hidden, d), np.ones(hidden, dtype=int))
    conf = 1.0 - 1e-6

    def estimate(q0: int, q1: int) -> montecarlo.MCEstimate:
        return montecarlo.count_sample_tight(
            q0, q1, density, density, *degrees, trials=20000, seed=q0 * 100 + q1, confidence=conf, progress=False
        )

    assert any(estimate(k, q1).ci_high >= 1.0 - delta for q1 in range(1, k + 1))
    assert all(estimate(k - 1, q1).ci_low < 1.0 - delta for q1 in range(1, k))


def test_tiny_study_writes_consistent_files(tmp_path: Path) -> None:
    """A tiny run writes the PNG and CSVs; the summary's match is recomputed from the per-student rows."""
    study = _study()
    doc = tmp_path / "note.md"
    argv = ["--out", str(tmp_path), "--multipliers", "1", "2", "--epochs", "2", "--n-train", "200",
            "--n-test", "100", "--write-doc", str(doc)]
    assert study.main(argv) == 0
    for name in ("teacher_student.png", "teacher_student.csv", "teacher_student_summary.csv"):
        assert (tmp_path / name).stat().st_size > 0
    with open(tmp_path / "teacher_student.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / "teacher_student_summary.csv", newline="") as f:
        (summary,) = csv.DictReader(f)
    dense = np.mean([float(r["test_fvu"]) for r in rows if r["kind"] == "dense"])
    assert float(summary["dense_fvu"]) == pytest.approx(dense)
    matching = [int(r["multiplier"]) for r in rows
                if r["kind"] == "er" and float(r["test_fvu"]) <= dense * (1 + float(summary["tolerance"]))]
    assert summary["k_match"] == (str(min(matching)) if matching else "")
    assert all(0.0 < float(r["test_fvu"]) and float(r["kept_weights"]) > 0 for r in rows)
    assert f"{float(summary['dense_fvu']):.4f}" in doc.read_text()


def test_bad_flags_raise() -> None:
    with pytest.raises(ValueError, match="densities"):
        _study().main(["--densities", "1.5", "--doc-only"])
