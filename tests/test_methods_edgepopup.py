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


def test_paper_code_subnet_multipliers_on_a_16x8x3x3_layer_by_hand() -> None:
    """ER_SLT/resnet_new.py:44: row indices, not entries: only the first c_out = 16 flat entries are binarised."""
    from ertrain.methods.edgepopup import RowIndexScoredWeight

    g = torch.Generator().manual_seed(0)
    er = torch.rand(16, 8, 3, 3, generator=g) < 0.4
    er[:, 0, 0, 0] = True  # every filter keeps an entry, so every row index occurs
    k = 200
    p = RowIndexScoredWeight(torch.full((16, 8, 3, 3), 0.5), er, k)
    multipliers = p.mask().detach().reshape(-1)
    # by hand: with equal scores, the top k of the repeated row entries are the first k in row-major order;
    # row r's multiplier is the value of its last repeat, at position (kept entries of rows 0..r) - 1
    counts = er.reshape(16, -1).sum(1).tolist()
    last, expected = -1, []
    for c in counts:
        last += c
        expected.append(1.0 if last < k else 0.0)
    assert multipliers[:16].tolist() == expected
    assert torch.equal(multipliers[16:], torch.full((1152 - 16,), 0.5))
    non_binary = int(((multipliers != 0) & (multipliers != 1)).sum())
    assert non_binary == 1136  # 1152 - 16: the ER mask is ignored for every other entry


def test_paper_code_subnet_matches_the_codes_function_and_passes_gradients() -> None:
    """The code's GetSubnetER forward on distinct row scores, with k on a row boundary (no tie decides)."""
    from ertrain.methods.edgepopup import RowIndexScoredWeight

    g = torch.Generator().manual_seed(1)
    er = torch.rand(6, 4, generator=g) < 0.6
    er[:, 0] = True
    scores = torch.randn(6, 4, generator=g)
    row_scores = scores.abs().reshape(-1)[:6]
    top_rows = torch.argsort(row_scores, descending=True)[:3]
    k = int(er.sum(1)[top_rows].sum())  # the three best rows' repeats exactly

    flat = scores.abs().flatten()  # the code, line by line
    retain_idx = torch.where(er == 1)[0]
    out = flat.clone()
    temp = flat[retain_idx]
    _, idx = temp.sort(descending=True)
    temp[idx[:k]] = 1
    temp[idx[k:]] = 0
    out[retain_idx] = temp

    p = RowIndexScoredWeight(scores.clone(), er, k)
    assert torch.equal(p.mask().detach().reshape(-1), out)
    w = torch.randn(6, 4, generator=g)
    p(w).sum().backward()
    assert torch.allclose(p.scores.grad, w * torch.sign(scores))  # straight through every entry


def test_paper_code_score_init_and_one_optimizer(digits: DataBundle) -> None:
    """Kaiming-uniform scores in linear layers under score_init paper-code; one optimizer across levels."""
    cfg = TrainConfig(model="smallcnn", dataset="digits", epochs=1, method="edgepopup", density_scheme="uniform",
                      density=0.5, method_options={"final_density": 0.3, "levels": 2, "score_init": "paper-code",
                                                   "optimizer_per_level": False, "subnet": "paper-code"})
    tr = Trainer.from_config(cfg, device="cpu", data=digits, progress=False)
    method = METHODS["edgepopup"].from_config(cfg)
    seen: list[int] = []
    make = tr.make_optimizer

    def counting(*args: object, **kwargs: object) -> torch.optim.Optimizer:
        seen.append(1)
        return make(*args, **kwargs)  # type: ignore[arg-type]

    tr.make_optimizer = counting  # type: ignore[method-assign]
    method.start(tr)
    for (_, module), p in zip(method.layers, method.params, strict=True):
        s = p.scores.detach()
        if isinstance(module, torch.nn.Conv2d):
            assert bool((s == 0.5).all())
        else:
            bound = (6 / (1 + 5) / s.shape[1]) ** 0.5  # kaiming_uniform(a=sqrt(5)): sqrt(6 / ((1 + a^2) fan_in))
            assert float(s.abs().max()) <= bound and len(set(s.flatten().tolist())) > 1
    method.train(tr)
    out = method.finish(tr)
    assert len(seen) == 1 and len(out["levels"]) == 2
    # the exported weights are the random ones times the multipliers: mostly raw |score| (0.5 in convs)
    conv = [(n, m) for n, m in method.layers if isinstance(m, torch.nn.Conv2d)][0]
    assert tr.masking is not None and tr.masking.masks[conv[0]].float().mean() > 0.9
