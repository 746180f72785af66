"""IMP: exact per-cycle densities 0.8^k of the start, pruned weights stay zero, beats chance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ertrain.config import TrainConfig
from ertrain.data import DataBundle, load_dataset
from ertrain.methods import METHODS
from ertrain.methods.imp import cycle_targets
from ertrain.methods.maskops import magnitude_prune
from ertrain.trainer import Trainer


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset("digits", None)


def make_trainer(data: DataBundle, **kw: object) -> Trainer:
    base: dict[str, object] = dict(model="mlp", dataset="digits", epochs=2, lr=0.1, weight_decay=1e-4,
                                   model_options={"hidden": [64, 32]}, method="imp")
    base.update(kw)
    cfg = TrainConfig(**base)  # type: ignore[arg-type]
    return Trainer.from_config(cfg, device="cpu", data=data, progress=False)


@pytest.mark.parametrize(
    ("start", "total", "frac", "cycles", "final", "expected"),
    [
        (1000, 1000, 0.2, 3, 0.0, [1000, 800, 640, 512]),
        (500, 1000, 0.2, 2, 0.0, [500, 400, 320]),
        (1000, 1000, 0.2, 0, 0.3, [1000, 800, 640, 512, 410, 328, 300]),
        (1000, 1000, 0.5, 0, 0.25, [1000, 500, 250]),
    ],
)
def test_cycle_targets(start: int, total: int, frac: float, cycles: int, final: float, expected: list[int]) -> None:
    assert cycle_targets(start, total, frac, cycles, final) == expected


def test_cycle_targets_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="prune_fraction"):
        cycle_targets(10, 10, 1.0, 1, 0.0)
    with pytest.raises(ValueError, match="final_density"):
        cycle_targets(500, 1000, 0.2, 1, 0.6)


def test_magnitude_prune_global_and_layerwise_brute_force() -> None:
    g = torch.Generator().manual_seed(3)
    weights = [torch.randn(6, 5, generator=g), torch.randn(4, 6, generator=g)]
    masks = [torch.rand(6, 5, generator=g) < 0.7, torch.rand(4, 6, generator=g) < 0.7]
    nnz = sum(int(m.sum()) for m in masks)
    keep = nnz // 2
    new = magnitude_prune(weights, masks, keep, "global")
    kept_vals = np.sort(np.concatenate([w[m].abs().numpy() for w, m in zip(weights, masks, strict=True)]))[::-1]
    threshold = kept_vals[keep - 1]
    assert sum(int(m.sum()) for m in new) == keep
    for w, m, n in zip(weights, masks, new, strict=True):
        assert not (n & ~m).any()
        assert (w[n].abs() >= threshold).all()
    per_layer = magnitude_prune(weights, masks, keep, "layerwise")
    assert sum(int(m.sum()) for m in per_layer) == keep
    for w, m, n in zip(weights, masks, per_layer, strict=True):
        # the same fraction of each layer (to one weight), the largest of the layer
        assert abs(int(n.sum()) - int(m.sum()) * keep / nnz) < 1
        assert w[n].abs().min() >= w[m & ~n].abs().max()


def test_imp_dense_start_cycles(digits: DataBundle) -> None:
    tr = make_trainer(digits, method_options={"cycles": 2})
    method = METHODS["imp"].from_config(tr.config)
    out = method.run(tr)
    assert tr.masking is not None
    total = tr.masking.numel()
    for k, rec in enumerate(out["cycles"]):
        assert rec["nnz"] == round(total * 0.8**k)  # density 0.8^k of the (dense) start
    assert tr.masking.nnz() == round(total * 0.64)
    masks = [m for m in method.cycle_masks]
    for prev, cur in zip(masks, masks[1:], strict=False):
        assert all(not (cur[n] & ~prev[n]).any() for n in cur)  # nested: pruned stays pruned
    for name, module in tr.masking.layers.items():
        assert (module.weight[~tr.masking.masks[name]] == 0).all()
    assert tr.evaluate()["accuracy"] > 0.6
    assert out["mask_changes"] == total - round(total * 0.64)
    assert 0.64 <= out["training_flops"] <= 1.0


def test_imp_er_start_final_density_and_rewind_epoch(digits: DataBundle) -> None:
    tr = make_trainer(digits, density_scheme="uniform", density=0.5,
                      method_options={"final_density": 0.3, "prune_fraction": 0.2, "rewind": "epoch",
                                      "rewind_epoch": 1, "scope": "layerwise"})
    assert tr.masking is not None
    start = {n: m.clone() for n, m in tr.masking.masks.items()}
    n0 = tr.masking.nnz()
    out = METHODS["imp"].from_config(tr.config).run(tr)
    total = tr.masking.numel()
    assert tr.masking.nnz() == round(0.3 * total)
    assert [r["nnz"] for r in out["cycles"]][:3] == [n0, round(n0 * 0.8), round(n0 * 0.64)]
    assert all(not (tr.masking.masks[n] & ~start[n]).any() for n in start)
    assert out["final_density"] == pytest.approx(round(0.3 * total) / total)
    assert tr.evaluate()["accuracy"] > 0.5
