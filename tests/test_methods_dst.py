"""RiGL / SET: every update preserves each layer's non-zeros; drop/grow choose the right entries."""

from __future__ import annotations

import math

import pytest
import torch

from ertrain.config import TrainConfig
from ertrain.data import DataBundle, load_dataset
from ertrain.flops import inference_flops_ratio
from ertrain.methods import METHODS
from ertrain.methods.dst import drop_fraction, gradual_target
from ertrain.methods.maskops import update_mask
from ertrain.trainer import Trainer


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset("digits", None)


def make_trainer(data: DataBundle, **kw: object) -> Trainer:
    base: dict[str, object] = dict(model="mlp", dataset="digits", epochs=5, lr=0.1, weight_decay=1e-4,
                                   model_options={"hidden": [128, 64]}, density_scheme="erk", density=0.3)
    base.update(kw)
    cfg = TrainConfig(**base)  # type: ignore[arg-type]
    return Trainer.from_config(cfg, device="cpu", data=data, progress=False)


def test_drop_fraction_cosine() -> None:
    assert drop_fraction(0, 0.5, 100) == pytest.approx(0.5)
    assert drop_fraction(50, 0.5, 100) == pytest.approx(0.25)
    assert drop_fraction(100, 0.5, 100) == 0.0
    assert drop_fraction(25, 0.4, 100) == pytest.approx(0.2 * (1 + math.cos(math.pi / 4)))
    assert gradual_target(0, 100, 1000, 100) == 1000
    assert gradual_target(50, 100, 1000, 100) == round(100 + 900 / 8)
    assert gradual_target(100, 100, 1000, 100) == 100


def test_update_mask_by_hand() -> None:
    w = torch.tensor([[0.5, -0.1, 0.0, 0.0], [0.3, 0.0, -0.2, 0.0]])
    mask = torch.tensor([[True, True, False, False], [True, False, True, False]])
    grad = torch.tensor([[0.0, 0.0, 0.9, -0.1], [0.0, -0.8, 0.0, 0.05]])
    # drop round(0.5 * 4) = 2 of smallest |w| among kept: -0.1 and -0.2; grow 2 largest |grad| elsewhere
    new, changed = update_mask(w, mask, 0.5, grad=grad)
    assert new.tolist() == [[True, False, True, False], [True, True, False, False]]
    assert changed == 2
    gen = torch.Generator().manual_seed(0)
    rand, _ = update_mask(w, mask, 0.5, generator=gen)
    assert int(rand.sum()) == 4 and bool(rand[0, 0]) and bool(rand[1, 0])


@pytest.mark.parametrize("seed", range(5))
def test_update_mask_preserves_nnz(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(7, 9, generator=g)
    mask = torch.rand(7, 9, generator=g) < 0.4
    for frac in (0.0, 0.3, 1.0):
        new, _ = update_mask(w, mask, frac, grad=torch.randn(7, 9, generator=g))
        assert int(new.sum()) == int(mask.sum())
        new, _ = update_mask(w, mask, frac, generator=g)
        assert int(new.sum()) == int(mask.sum())


@pytest.mark.parametrize("method", ["rigl", "set"])
def test_dst_run_preserves_layer_nnz(digits: DataBundle, method: str) -> None:
    tr = make_trainer(digits, method=method, method_options={"update_every": 5})
    assert tr.masking is not None
    start = {n: int(m.sum()) for n, m in tr.masking.masks.items()}
    out = METHODS[method].from_config(tr.config).run(tr)
    assert {n: int(m.sum()) for n, m in tr.masking.masks.items()} == start
    assert out["mask_updates"] > 0 and out["mask_changes"] > 0
    assert all(u["nnz"] == sum(start.values()) for u in out["update_log"])
    for name, module in tr.masking.layers.items():
        assert (module.weight[~tr.masking.masks[name]] == 0).all()
    assert tr.evaluate()["accuracy"] > 0.5
    f_s = out["inference_flops"]
    steps, updates = out["train_steps"], out["mask_updates"]
    expected = f_s if method == "set" else (3 * f_s * (steps - updates) + updates * (2 * f_s + 1)) / (3 * steps)
    assert out["training_flops"] == pytest.approx(expected)
    assert f_s == pytest.approx(inference_flops_ratio([64 * 128, 128 * 64, 64 * 10],
                                                      list(out["layer_densities"].values())))


def test_rigl_dense_start_reaches_final_density(digits: DataBundle) -> None:
    tr = make_trainer(digits, method="rigl", density_scheme="dense", density=1.0,
                      method_options={"update_every": 4, "final_density": 0.1})
    out = METHODS["rigl"].from_config(tr.config).run(tr)
    assert tr.masking is not None
    assert tr.masking.nnz() == round(0.1 * tr.masking.numel())
    assert out["start_density"] == 1.0
    assert tr.evaluate()["accuracy"] > 0.5


def test_dense_start_without_final_density_raises(digits: DataBundle) -> None:
    tr = make_trainer(digits, method="set", density_scheme="dense", density=1.0)
    with pytest.raises(ValueError, match="final-density"):
        METHODS["set"].from_config(tr.config).run(tr)


@pytest.mark.parametrize("seed", range(6))
def test_drop_and_grow_matches_brute_force(seed: int) -> None:
    """Any drop and grow scores: the k kept entries of smallest drop score go, the k free entries (after the
    drop) of largest grow score come (numpy selection; distinct scores so the choice is unique)."""
    import numpy as np

    from ertrain.methods.maskops import drop_and_grow, regrow_count

    g = torch.Generator().manual_seed(seed)
    shape = (int(torch.randint(2, 9, (1,), generator=g)), int(torch.randint(2, 9, (1,), generator=g)))
    n = shape[0] * shape[1]
    mask = torch.rand(shape, generator=g) < 0.5
    drop = torch.randperm(n, generator=g).reshape(shape).float()
    grow = torch.randperm(n, generator=g).reshape(shape).double()
    k = regrow_count(mask, float(torch.rand((), generator=g)))
    new, changed = drop_and_grow(mask, k, drop, grow)
    m = mask.reshape(-1).numpy().copy()
    kept = np.flatnonzero(m)
    m[kept[np.argsort(drop.reshape(-1).numpy()[kept])[:k]]] = False
    free = np.flatnonzero(~m)
    m[free[np.argsort(-grow.reshape(-1).numpy()[free])[:k]]] = True
    assert np.array_equal(new.reshape(-1).numpy(), m)
    assert changed == int((new & ~mask).sum())
    assert int(new.sum()) == int(mask.sum())
