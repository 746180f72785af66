"""Sweep files: grid expansion, validation of every shipped config, run states, the ``sweep`` command."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ertrain.cli import main
from ertrain.sweep import (
    apply_assignment,
    build_configs,
    expand_grid,
    load_sweep,
    parse_sweep,
    run_status,
    sparsity_to_density,
    summarize,
    sweep_status,
    validate_config,
)

ROOT = Path(__file__).resolve().parents[1]
# configs/reproduction/{quick,cpu,full}.toml are study designs (studies.reproduction), not sweep files
STUDY_DESIGNS = {ROOT / "configs" / "reproduction" / f"{v}.toml" for v in ("quick", "cpu", "full")}
SHIPPED = sorted(p for p in (ROOT / "configs").rglob("*.toml") if p not in STUDY_DESIGNS)
EXPERIMENTS = sorted({p.parent for p in SHIPPED if p.parent.parent == ROOT / "configs"})

TINY = """
name = "tiny"
table = "ratios"

[base]
model = "mlp"
dataset = "digits"
model_options = {{ hidden = [16] }}
epochs = {epochs}
batch_size = 128
lr = 0.05

[grid]
density_scheme = ["erk", "uniform"]
sparsity = [0.5, 0.9]
seed = [0, 1]
"""


def write_tiny(tmp_path: Path, epochs: int = 1, extra: str = "") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.format(epochs=epochs) + extra)
    return path


# ---------------------------------------------------------------------------------------------- expansion

axis_values = st.lists(st.integers(-5, 5), min_size=1, max_size=3, unique=True)


@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), axis_values, min_size=0, max_size=4))
@settings(max_examples=40)
def test_expand_grid_is_the_cartesian_product(grid: dict[str, list[int]]) -> None:
    points = expand_grid(grid)
    # brute force: every combination of one value per key, in key order
    expected = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    assert points == expected
    n = 1
    for values in grid.values():
        n *= len(values)
    assert len(points) == n
    assert len({json.dumps(p, sort_keys=True) for p in points}) == n  # no combination twice


def test_zip_entries_vary_together_and_dict_fields_are_axes() -> None:
    grid = {
        "seed": [0, 1],
        "zip": [{"method": "static"}, {"method": "rigl", "method_options": {"update_every": 5}}],
        "model_options": {"hidden": [[8], [16]]},
    }
    points = expand_grid(grid)
    assert len(points) == 2 * 2 * 2
    rigl = [p for p in points if p["method"] == "rigl"]
    assert all(p["method_options.update_every"] == 5 for p in rigl)
    assert all("method_options.update_every" not in p for p in points if p["method"] == "static")
    assert {tuple(p["model_options.hidden"]) for p in points} == {(8,), (16,)}


def test_assignment_merges_dict_fields_and_converts_sparsity() -> None:
    base = {"model": "mlp", "method_options": {"cycles": 3, "scope": "global"}}
    fields = apply_assignment(base, {"method_options.cycles": 5, "sparsity": 0.99})
    assert fields["method_options"] == {"cycles": 5, "scope": "global"}
    assert fields["density"] == 0.01 and "sparsity" not in fields
    assert base["method_options"] == {"cycles": 3, "scope": "global"}  # base untouched
    assert sparsity_to_density(0.9) == pytest.approx(0.1, abs=1e-15)
    with pytest.raises(ValueError, match="both 'sparsity' and 'density'"):
        apply_assignment({}, {"sparsity": 0.5, "density": 0.5})
    with pytest.raises(ValueError, match="sparsity must be in"):
        sparsity_to_density(1.0)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"bogus": 1}, "unknown top-level key"),
        ({"grid": {"seed": 3}}, "grid values must be arrays"),
        ({"grid": {"seed": []}}, "axis is empty"),
        ({"grid": {"zip": [1, 2]}}, "array of tables"),
        ({"slurm": {"partitions": "gpu"}}, "unknown \\[slurm\\] key"),
        ({"slurm": {"time_min": 0}}, "time_min must be >= 1"),
    ],
)
def test_malformed_sweeps_raise_naming_the_problem(doc: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_sweep(doc)


def test_build_configs_rejects_unknown_fields_and_deduplicates(tmp_path: Path) -> None:
    spec = parse_sweep({"base": {"model": "mlp", "dataset": "digits"}, "grid": {"learning_rate": [0.1]}})
    with pytest.raises(ValueError, match="unknown TrainConfig field.*learning_rate.*valid fields"):
        build_configs(spec)
    # seed listed twice and density given both as 0.1 and as sparsity 0.9: one run each
    spec = parse_sweep(
        {
            "base": {"model": "mlp", "dataset": "digits", "density_scheme": "erk"},
            "grid": [{"seed": [0, 0, 1], "density": [0.1]}, {"seed": [1], "sparsity": [0.9]}],
        }
    )
    configs = build_configs(spec, {"data_dir": "/nowhere"})
    assert [(c.seed, c.density) for c in configs] == [(0, 0.1), (1, 0.1)]
    assert all(c.data_dir == "/nowhere" for c in configs)
    with pytest.raises(ValueError, match="only .* can be overridden"):
        build_configs(spec, {"epochs": 3})


def test_load_sweep_reports_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[base\nmodel = 1")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_sweep(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_sweep(tmp_path / "missing.toml")
    spec = load_sweep(write_tiny(tmp_path))
    assert spec.name == "tiny" and spec.table == "ratios"
    assert len(build_configs(spec)) == 8


# ---------------------------------------------------------------------------------------------- shipped configs


def test_every_experiment_ships_full_and_smoke() -> None:
    assert len(EXPERIMENTS) >= 20
    docs = (ROOT / "docs" / "configs.md").read_text()
    for d in EXPERIMENTS:
        assert (d / "full.toml").is_file(), d
        assert f"configs/{d.name}/" in docs, f"{d.name} is missing from docs/configs.md"


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT / "configs")) for p in SHIPPED])
def test_shipped_config_is_valid(path: Path) -> None:
    """Every run of every shipped sweep builds a TrainConfig whose names exist in the registries."""
    from ertrain.report import TABLES

    spec = load_sweep(path)
    configs = build_configs(spec)
    assert configs, path
    assert spec.table is None or spec.table in TABLES
    for config in configs:
        validate_config(config)
    if path.name == "smoke.toml":
        assert len(configs) <= 12  # a minute on a CPU
        assert all(c.epochs <= 30 for c in configs)
        cpu_sets = {"digits", "synthetic-cifar", "fashion-mnist", "tabular", "modular-addition"}
        assert all(c.dataset in cpu_sets for c in configs)


def test_validate_config_names_the_bad_value() -> None:
    from ertrain.config import TrainConfig

    # registry names are checked when the config is built
    with pytest.raises(ValueError, match="unknown model 'vgg17'; valid names: .*vgg16"):
        TrainConfig(model="vgg17", dataset="digits")
    with pytest.raises(ValueError, match="unknown density scheme 'erk2'"):
        TrainConfig(model="mlp", dataset="digits", density_scheme="erk2", density=0.5)
    # so is the device
    with pytest.raises(ValueError, match="tpu9"):
        TrainConfig(model="mlp", dataset="digits", device="tpu9")


# ---------------------------------------------------------------------------------------------- states


def test_status_counts_from_run_directories(tmp_path: Path) -> None:
    spec = load_sweep(write_tiny(tmp_path))
    configs = build_configs(spec)
    runs = tmp_path / "runs"
    h = [c.run_hash() for c in configs]
    (runs / h[0]).mkdir(parents=True)
    (runs / h[0] / "result.json").write_text("{}")
    (runs / h[1]).mkdir()
    (runs / h[1] / "error.json").write_text(json.dumps({"type": "ValueError", "message": "bad\nthing"}))
    (runs / h[2]).mkdir()
    (runs / h[3]).mkdir()
    (runs / h[3] / "result.json").write_text("{}")
    (runs / h[3] / "error.json").write_text("{}")  # a result wins over a stale error
    states, summary = sweep_status(configs, runs)
    assert [s.state for s in states[:5]] == ["done", "failed", "partial", "done", "new"]
    assert (summary.total, summary.exist, summary.done, summary.remain) == (8, 4, 2, 6)
    assert (summary.failed, summary.partial, summary.new) == (1, 1, 4)
    assert summary.failures[0].error == "ValueError: bad thing"
    assert summarize(states) == summary
    assert run_status("0" * 16, runs).state == "new"


def test_sweep_command_dry_run_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_tiny(tmp_path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "runs"), "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["before"]["total"] == 8 and out["before"]["remain"] == 8
    assert len(out["to_launch"]) == 8
    assert {r["fields"] for r in out["to_launch"]} >= {"density_scheme=erk sparsity=0.5 seed=0"}
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_sweep_command_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_tiny(tmp_path, extra='\n[[bogus]]\nx = 1\n')
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown top-level key" in err
    assert main(["sweep", str(write_tiny(tmp_path)), "--max-parallel", "0"]) == 2


@pytest.mark.slow
def test_smoke_sweep_runs_reports_and_is_not_rerun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A small sweep on CPU with two worker processes; re-running it launches nothing."""
    path = write_tiny(tmp_path)
    runs = tmp_path / "runs"
    assert main(["sweep", str(path), "--out", str(runs), "--max-parallel", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "8 runs: 0 exist, 0 done, 8 remain" in out
    assert "8 runs: 8 exist, 8 done, 0 remain" in out
    results = {p.parent.name: p.read_bytes() for p in runs.glob("*/result.json")}
    assert len(results) == 8
    for run_hash, raw in results.items():
        result = json.loads(raw)
        assert result["run_hash"] == run_hash and 0.0 <= result["test_accuracy"] <= 1.0
    assert main(["sweep", str(path), "--out", str(runs), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["before"]["done"] == 8 and again["to_launch"] == [] and "after" not in again
    assert {p.parent.name: p.read_bytes() for p in runs.glob("*/result.json")} == results
    assert main(["report", str(runs), "--sweep", str(path), "--no-save"]) == 0
    table = capsys.readouterr().out
    assert "| method | density_scheme |" not in table  # constant fields are not row keys
    assert "| density_scheme | protocol | 0.5 | 0.9 |" in table  # the protocol is always shown


# ---------------------------------------------------------------------------------------------- executors


def test_local_executor_one_run_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import queue

    from ertrain import executors
    from ertrain.executors import LocalExecutor, _init_worker, visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_gpus() == ["3", "5"]
    ex = LocalExecutor(max_parallel=8)
    assert (ex.gpus, ex.workers, ex.threads) == (["3", "5"], 2, None)  # never more workers than GPUs
    assert LocalExecutor(max_parallel=1).workers == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    cpu = LocalExecutor(max_parallel=2)
    assert cpu.workers == 2 and cpu.threads == max(1, (os.cpu_count() or 1) // 2)
    assert LocalExecutor().workers == 1
    with pytest.raises(ValueError, match="max_parallel must be >= 1"):
        LocalExecutor(max_parallel=0)
    # each pool worker takes one GPU id from the queue and sees only that device
    slots: queue.Queue[str] = queue.Queue()
    for gpu in ("3", "5"):
        slots.put(gpu)
    seen = []
    died_with: list[int] = []
    monkeypatch.setattr(executors, "_die_with_parent", died_with.append)  # no death signal on the test process
    for _ in range(2):
        _init_worker(slots, None, 4321)
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["3", "5"] and died_with == [4321, 4321]
