"""The curated public API of both packages: every name in ``__all__`` resolves, and the documented imports work."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ertheory
import ertrain


@pytest.mark.parametrize("package", [ertheory, ertrain])
def test_every_public_name_resolves(package: object) -> None:
    for name in package.__all__:  # type: ignore[attr-defined]
        assert getattr(package, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        package.nosuch  # type: ignore[attr-defined]  # noqa: B018


def test_the_documented_imports() -> None:
    from ertheory import theorem_2_1
    from ertrain import Masking, TrainConfig, build_model, layer_densities, load_dataset, train
    from ertrain.masks import Masking as MaskingDirect
    from ertrain.runner import run

    assert train is run and Masking is MaskingDirect and callable(build_model) and callable(load_dataset)
    assert layer_densities("balanced", [(10, 20), (20, 30)], 0.5).shape == (2,)
    assert TrainConfig(model="mlp", dataset="digits").run_hash()
    assert theorem_2_1(784, 128, 10, density=0.1, delta=0.001).widths.shape[-1] == 3


def test_train_is_the_function_even_after_the_trainer_module_is_imported() -> None:
    code = "import ertrain.trainer, ertrain; from ertrain import train; print(train.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ertrain.runner"


def test_importing_the_packages_loads_no_heavy_module() -> None:
    code = ("import sys, ertheory, ertrain; "
            "print(' '.join(m for m in ('torch', 'scipy', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
