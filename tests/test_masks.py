"""Tests of ertrain.masks: ER sampling, flow repair and exact masking through optimizer steps."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ertheory.exact import log_block_hit
from ertrain.density import layer_densities
from ertrain.masks import Masking, _conditional_bernoulli, flow_defects, flow_repair, sample_er_masks
from ertrain.models import build_model, maskable_layers


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)  # weights only; masks use explicit generators
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


# ---------------------------------------------------------------------------------------------- sampling
def test_sampling_counts_are_binomial() -> None:
    shapes = [(200, 300), (64, 32, 3, 3)]
    p = [0.05, 0.3]
    masks = sample_er_masks(shapes, p, gen(1))
    for mask, p_l in zip(masks, p, strict=True):
        n = mask.numel()
        assert mask.dtype == torch.bool
        assert abs(int(mask.sum()) - n * p_l) < 5 * math.sqrt(n * p_l * (1 - p_l))


@pytest.mark.parametrize(("shape", "p"), [((20000, 10), 0.1), ((3000, 4, 3, 3), 0.02)])
def test_zero_degree_fractions_match_ertheory(shape: tuple[int, ...], p: float) -> None:
    # a unit with k candidate entries is disconnected with probability 1 - exp(log_block_hit(p, k)) = (1 - p)^k
    (mask,) = sample_er_masks([shape], [p], gen(2))
    kernel = int(np.prod(shape[2:]))
    active = mask.reshape(shape[0], shape[1], -1).any(2)
    indeg, outdeg = active.sum(1).numpy(), active.sum(0).numpy()
    for degree, k in ((indeg, shape[1] * kernel), (outdeg, shape[0] * kernel)):
        q = -math.expm1(float(log_block_hit(p, k)))
        n = degree.size
        assert abs(int((degree == 0).sum()) - n * q) < 5 * math.sqrt(n * q * (1 - q)) + 1


def test_same_seed_same_masks_and_exact_counts() -> None:
    shapes = [(30, 40), (8, 4, 3, 3)]
    a = sample_er_masks(shapes, [0.2, 0.5], gen(7))
    b = sample_er_masks(shapes, [0.2, 0.5], gen(7))
    c = sample_er_masks(shapes, [0.2, 0.5], gen(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    exact = sample_er_masks(shapes, [0.2, 0.5], gen(7), exact=True)
    assert [int(m.sum()) for m in exact] == [240, 144]


def test_sampling_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="densities must be in"):
        sample_er_masks([(3, 3)], [0.0], gen())
    with pytest.raises(ValueError, match="2 densities for 1"):
        sample_er_masks([(3, 3)], [0.1, 0.2], gen())
    with pytest.raises(ValueError, match="Generator is required"):
        sample_er_masks([(3, 3)], [0.1], None)  # type: ignore[arg-type]


@pytest.mark.gpu
def test_cpu_and_cuda_masks_identical() -> None:
    shapes = [(64, 3, 3, 3), (10, 512)]
    cpu = sample_er_masks(shapes, [0.3, 0.1], gen(3))
    cuda = sample_er_masks(shapes, [0.3, 0.1], gen(3), device="cuda")
    assert all(m.device.type == "cuda" and torch.equal(m.cpu(), c) for m, c in zip(cuda, cpu, strict=True))


@pytest.mark.gpu
def test_masking_on_cuda_with_bf16_autocast() -> None:
    model = small_cnn().cuda()
    masking = make_masking(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(8, 3, 8, 8, device="cuda")
    for _ in range(3):
        optimizer.zero_grad()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            model(x).float().square().mean().backward()
        optimizer.step()
        masking.apply_()
    for name, layer in masking.layers.items():
        assert masking.masks[name].device.type == "cuda"
        assert bool((layer.weight[~masking.masks[name]] == 0).all())


# ---------------------------------------------------------------------------------------------- flow repair
def degrees(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute force: in-degree of each row unit, out-degree of each column unit, by explicit loops."""
    m = mask.reshape(mask.shape[0], mask.shape[1], -1)
    indeg = torch.tensor([sum(bool(m[i, j].any()) for j in range(m.shape[1])) for i in range(m.shape[0])])
    outdeg = torch.tensor([sum(bool(m[i, j].any()) for i in range(m.shape[0])) for j in range(m.shape[1])])
    return indeg, outdeg


