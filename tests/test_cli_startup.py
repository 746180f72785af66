"""Start-up of ``ertrain densities``: it imports only what it computes with, scans the entry points once, and
builds the models it only measures without memory or initialisation."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from typing import Any

import pytest
import torch

import ertrain.registry as registry_mod
from ertrain.cli import COMMANDS, commands_for, main
from ertrain.density_table import DensityRequest, density_report
from ertrain.models import MODELS, build_model, layer_weight, maskable_layers, shapes_only
from ertrain.registry import Registry

#: Modules ``ertrain densities`` has no use for (torch itself brings tqdm and zipfile, so those are not listed).
UNNEEDED = ("scipy", "pandas", "matplotlib", "sympy", "torch._dynamo", "tomllib", "ertrain.commands.train",
            "ertrain.commands.sweep", "ertrain.config", "ertrain.methods", "ertrain.data", "ertrain.sweep",
            "ertrain.executors", "ertrain.recipes", "ertrain.trainer")


@pytest.mark.parametrize("argv", [
    ["densities", "--model", "vgg16", "--density-scheme", "balanced", "--sparsity", "0.9"],
    ["--debug", "densities", "--model", "resnet18", "--density-scheme", "erk", "--sparsity", "0.99", "--json",
     "--protocol", "paper-code"],
])
def test_densities_imports_no_unneeded_module(argv: list[str]) -> None:
    code = (
        "import sys\nfrom ertrain.cli import main\nrc = main(sys.argv[1:])\n"
        f"found = sorted(m for m in sys.modules if any(m == u or m.startswith(u + '.') for u in {UNNEEDED!r}))\n"
        "print('UNNEEDED', found)\nsys.exit(rc)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "UNNEEDED []" in res.stdout


def test_commands_for_registers_the_named_command_alone() -> None:
    assert commands_for(["densities", "--model", "vgg16"]) == ("ertrain.commands.densities",)
    assert commands_for(["--debug", "train", "--model", "mlp"]) == ("ertrain.commands.train",)
    assert commands_for(["--help"]) == COMMANDS
    assert commands_for([]) == COMMANDS
    assert commands_for(["densitie"]) == COMMANDS  # a misspelt command: the error lists every command


def test_help_lists_every_command_and_a_misspelt_command_names_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name.rsplit(".", 1)[-1] in out for name in COMMANDS)
    assert main(["densitie"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'densitie'" in err and all(n.rsplit(".", 1)[-1] in err for n in COMMANDS)


def test_registries_share_one_scan_of_the_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real = metadata.entry_points

    def counted(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", counted)
    registry_mod._entry_points.cache_clear()
    try:
        first: Registry[Any] = Registry("startup_test_a")
        second: Registry[Any] = Registry("startup_test_b")
        assert first.names() == [] and second.names() == []
        assert len(calls) == 1
        monkeypatch.syspath_prepend("/nonexistent-startup-test")  # a new path: a new scan
        assert Registry("startup_test_c").names() == [] and len(calls) == 2
    finally:
        registry_mod._entry_points.cache_clear()


def _shapes(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(layer_weight(m).shape)) for n, m in maskable_layers(model)]


@pytest.mark.parametrize("name", MODELS.names())
def test_shapes_only_models_have_the_layers_of_real_ones(name: str) -> None:
    kwargs: dict[str, Any] = {"num_classes": 10, "in_features": 64} if name in ("mlp", "gcn") else {"num_classes": 10}
    with shapes_only():
        meta = build_model(name, **kwargs)
    real = build_model(name, **kwargs)
    assert all(p.is_meta for p in meta.parameters()) and not any(p.is_meta for p in real.parameters())
    assert _shapes(meta) == _shapes(real)
    assert [p.shape for p in meta.parameters()] == [p.shape for p in real.parameters()]


def test_shapes_only_skips_value_fills_of_meta_tensors_alone() -> None:
    with shapes_only():
        t = torch.empty(3, 4)
        assert t.normal_() is t and t.is_meta
        assert t.t_().shape == (4, 3)  # a shape change still happens
        u = torch.ones(2)
    assert u.is_meta
    real = torch.zeros(2)
    with shapes_only():
        real.add_(1)  # a real tensor in the block still computes
    assert real.tolist() == [1.0, 1.0]


def test_the_initialisers_of_torch_nn_init_leave_meta_tensors_alone() -> None:
    from torch import nn

    names = sorted(n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_") and n != "eye_")
    assert len(names) >= 10
    extra = {"constant_": {"val": 0.5}, "sparse_": {"sparsity": 0.5}}
    with shapes_only():
        for name in names:
            w = torch.empty(4, 4, 3, 3) if name == "dirac_" else torch.empty(6, 6)
            assert getattr(nn.init, name)(w, **extra.get(name, {})) is w, name
            assert getattr(nn.init, name)(tensor=w, **extra.get(name, {})) is w, name


def test_report_built_without_memory_equals_one_from_a_real_model() -> None:
    """Shapes, densities and seeded masks of the report against the same steps on a model built on the CPU."""
    from ertrain.density import layer_densities
    from ertrain.masks import sample_er_masks

    out = density_report(DensityRequest(model="resnet20", density_scheme="balanced", density=0.05, seed=3,
                                        model_kwargs={"num_classes": 10}))
    shapes = [s for _, s in _shapes(build_model("resnet20", num_classes=10))]
    assert [tuple(layer["shape"]) for layer in out["layers"]] == shapes
    p = layer_densities("balanced", shapes, 0.05)
    assert [layer["density"] for layer in out["layers"]] == p.tolist()
    masks = sample_er_masks(shapes, p, torch.Generator().manual_seed(3))
    assert out["realised_density"] == sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
