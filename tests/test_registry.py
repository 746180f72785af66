"""The generic registry: duplicates, unknown names, completeness from any import, entry points, extension."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ertrain.density import DENSITY_SCHEMES, layer_densities, register_density_scheme
from ertrain.registry import DuplicateNameError, Registry, UnknownNameError


def test_duplicates_and_unknown_names_are_errors() -> None:
    reg: Registry[int] = Registry("things")
    reg.register("a", 1)
    with pytest.raises(DuplicateNameError, match="'a' is already registered"):
        reg.register("a", 2)
    with pytest.raises(UnknownNameError, match="unknown thing 'b'; valid names: a"):
        reg["b"]
    assert "a" in reg and list(reg) == ["a"] and len(reg) == 1 and reg["a"] == 1


@dataclass(frozen=True)
class _ToyOptions:
    scale: float = 1.0
    layers: tuple[int, ...] = ()


def test_options_are_validated_and_canonical_drops_defaults() -> None:
    reg: Registry[object] = Registry("things")
    entry_obj = object()
    reg.register("t", entry_obj, options=_ToyOptions, needs="model", help="toy")
    entry = reg.entry("t")
    assert entry.needs == "model" and entry.help == "toy"
    with pytest.raises(ValueError, match=r"unknown options \['sclae'\] for 't'; valid: \['scale', 'layers'\]"):
        entry.make_options({"sclae": 2.0})
    # written-out defaults and left-out defaults are the same canonical options (JSON lists == tuples)
    assert entry.canonical_options({"scale": 1.0, "layers": []}) == {}
    assert entry.canonical_options({"scale": 2.0}) == {"scale": 2.0}


def test_a_new_density_scheme_is_one_function_and_one_registration() -> None:
    @register_density_scheme("toy-first-dense", help="first layer dense, the rest uniform")
    def toy(shapes: list[tuple[int, ...]], density: float) -> np.ndarray:
        m = np.array([float(np.prod(s)) for s in shapes])
        rest = (density * m.sum() - m[0]) / m[1:].sum()
        return np.concatenate([[1.0], np.full(len(shapes) - 1, rest)])

    try:
        p = layer_densities("toy-first-dense", [(10, 10), (10, 30)], 0.5)
        # by hand: budget 0.5 * 400 = 200 weights; 100 in layer 1, so layer 2 keeps 100 / 300
        assert p.tolist() == pytest.approx([1.0, 1 / 3])
    finally:
        DENSITY_SCHEMES.unregister("toy-first-dense")


@pytest.mark.parametrize("module", ["ertrain.density", "ertrain.scores", "ertrain.config"])
def test_importing_any_module_alone_gives_every_scheme(module: str) -> None:
    code = f"import {module}, ertrain.density as d; print(','.join(d.DENSITY_SCHEMES.names()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names = set(out.strip().split(","))
    assert {"dense", "uniform", "erk", "balanced", "pyramidal", "from_scores", "snip", "synflow", "imp"} <= names


def test_an_outside_package_adds_a_scheme_through_an_entry_point(tmp_path: Path) -> None:
    """A tiny distribution (a module and its dist-info with an entry point) on sys.path, in a fresh interpreter."""
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "toy_schemes.py").write_text(textwrap.dedent("""
        import numpy as np
        from ertrain.density import register_density_scheme

        @register_density_scheme("toy-half", help="half the budget in each of two layers")
        def half(shapes, density):
            return np.full(len(shapes), density)
    """))
    info = pkg / "toy_schemes-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-schemes\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ertrain.density_schemes]\ntoy = toy_schemes\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import ertrain.density as d, json; "
            "print(json.dumps([d.DENSITY_SCHEMES.names(), d.layer_densities('toy-half', [(2, 3), (3, 4)], 0.25)"
            ".tolist()]))")
    out = subprocess.run([sys.executable, "-c", code, str(pkg)], capture_output=True, text=True, check=True).stdout
    names, densities = json.loads(out)
    assert "toy-half" in names and "balanced" in names
    assert densities == [0.25, 0.25]