shape_st = st.one_of(
    st.tuples(st.integers(1, 12), st.integers(1, 12)),
    st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 3), st.integers(1, 3)),
)


@settings(max_examples=40)
@given(
    shapes=st.lists(shape_st, min_size=1, max_size=3),
    p=st.floats(0.01, 0.6),
    mode=st.sampled_from(["random_add", "rejection"]),
    seed=st.integers(0, 2**16),
)
def test_flow_repair_fixes_every_unit(shapes: list[tuple[int, ...]], p: float, mode: str, seed: int) -> None:
    g = gen(seed)
    masks = sample_er_masks(shapes, [p] * len(shapes), g)
    originals = [m.clone() for m in masks]
    repaired, added = flow_repair(masks, mode, g)
    for orig, before, after, n_added in zip(originals, masks, repaired, added, strict=True):
        assert torch.equal(orig, before)  # inputs untouched
        assert bool((after | orig).eq(after).all())  # only additions
        assert int(after.sum()) - int(orig.sum()) == n_added
        indeg, outdeg = degrees(after)
        assert bool((indeg >= 1).all()) and bool((outdeg >= 1).all())
        # new edges only in units that were empty
        in0, out0 = degrees(orig)
        new = (after & ~orig).reshape(after.shape[0], after.shape[1], -1).any(2)
        allowed = (in0 == 0)[:, None] | (out0 == 0)[None, :]
        assert bool((~new | allowed).all())
        if mode == "random_add":  # one new edge per empty row
            per_row = (after & ~orig).reshape(after.shape[0], -1).sum(1)
            assert bool((per_row[in0 == 0] >= 1).all())
            assert int(per_row[in0 == 0].sum()) <= n_added
        assert flow_defects([after]) == [(0, 0)]


def test_random_add_counts_on_linear_by_hand() -> None:
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0, 0] = True
    # rows 1, 2 empty (2 edges); then columns without edges: at least 1 of 1..3 remains -> 3 or 4 edges in all
    (rep,), (n,) = flow_repair([mask], "random_add", gen(0))
    assert n == int(rep.sum()) - 1
    assert 2 + 1 <= n <= 2 + 3
    assert flow_defects([rep]) == [(0, 0)]


def test_conditional_bernoulli_law() -> None:
    # law of a length-3 Ber(p) vector conditioned on being non-zero, against its exact probabilities
    p, n = 0.3, 40000
    draws = _conditional_bernoulli(n, 3, p, gen(5)).long()
    codes = (draws * torch.tensor([4, 2, 1])).sum(1)
    counts = torch.bincount(codes, minlength=8).numpy()
    assert counts[0] == 0
    z = 1 - (1 - p) ** 3
    for code in range(1, 8):
        k = bin(code).count("1")
        q = p**k * (1 - p) ** (3 - k) / z
        assert abs(counts[code] - n * q) < 5 * math.sqrt(n * q * (1 - q))


def test_keep_density_replaces_edges() -> None:
    g = gen(4)
    masks = sample_er_masks([(30, 30)], [0.08], g)
    before = int(masks[0].sum())
    (rep,), (n,) = flow_repair(masks, "random_add", g, keep_density=True)
    assert n > 0
    assert int(rep.sum()) == before
    assert flow_defects([rep]) == [(0, 0)]


def test_flow_repair_bad_mode() -> None:
    with pytest.raises(ValueError, match="valid names: random_add, rejection"):
        flow_repair([torch.ones(2, 2, dtype=torch.bool)], "other", gen())


# ---------------------------------------------------------------------------------------------- Masking
def make_masking(model: nn.Module, density: float = 0.3, seed: int = 0) -> Masking:
    return Masking.from_scheme(model, "uniform", density, gen(seed))


@pytest.mark.parametrize("opt", ["sgd", "adam", "sgd_autocast"])
def test_pruned_weights_stay_exactly_zero(opt: str) -> None:
    torch.set_num_threads(1)
    model = small_cnn()
    masking = make_masking(model)
    params = list(model.parameters())
    optimizer: torch.optim.Optimizer
    if opt == "adam":
        optimizer = torch.optim.Adam(params, lr=1e-2, weight_decay=1e-3)
    else:
        optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(16, 3, 8, 8, generator=gen(1)), torch.randint(0, 4, (16,), generator=gen(2))
    start = {n: layer.weight.detach().clone() for n, layer in masking.layers.items()}
    resurrected = False
    for _ in range(4):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=opt == "sgd_autocast"):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        resurrected |= any(bool(layer.weight[~masking.masks[n]].ne(0).any()) for n, layer in masking.layers.items())
        masking.apply_()
        for name, layer in masking.layers.items():
            assert bool((layer.weight[~masking.masks[name]] == 0).all())
    assert resurrected  # the optimizer alone would revive pruned weights: the check above can fail
    for name, layer in masking.layers.items():  # kept weights do train
        kept = masking.masks[name]
        assert not torch.equal(layer.weight[kept], start[name][kept])


