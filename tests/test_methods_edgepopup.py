"""Edge-popup: exact final density, the random weights never change, beats chance; annealing counts."""

from __future__ import annotations

import pytest
import torch

from ertrain.config import TrainConfig
from ertrain.data import DataBundle, load_dataset
from ertrain.methods import METHODS
from ertrain.methods._reparam import ScoredWeight
from ertrain.methods.edgepopup import level_counts
from ertrain.trainer import Trainer


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset("digits", None)


def test_level_counts_geometric() -> None:
    # d0 = 1, d_f = 0.125, three levels: 0.5, 0.25, 0.125 of 800
    assert level_counts(800, 800, 0.125, 3) == [400, 200, 100]
    assert level_counts(400, 800, 0.125, 2) == [200, 100]
    with pytest.raises(ValueError, match="above the start"):
        level_counts(100, 800, 0.5, 2)


def test_scored_weight_topk_and_straight_through() -> None:
    scores = torch.tensor([[0.1, -0.9, 0.5], [0.7, 0.2, -0.3]])
    cand = torch.tensor([[True, True, True], [False, True, True]])
    p = ScoredWeight(scores.clone(), cand, 2)
    w = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    out = p(w)
    # candidates' |s|: 0.1, 0.9, 0.5, -, 0.2, 0.3 -> the two largest are 0.9 and 0.5 (0.7 is not a candidate)
    assert out.tolist() == [[0.0, 2.0, 3.0], [0.0, 0.0, 0.0]]
    out.sum().backward()
    assert p.scores.grad is not None
    # straight through: d out_ij / d s_ij = w_ij * sign(s_ij) on candidates (where() blocks the rest)
    expected = torch.where(cand, w * torch.sign(scores), torch.zeros_like(w))
    assert torch.allclose(p.scores.grad, expected)


@pytest.mark.parametrize(
    ("scheme", "density", "init"),
    [("dense", 1.0, "kaiming_normal"), ("uniform", 0.5, "kaiming_normal"), ("dense", 1.0, "model")],
)
def test_edgepopup_run(digits: DataBundle, scheme: str, density: float, init: str) -> None:
    cfg = TrainConfig(model="mlp", dataset="digits", epochs=3, lr=0.1, weight_decay=1e-4, method="edgepopup",
                      model_options={"hidden": [128, 64]}, density_scheme=scheme, density=density,
                      method_options={"final_density": 0.2, "levels": 2, "init": init})
    tr = Trainer.from_config(cfg, device="cpu", data=digits, progress=False)
    before = {n: m.weight.detach().clone() for n, m in tr.model.named_modules() if isinstance(m, torch.nn.Linear)}
    biases = {n: m.bias.detach().clone() for n, m in tr.model.named_modules() if isinstance(m, torch.nn.Linear)}
    start = None if tr.masking is None else {n: m.clone() for n, m in tr.masking.masks.items()}
    method = METHODS["edgepopup"].from_config(cfg)
    out = method.run(tr)
    masking = tr.masking
    assert masking is not None
    assert masking.nnz() == round(0.2 * masking.numel())
    assert [r["nnz"] for r in out["levels"]] == level_counts(round(density * masking.numel()) if start is None
                                                             else sum(int(m.sum()) for m in start.values()),
                                                             masking.numel(), 0.2, 2)
    for name, module in masking.layers.items():
        w, m = module.weight.detach(), masking.masks[name]
        reference = before[name] if init == "model" else method.random_weights[name]
        assert torch.equal(w[m], reference[m])  # kept weights are the random ones, unchanged
        assert (w[~m] == 0).all()
        if init == "model":
            assert torch.equal(module.bias.detach(), biases[name])
        if start is not None:
            assert not (m & ~start[name]).any()
    assert all(p.requires_grad for p in tr.model.parameters())
    if init == "kaiming_normal":  # PyTorch's default init is too small in scale for edge-popup to learn fast
        assert tr.evaluate()["accuracy"] > 0.4
