"""The notebooks (``notebooks/NN_*.py``, jupytext percent format) execute top to bottom on small settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebooks_run_all", NOTEBOOKS / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_is_found() -> None:
    stems = [p.stem for p in _runner().notebook_sources(NOTEBOOKS)]
    assert stems == ["01_bounds_and_figure2", "02_subset_sum_and_slt", "03_training_er_networks"]


#: Notebooks that train on Fashion-MNIST.
NEEDS_FASHION = frozenset({"03_training_er_networks"})


def provide_fashion_mnist(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no Fashion-MNIST folder is found, small files in its format in the cache folder the loader searches
    (``$XDG_CACHE_HOME/ertoolkit/fashion-mnist``; the kernel inherits the environment)."""
    from fashion_files import write_fashion

    from ertrain.data.idx import find_files

    try:
        find_files(None)
    except ValueError:
        monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
        write_fashion(cache_home / "ertoolkit" / "fashion-mnist", n_train=300, n_test=100)
        find_files(None)


@pytest.mark.slow
@pytest.mark.parametrize("stem", ["01_bounds_and_figure2", "02_subset_sum_and_slt", "03_training_er_networks"])
def test_notebook_executes(stem: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Runs in a fresh kernel with ``ERTOOLKIT_SMALL=1``; any cell error raises ``CellExecutionError``.  Without
    Fashion-MNIST on the machine, its notebook trains on small random files in the real format."""
    pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    monkeypatch.setenv("ERTOOLKIT_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if stem in NEEDS_FASHION:
        provide_fashion_mnist(tmp_path / "cache", monkeypatch)
    elapsed = _runner().execute(NOTEBOOKS / f"{stem}.py", timeout=600, write=False)
    assert elapsed > 0.0


@pytest.mark.slow
def test_a_failing_cell_fails_the_run(tmp_path: Path) -> None:
    """The runner reports a cell error instead of passing over it."""
    pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    bad = tmp_path / "01_bad.py"
    bad.write_text("# %%\nx = 1\n\n# %%\nraise RuntimeError('broken cell')\n")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="broken cell"):
        _runner().execute(bad, write=False)


@pytest.mark.slow
def test_the_kernel_runs_without_the_tcp_warning(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The kernel is reached over private Unix sockets, so it prints no warning about unencrypted TCP."""
    pytest.importorskip("jupytext")
    pytest.importorskip("nbclient")
    source = tmp_path / "01_tiny.py"
    source.write_text("# %%\nimport sys\nprint('ran', file=sys.stderr)\n")
    _runner().execute(source, write=False)
    err = capfd.readouterr().err
    assert "without encryption" not in err
    assert "TCP" not in err