def test_masking_basics_and_state_round_trip() -> None:
    model = small_cnn()
    masking = make_masking(model, density=0.4, seed=3)
    masks = masking.masks
    assert list(masks) == ["0", "2", "6"]
    assert all(m.dtype == torch.bool for m in masks.values())
    assert not any("weight_mask" in k for k in model.state_dict())
    nnz = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    assert masking.nnz() == nnz and masking.overall_density() == pytest.approx(nnz / total)
    assert masking.densities()["2"] == pytest.approx(int(masks["2"].sum()) / masks["2"].numel())
    for name, layer in masking.layers.items():
        assert bool((layer.weight[~masks[name]] == 0).all())
    buf = io.BytesIO()
    torch.save({"masks": masking.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    other = Masking(small_cnn(), [torch.ones_like(m) for m in masks.values()])
    other.load_state_dict(state["masks"])
    assert all(torch.equal(other.masks[n], masks[n]) for n in masks)
    assert bool((other.layers["6"].weight[~masks["6"]] == 0).all())


def test_set_mask_and_in_place_edit_refresh() -> None:
    model = small_cnn()
    masking = Masking(model, {"6": torch.ones(4, 8, dtype=torch.bool)})
    new = torch.zeros(4, 8, dtype=torch.bool)
    new[:, :2] = True
    masking.set_mask("6", new)
    assert bool((model[6].weight[:, 2:] == 0).all())
    with torch.no_grad():
        model[6].weight.fill_(1.0)
        masking.masks["6"][:, 0] = False  # an in-place edit of the buffer is seen by apply_
    masking.apply_()
    assert int(model[6].weight.ne(0).sum()) == 4
    with pytest.raises(ValueError, match="valid names"):
        masking.set_mask("nosuch", new)
    with pytest.raises(ValueError, match="shape"):
        masking.set_mask("6", torch.ones(3, 3, dtype=torch.bool))


def test_masks_follow_dtype_and_device_changes() -> None:
    model = small_cnn()
    masking = make_masking(model)
    model.double()
    with torch.no_grad():
        for layer in masking.layers.values():
            layer.weight.add_(1.0)
    masking.apply_()
    for name, layer in masking.layers.items():
        assert layer.weight.dtype == torch.float64
        assert torch.equal(layer.weight.ne(0), masking.masks[name])


def test_mask_grads_and_optimizer_state() -> None:
    model = small_cnn()
    masking = make_masking(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3, 8, 8, generator=gen(1))).sum().backward()
    optimizer.step()
    masking.mask_optimizer_state_(optimizer)
    masking.mask_grads_()
    for name, layer in masking.layers.items():
        off = ~masking.masks[name]
        assert layer.weight.grad is not None and bool((layer.weight.grad[off] == 0).all())
        assert bool((optimizer.state[layer.weight]["momentum_buffer"][off] == 0).all())


def test_from_scheme_records_densities_and_repair() -> None:
    model = build_model("mlp", num_classes=10, in_features=64, hidden=(32, 16))
    masking = Masking.from_scheme(model, "pyramidal", 0.05, gen(0), flow_repair="random_add")
    shapes = [tuple(m.weight.shape) for _, m in maskable_layers(model)]
    expected = layer_densities("pyramidal", shapes, 0.05)
    np.testing.assert_allclose(list(masking.requested_densities.values()), expected)
    assert sum(masking.edges_added.values()) > 0
    assert flow_defects(list(masking.masks.values())) == [(0, 0)] * 3
    assert masking.nnz() >= 1


def test_masking_rejects_mismatched_masks() -> None:
    model = small_cnn()
    with pytest.raises(ValueError, match="2 masks for 3 layers"):
        Masking(model, [torch.ones(8, 3, 3, 3, dtype=torch.bool)] * 2)
    with pytest.raises(ValueError, match="has shape"):
        Masking(model, {"6": torch.ones(8, 4, dtype=torch.bool)})


def _code_flow_preservation_conv(mask: torch.Tensor) -> torch.Tensor:
    """The paper's code's conv branch of ``flow_preservation``, line by line (its ``.contiguous()`` copy included)."""
    mask = mask.clone().float()
    active_filters = torch.sum(mask, (2, 3)).clamp(max=1)
    indegrees = active_filters.sum(1)
    outdegrees = active_filters.sum(0)  # taken before the in-repair
    if (indegrees == 0).any():
        idx = torch.where(indegrees == 0)[0]
        temp = mask[idx, :, :, :]
        for i in range(idx.shape[0]):
            indices = torch.randperm(temp[i, :, :, :].numel())
            temp[i, :, :, :].view(-1)[indices[0]] = 1
            mask[idx[i], :, :, :] = temp[i, :, :, :]
    if (outdegrees == 0).any():
        idx = torch.where(outdegrees == 0)[0]
        temp = mask[:, idx, :, :]
        for i in range(idx.shape[0]):
            indices = torch.randperm(temp[:, i, :, :].numel())
            temp[:, i, :, :].contiguous().view(-1)[indices[0]] = 1
            mask[:, idx[i], :, :] = temp[:, i, :, :]
    return mask.bool()


@pytest.mark.parametrize("empty_inputs", [(1,), (1, 3), (0, 2, 4)])
def test_paper_code_flow_repair_counts_as_the_codes_loop(empty_inputs: tuple[int, ...]) -> None:
    # a (6, 5, 3, 3) conv mask: filters 2 and 5 without incoming edges, the given input channels without outgoing
    mask = torch.zeros(6, 5, 3, 3, dtype=torch.bool)
    kept_inputs = [j for j in range(5) if j not in empty_inputs]
    for i in (0, 1, 3, 4):
        mask[i, kept_inputs[i % len(kept_inputs)], i % 3, 1] = True
    for j in kept_inputs:
        mask[0, j, 0, 0] = True
    assert flow_defects([mask]) == [(2, len(empty_inputs))]
    (ours,), (added,) = flow_repair([mask], "paper-code", gen(3))
    torch.manual_seed(0)
    code = _code_flow_preservation_conv(mask)
    # by hand: the two empty filters get one edge each; the input channels only when exactly one is empty
    # (with two or more, the code writes into a copy), and it gets its edge even if a filter's repair gave it one
    expected_added = 2 + (1 if len(empty_inputs) == 1 else 0)
    assert added == expected_added == int(code.sum()) - int(mask.sum())
    assert int(ours.sum()) - int(mask.sum()) == expected_added
    assert bool((ours | mask).eq(ours).all())
    in_left = 0
    out_left = len(empty_inputs) - sum(bool(ours[:, j].any()) for j in empty_inputs)
    assert flow_defects([ours])[0][0] == in_left == flow_defects([code])[0][0]
    if len(empty_inputs) >= 2:  # nothing repaired unless a filter repair happened to land there
        assert flow_defects([ours])[0][1] == out_left
    else:
        assert flow_defects([ours]) == [(0, 0)] == flow_defects([code])


def test_paper_code_flow_repair_mends_linear_columns() -> None:
    # linear masks have no .contiguous() copy: both empty columns are repaired, as by random addition
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[0, 0] = mask[1, 2] = mask[2, 4] = True  # row 3 empty; columns 1 and 3 empty
    (rep,), (n,) = flow_repair([mask], "paper-code", gen(1))
    assert n == 1 + 2 == int(rep.sum()) - 3
    assert flow_defects([rep]) == [(0, 0)]


def test_flow_repair_modes_agree_everywhere() -> None:
    """The config, the masks module and `ertrain densities --flow-repair` list the same modes."""
    import argparse

    from ertrain.commands import densities
    from ertrain.config import FLOW_REPAIR_CHOICES, FLOW_REPAIR_MODES
    from ertrain.masks import FLOW_REPAIR_MODES as MASK_MODES

    assert FLOW_REPAIR_MODES == MASK_MODES and FLOW_REPAIR_CHOICES == (*MASK_MODES, "none")
    sub = densities.register(argparse.ArgumentParser().add_subparsers())
    action = next(a for a in sub._actions if "--flow-repair" in a.option_strings)
    assert action.choices is not None and tuple(action.choices) == MASK_MODES
