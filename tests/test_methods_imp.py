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


def test_code_levels_with_no_op_cycles_against_the_codes_pruning() -> None:
    """STR/run_imp.py levels 0.3 * 0.8^l, l = 1..15, each applied by the code's prune_mag (kthvalue threshold).

    From paper-code balanced 0.3's realised start 0.1897 the first two levels (0.24, 0.192) are above the
    kept count and prune nothing; the 13 others prune, ending at 0.3 * 0.8^15 = 0.01055.
    """
    from ertrain.methods.imp import code_cycle_targets

    total, start = 100_000, 18_970
    rng = np.random.default_rng(0)
    scores = np.zeros(total)
    scores[rng.choice(total, start, replace=False)] = rng.uniform(0.1, 1.0, start)
    levels = int((np.log(0.01) - np.log(0.3)) / np.log(0.8))  # the script's L
    assert levels == 15
    kept = [start]
    for d in 0.3 * 0.8 ** np.arange(1, levels + 1):
        t = torch.from_numpy(scores)
        k = int((1 - d) * total)
        threshold = torch.kthvalue(t, k).values
        scores = np.where(scores <= float(threshold), 0.0, scores)
        kept.append(int((scores > 0).sum()))
    assert code_cycle_targets(start, total, 0.2, 0, 0.01, 0.3) == kept
    assert kept[1] == kept[2] == start and all(b < a for a, b in zip(kept[2:], kept[3:], strict=False))
    assert len(kept) - 1 - 2 == 13 and abs(kept[-1] / total - 0.3 * 0.8**15) < 1e-5
    assert abs(kept[-1] / total - 0.01055) < 1e-5


def test_imp_level_start_density_trains_the_no_op_cycles(digits: DataBundle) -> None:
    cfg = TrainConfig(model="mlp", dataset="digits", epochs=1, method="imp", density_scheme="uniform", density=0.2,
                      model_options={"hidden": [64]},
                      method_options={"final_density": 0.1, "level_start_density": 0.3, "prune_fraction": 0.2})
    tr = Trainer.from_config(cfg, device="cpu", data=digits, progress=False)
    out = METHODS["imp"].from_config(cfg).run(tr)
    total = tr.masking.numel() if tr.masking is not None else 0
    # levels 0.24, 0.192, 0.1536, 0.12288 (L = int(log(1/3) / log(0.8)) = 4); the first is above the start
    nnz = [c["nnz"] for c in out["cycles"]]
    start = nnz[0]
    expected = [start]
    for d in (0.24, 0.192, 0.1536, 0.12288):
        expected.append(min(expected[-1], total - int((1 - d) * total)))
    assert nnz == expected and nnz[1] == start
    assert tr.masking is not None and tr.masking.nnz() == expected[-1]
