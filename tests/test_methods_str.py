"""STR: soft threshold by hand; from an ER start the pruned entries stay pruned; density reported."""

from __future__ import annotations

import math

import pytest
import torch

from ertrain.config import TrainConfig
from ertrain.data import DataBundle, load_dataset
from ertrain.methods import METHODS
from ertrain.methods._reparam import SoftThreshold
from ertrain.trainer import Trainer


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset("digits", None)


def test_soft_threshold_by_hand() -> None:
    s = math.log(0.2 / 0.8)  # sigmoid(s) = 0.2
    p = SoftThreshold(s, torch.tensor([True, True, True, False]))
    out = p(torch.tensor([0.5, -0.3, 0.1, 0.9]))
    assert torch.allclose(out, torch.tensor([0.3, -0.1, 0.0, 0.0]))
    out.sum().backward()
    # d/ds of sign(w)(|w| - g(s)) = -sign(w) g'(s) on active entries: (-1 + 1) * 0.16 = 0
    assert p.s.grad is not None and abs(float(p.s.grad)) < 1e-7


@pytest.mark.parametrize(("scheme", "density"), [("dense", 1.0), ("balanced", 0.5)])
def test_str_run(digits: DataBundle, scheme: str, density: float) -> None:
    cfg = TrainConfig(model="mlp", dataset="digits", epochs=6, lr=0.1, weight_decay=1e-4, method="str",
                      model_options={"hidden": [128, 64]}, density_scheme=scheme, density=density,
                      method_options={"s_init": -5.0, "s_weight_decay": 0.02})
    tr = Trainer.from_config(cfg, device="cpu", data=digits, progress=False)
    start = None if tr.masking is None else {n: m.clone() for n, m in tr.masking.masks.items()}
    out = METHODS["str"].from_config(cfg).run(tr)
    masking = tr.masking
    assert masking is not None
    weights = {n: m.weight.detach() for n, m in masking.layers.items()}
    nnz = sum(int((w != 0).sum()) for w in weights.values())
    assert masking.nnz() == nnz  # the mask is exactly the support of the thresholded weights
    assert out["final_density"] == pytest.approx(nnz / masking.numel())
    assert out["final_density"] < density
    if start is not None:
        assert all(not (masking.masks[n] & ~start[n]).any() for n in start)
    assert [p.requires_grad for p in tr.model.parameters()] == [True] * len(list(tr.model.parameters()))
    assert "parametrizations" not in "".join(tr.model.state_dict())
    assert tr.evaluate()["accuracy"] > 0.6
