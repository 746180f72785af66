"""One front door: every sweep file of configs/ resolves to the same configs (and run names) through the sweep
path as through the ``ertrain train`` flags that spell out the same fields; each field's source is recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ertrain.cli import make_parser
from ertrain.config import SOURCES, TrainConfig, resolve, resolve_args
from ertrain.sweep import build_resolved, load_sweep

ROOT = Path(__file__).resolve().parents[1]
SWEEP_FILES = sorted(p for p in (ROOT / "configs").rglob("*.toml") if p.parent.name != "reproduction")
PARSER = make_parser(("ertrain.commands.train",))


def train_argv(fields: dict[str, Any]) -> list[str]:
    """The ``ertrain train`` command line that gives exactly ``fields`` (a sweep point) as flags."""
    argv = ["train"]
    for name, value in fields.items():
        if name == "method_options":
            argv += _method_flags(str(fields.get("method", "static")), value)
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, dict):
            argv += [flag, json.dumps(value)]
        elif isinstance(value, list | tuple):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, "none" if value is None else repr(value) if isinstance(value, float) else str(value)]
    return argv


def _method_flags(method: str, options: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for key, value in options.items():
        flag = f"--{method}-{key.replace('_', '-')}"
        if isinstance(value, bool):
            out.append(flag if value else f"--no-{method}-{key.replace('_', '-')}")
        elif isinstance(value, list):
            out += [flag, *map(str, value)]
        else:
            out += [flag, str(value)]
    return out


def test_sweep_files_are_found() -> None:
    assert len(SWEEP_FILES) >= 60
    assert any("paper_code" in p.name for p in SWEEP_FILES)


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sweep_and_train_resolve_alike(path: Path) -> None:
    spec = load_sweep(path)
    points = {}
    for fields in spec.assignments():  # the first point of each run name, as the sweep keeps it
        points.setdefault(resolve(fields).run_hash(), fields)
    runs = build_resolved(spec)
    assert [r.run_hash() for r in runs] == list(points)
    for run, fields in zip(runs, points.values(), strict=True):
        via_train = resolve_args(PARSER.parse_args(train_argv(fields)))
        assert via_train.config == run.config, (path.name, fields)
        assert via_train.run_hash() == run.run_hash() == run.config.run_hash()
        assert via_train.sources == run.sources
        assert set(run.sources) == {f for f in run.config.to_dict()} and set(run.sources.values()) <= set(SOURCES)


def test_paper_code_sweep_gets_the_protocols_values() -> None:
    """The sweep of Table 9 under ``paper-code``: the STR path's CIFAR-100 values (batch 256, weight decay 1e-3,
    cosine to 0.01) come from the protocol, not the exact defaults (docs/protocol.md lists them)."""
    runs = build_resolved(load_sweep(ROOT / "configs/t09_resnet50_cifar100_ratios/full_paper_code.toml"))
    erk = next(r for r in runs if r.config.density_scheme == "erk")
    assert (erk.config.batch_size, erk.config.weight_decay, erk.config.lr_min) == (256, 1e-3, 0.01)
    assert erk.sources["batch_size"] == erk.sources["weight_decay"] == erk.sources["lr_min"] == "protocol"
    assert erk.sources["density_scheme"] == erk.sources["protocol"] == "explicit"
    exact = build_resolved(load_sweep(ROOT / "configs/t09_resnet50_cifar100_ratios/full.toml"))[0]
    assert exact.sources["batch_size"] == "explicit" and exact.sources["schedule"] == "recipe"


def test_precedence_by_hand() -> None:
    """explicit > protocol > recipe > default, field by field, dict entries merged."""
    got = resolve({"model": "mlp", "dataset": "digits", "epochs": 2, "density_scheme": "erk", "density": 0.1,
                   "density_options": {"form": "text"}, "protocol": "paper-code"})
    assert got.config.epochs == 2 and got.sources["epochs"] == "explicit"
    assert got.config.batch_size == 64 and got.sources["batch_size"] == "recipe"  # digits-mlp's 64
    assert got.config.recipe == "digits-mlp" and got.sources["recipe"] == "default"
    assert got.config.density_options["form"] == "text" and got.sources["density_options"] == "explicit"
    plain = TrainConfig(model="mlp", dataset="digits")
    none = resolve({"model": "mlp", "dataset": "digits"}, default_recipe=False)
    assert none.config == plain and set(none.sources.values()) == {"explicit", "default"}


@pytest.mark.parametrize(("fields", "message"), [
    ({"density": 0.1}, r"density 0.1 \(sparsity 0.9\) contradicts density_scheme 'dense'"),
    ({"density_options": {"form": "text"}}, "density_options .* contradict density_scheme 'dense'"),
    ({"density_scheme": "dense", "sparsity": 0.9}, "contradicts density_scheme 'dense'"),
    ({"flow_repair": "random_add"}, "flow_repair 'random_add' contradicts density_scheme 'dense'"),
    ({"density": 0.5, "sparsity": 0.5, "density_scheme": "erk"}, "not both"),
    ({"augment": "yes"}, "augment must be bool, got 'yes'"),
    ({"epochs": 1.5}, "epochs must be int"),
    ({"lr": "fast"}, "lr must be float, got 'fast'"),
    ({"nosuch": 1}, r"unknown TrainConfig fields \['nosuch'\]"),
    ({"density": [0.1], "density_scheme": "erk"}, r"density must be float, got \[0.1\]"),
    ({"sparsity": "0.9", "density_scheme": "erk"}, "sparsity must be a number"),
    ({"protocol": 3}, "protocol must be str, got 3"),
])
def test_contradictory_or_malformed_fields_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve({"model": "mlp", "dataset": "digits", **fields})


def test_result_records_what_ran(tmp_path: Path) -> None:
    """result.json holds the resolved config, protocol, recipe, per-layer realised densities (counted here from
    the stored masks), epochs and optimizer steps done (counted from the data size), and the package version."""
    import math

    import ertrain
    from ertrain.data import load_dataset
    from ertrain.runner import load_run, run

    resolved = resolve({"model": "mlp", "dataset": "digits", "density_scheme": "erk", "sparsity": 0.9, "epochs": 2,
                        "device": "cpu"})
    result = run(resolved.config, tmp_path, progress=False)
    assert result["config"] == json.loads(resolved.config.to_json())
    assert (result["protocol"], result["recipe"], result["ertoolkit_version"]) == ("exact", "digits-mlp",
                                                                                  ertrain.__version__)
    n_train = load_dataset("digits", None, seed=0).num_train
    assert result["epochs_done"] == 2 and result["optimizer_steps"] == 2 * math.ceil(n_train / 64)
    _, _, masking, _ = load_run(tmp_path / resolved.run_hash())
    assert masking is not None
    counted = {name: float(mask.sum()) / mask.numel() for name, mask in masking.masks.items()}
    assert result["realised_layer_densities"] == pytest.approx(counted, abs=0.0)
    weights = {name: mask.numel() for name, mask in masking.masks.items()}
    overall = sum(counted[n] * weights[n] for n in counted) / sum(weights.values())
    assert result["density"] == pytest.approx(overall, rel=1e-12)


SWEEP_HEAD = 'name = "bad"\n[base]\nmodel = "mlp"\ndataset = "digits"\ndensity_scheme = "erk"\nepochs = 1\n'


@pytest.mark.parametrize(("tail", "message"), [
    ("[grid]\nsparsity = 0.9\n", "grid values must be arrays; key 'sparsity' has 0.9"),
    ("[grid]\nsparsity = [[0.9]]\n", r"sparsity must be a number in \[0, 1\), got \[0.9\]"),
    ("[grid]\nseed = [\"a\"]\n", "seed must be int, got 'a'"),
    ("[grid]\naugment = [\"yes\"]\n", "augment must be bool, got 'yes'"),
    ("[grid]\nzip = [1, 2]\n", "grid key 'zip' must be an array of tables"),
    ("[grid]\nsparsity = []\n", "a grid axis is empty"),
    ("[grid]\nsparsity = [0.9]\n[slurm]\ntime_min = \"long\"\n", r"\[slurm\]: time_min must be int, got 'long'"),
    ("[grid]\nsparsity = [0.9]\n[slurm]\npartition = [\"a\"]\n", r"\[slurm\]: partition must be str or None"),
    ("[grid]\nsparsity = [0.9]\n[slurm]\ngpus_per_node = true\n", r"\[slurm\]: gpus_per_node must be int, got True"),
    ("[grid]\nsparsity = [0.9]\nnosuch = [1]\n", r"unknown TrainConfig fields \['nosuch'\]"),
    ("[grid]\nsparsity = [0.9]\n[base.x]\n", r"unknown TrainConfig fields \['x'\]"),
])
@pytest.mark.parametrize("dry_run", [True, False])
def test_malformed_sweep_files_are_refused_before_any_work(
    tail: str, message: str, dry_run: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ertrain.cli import main

    sweep = tmp_path / "bad.toml"
    sweep.write_text(SWEEP_HEAD + tail)
    runs = tmp_path / "runs"
    assert main(["sweep", str(sweep), "--out", str(runs), "--json", *(["--dry-run"] if dry_run else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(sweep) in err
    assert re.search(message, err), err
    assert not runs.exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--density-scheme", "dense", "--sparsity", "0.9"], r"density 0.1 \(sparsity 0.9\) contradicts"),
    (["--flow-repair", "random_add"], "flow_repair 'random_add' contradicts density_scheme 'dense'"),
    (["--density-options", '{"form": "text"}'], "contradict density_scheme 'dense'"),
    (["--density-scheme", "erk"], "needs --density or --sparsity"),
    (["--sparsity", "0.9", "--rigl-update-every", "5"], "--rigl-update-every given but --method is 'static'"),
    (["--sparsity", "0.9", "--batch-size", "0"], "batch_size must be an integer >= 1"),
])
def test_contradictory_train_flags_are_refused_with_one_line(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ertrain.cli import main

    out = tmp_path / "runs"
    assert main(["train", "--model", "mlp", "--dataset", "digits", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(message, err), err
    assert not out.exists()


def test_dry_run_lists_missing_data_instead_of_refusing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CIFAR sweep can be inspected before the data is downloaded: the data folder is named as missing."""
    from ertrain.cli import main

    sweep = ROOT / "configs/t09_resnet50_cifar100_ratios/full_paper_code.toml"
    empty = tmp_path / "no-data"
    empty.mkdir()
    args = ["sweep", str(sweep), "--out", str(tmp_path / "runs"), "--data-dir", str(empty), "--json"]
    assert main([*args, "--dry-run"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [m["dataset"] for m in report["missing_data"]] == ["cifar100"]
    assert report["missing_data"][0]["data_dir"] == str(empty)
    assert len(report["runs"]) == report["before"]["total"] > 0
    assert all(r["config"]["data_dir"] == str(empty) and r["sources"]["data_dir"] == "explicit"
               for r in report["runs"])
    assert main(args) == 2 and "cifar100" in capsys.readouterr().err  # a real launch refuses
    assert not (tmp_path / "runs").exists()


def test_the_docs_dry_run_excerpts_are_what_the_resolver_gives() -> None:
    """docs/configs.md shows, for a paper-code and a recipe-driven sweep, what the dry run lists (regenerated)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("config_excerpts", ROOT / "scripts" / "config_excerpts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "docs" / "configs.md").read_text()
    assert module.updated(text) == text, "docs/configs.md is out of date: run python3 scripts/config_excerpts.py"
    first = module.excerpt("configs/t09_resnet50_cifar100_ratios/full_paper_code.toml")
    assert first["sources"]["batch_size"] == "protocol" and first["config"]["batch_size"] == 256
    recipe = module.excerpt("configs/widening_mlp_fashion_mnist/smoke.toml")
    assert recipe["config"]["recipe"] == "fashion-mnist-mlp" and recipe["sources"]["val_fraction"] == "recipe"


@pytest.mark.parametrize("variant", ["quick", "cpu"])  # `full` needs the CIFAR-10 files to size its models
def test_study_arms_resolve_as_ertrain_train_does(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every field set the reproduction study asks for resolves to the same config through ``ertrain train``."""
    from studies.reproduction import design as design_module
    from studies.reproduction.arms import build_arms

    asked: list[tuple[dict[str, Any], Any]] = []
    real = design_module.resolve

    def spy(fields: dict[str, Any], **kwargs: Any) -> Any:
        resolved = real(fields, **kwargs)
        asked.append((dict(fields), resolved))
        return resolved

    monkeypatch.setattr(design_module, "resolve", spy)
    build_arms(design_module.load_design(variant), {})
    assert len(asked) > 50
    for fields, resolved in asked:
        via_train = resolve_args(PARSER.parse_args(train_argv(fields)))
        assert via_train.config == resolved.config and via_train.sources == resolved.sources, fields


@pytest.mark.parametrize("path", SWEEP_FILES[::4], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_two_commands_print_the_same_object(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ertrain sweep FILE --dry-run --json`` and ``ertrain train ... --print-config`` show one object per run
    (the commands end to end on every fourth file, first 8 runs each; every file and run goes through the
    resolver's two roads in :func:`test_sweep_and_train_resolve_alike`)."""
    from ertrain.cli import main

    assert main(["sweep", str(path), "--dry-run", "--json", "--out", str(tmp_path / "runs")]) == 0
    listed = json.loads(capsys.readouterr().out)["runs"]
    points = {}
    for fields in load_sweep(path).assignments():
        points.setdefault(resolve(fields).run_hash(), fields)
    assert [r["run_hash"] for r in listed] == list(points)
    for entry, fields in zip(listed[:8], points.values(), strict=False):
        assert main([*train_argv(fields), "--print-config"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed.pop("sources") == entry["sources"] and printed.pop("run_hash") == entry["run_hash"]
        assert printed == entry["config"]
    assert not (tmp_path / "runs").exists()


def test_dry_run_needs_no_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep for CUDA can be inspected on a machine without one; launching it there is refused."""
    import torch

    from ertrain.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: nothing to refuse")
    sweep = tmp_path / "gpu.toml"
    sweep.write_text('name = "gpu"\n[base]\nmodel = "mlp"\ndataset = "digits"\ndevice = "cuda"\nepochs = 1\n'
                     "[grid]\nseed = [0, 1]\n")
    runs = tmp_path / "runs"
    assert main(["sweep", str(sweep), "--dry-run", "--json", "--out", str(runs)]) == 0
    listed = json.loads(capsys.readouterr().out)["runs"]
    assert [r["config"]["device"] for r in listed] == ["cuda", "cuda"]
    assert main(["sweep", str(sweep), "--out", str(runs)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err and not runs.exists()


def test_top_level_keys_of_a_sweep_file_are_strings(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = 3\n[base]\nmodel = "mlp"\ndataset = "digits"\n')
    with pytest.raises(ValueError, match="top-level key 'name' must be a string, got 3"):
        load_sweep(path)


def test_sweep_out_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ertrain.cli import main

    sweep = tmp_path / "ok.toml"
    sweep.write_text(SWEEP_HEAD + "[grid]\nsparsity = [0.9]\n")
    target = tmp_path / "afile"
    target.write_text("x")
    assert main(["sweep", str(sweep), "--out", str(target), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip().count("\n") == 0 and "is a file" in captured.err
