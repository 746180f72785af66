"""An interrupted run of every method resumes from its checkpoint to the same result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import ertrain.rundir as rundir_mod
from ertrain import runner
from ertrain.config import TrainConfig

# (method, start scheme, start density, options, checkpoint after which the run is stopped)
CASES: list[tuple[str, str, float, dict[str, Any], int]] = [
    ("imp", "dense", 1.0, {"cycles": 1, "rewind": "epoch", "rewind_epoch": 1}, 2),  # between two cycles
    ("rigl", "dense", 1.0, {"update_every": 3, "final_density": 0.3}, 1),  # masks live in the method's state
    ("set", "erk", 0.3, {"update_every": 5}, 2),
    ("str", "uniform", 0.5, {"s_init": -5.0, "s_weight_decay": 0.02}, 3),  # after the final checkpoint
    ("edgepopup", "dense", 1.0, {"final_density": 0.3, "levels": 2}, 3),  # inside the second level
]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize(("method", "scheme", "density", "options", "stop"), CASES)
def test_resume_matches_uninterrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, scheme: str, density: float,
    options: dict[str, Any], stop: int,
) -> None:
    cfg = TrainConfig(model="mlp", dataset="digits", epochs=2, lr=0.1, weight_decay=1e-4, method=method,
                      density_scheme=scheme, density=density, method_options=options,
                      model_options={"hidden": [32, 16]})
    reference = runner.run(cfg, tmp_path / "a", progress=False)
    real_save = rundir_mod.save_checkpoint
    calls = {"n": 0}

    def save_then_stop(run_dir: Path, state: dict[str, Any], run_hash: str | None = None) -> Path:
        path = real_save(run_dir, state, run_hash)
        calls["n"] += 1
        if calls["n"] == stop:
            raise Interrupt
        return path

    monkeypatch.setattr(rundir_mod, "save_checkpoint", save_then_stop)
    with pytest.raises(Interrupt):
        runner.run(cfg, tmp_path / "b", progress=False)
    monkeypatch.setattr(rundir_mod, "save_checkpoint", real_save)
    resumed = runner.run(cfg, tmp_path / "b", progress=False)
    for key in ("test_accuracy", "test_loss", "density", "layer_densities", "mask_changes", "epochs_done"):
        assert resumed[key] == reference[key], key
    _, model_a, mask_a, _ = runner.load_run(tmp_path / "a" / cfg.run_hash())
    _, model_b, mask_b, _ = runner.load_run(tmp_path / "b" / cfg.run_hash())
    assert mask_a is not None and mask_b is not None
    assert all((mask_a.masks[n] == mask_b.masks[n]).all() for n in mask_a.masks)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    assert all((sa[k] == sb[k]).all() for k in sa)
