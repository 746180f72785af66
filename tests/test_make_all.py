"""``figures/make_all.py``: a figure is recomputed exactly when its inputs changed or an output is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from figures import make_all
from figures.make_all import ROOT, Figure, input_hash, run_figure, source_files

SMALL = Figure("figure2", "figure2", ("figure2.png", "figure2.csv", "figure2_depth.csv"), args=("--points", "20"))


def relative(paths: list[Path]) -> set[str]:
    return {str(p.relative_to(ROOT)) for p in paths}


def test_the_import_closure_follows_imports() -> None:
    """Direct, transitive (figure2 -> ertheory.figure2 -> ertheory.bounds) and parent-package files."""
    files = relative(source_files("figures.figure2"))
    assert {"figures/figure2.py", "figures/_common.py", "figures/__init__.py", "ertheory/figure2.py",
            "ertheory/bounds.py", "ertheory/__init__.py"} <= files
    assert not any(f.startswith("ertrain/") for f in files)


def test_an_ertrain_import_counts_the_whole_package() -> None:
    files = relative(source_files("figures.teacher_student"))
    assert relative(sorted((ROOT / "ertrain").rglob("*.py"))) <= files


@pytest.mark.slow
def test_stamps_skip_unchanged_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_figure(SMALL, tmp_path) is True
    first = (tmp_path / "figure2.csv").read_bytes()
    assert run_figure(SMALL, tmp_path) is False
    assert "up to date" in capsys.readouterr().out
    (tmp_path / "figure2.png").unlink()  # a missing output
    assert run_figure(SMALL, tmp_path) is True
    assert (tmp_path / "figure2.csv").read_bytes() == first
    other = Figure(SMALL.name, SMALL.script, SMALL.outputs, args=("--points", "21"))  # changed arguments
    assert input_hash(other) != input_hash(SMALL)
    assert run_figure(other, tmp_path) is True
    assert run_figure(SMALL, tmp_path, force=True) is True


def test_a_changed_source_file_changes_the_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    before = input_hash(SMALL)
    real = Path.read_bytes

    def edited(path: Path) -> bytes:
        data = real(path)
        return data + b"\n# edited\n" if path.name == "bounds.py" and path.parent.name == "ertheory" else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert input_hash(SMALL) != before


def test_every_default_figure_is_published_and_named_once() -> None:
    names = [f.name for f in make_all.FIGURES]
    assert len(names) == len(set(names))
    assert all(f.published for f in make_all.FIGURES if f.default)
