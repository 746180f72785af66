"""Sparse storage of masked layers (``ertrain.sparse``): exact conversion, outputs, compact files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ertrain import sparse as sparse_module
from ertrain.masks import Masking
from ertrain.models import build_model
from ertrain.sparse import (
    LayerTiming,
    SparseConv2d,
    SparseLinear,
    clear_timing_cache,
    conversion_plan,
    fold_masks,
    load_packed,
    pack_state_dict,
    save_packed,
    sparse_layers,
    storage_nbytes,
    to_dense,
    to_sparse,
    unpack_state_dict,
)


def masked_linear(
    out_f: int, in_f: int, density: float, seed: int, bias: bool = True
) -> tuple[nn.Linear, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(in_f, out_f, bias=bias)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out_f, in_f, generator=gen))
        if bias:
            layer.bias.copy_(torch.randn(out_f, generator=gen))
    mask = torch.rand(out_f, in_f, generator=gen) < density
    with torch.no_grad():
        layer.weight.mul_(mask)
    return layer, mask


@settings(max_examples=15)
@given(
    out_f=st.integers(1, 40), in_f=st.integers(1, 40), density=st.floats(0.0, 1.0), seed=st.integers(0, 2**16),
    layout=st.sampled_from(["csr", "coo"]), index64=st.booleans(), bias=st.booleans(), batch=st.integers(1, 5),
)
def test_sparse_linear_is_exact_and_computes_the_dense_product(
    out_f: int, in_f: int, density: float, seed: int, layout: str, index64: bool, bias: bool, batch: int
) -> None:
    layer, mask = masked_linear(out_f, in_f, density, seed, bias)
    sparse = SparseLinear.from_dense(layer, mask, layout=layout, index_dtype=torch.int64 if index64 else torch.int32)
    assert sparse.nnz() == int(mask.sum())  # the mask's pattern, not the weight's non-zeros
    back = sparse.to_dense()
    assert torch.equal(back.weight, layer.weight) and (back.bias is None) == (layer.bias is None)
    if layer.bias is not None:
        assert back.bias is not None and torch.equal(back.bias, layer.bias)
    x = torch.randn(batch, 3, in_f, generator=torch.Generator().manual_seed(seed + 1))
    # reference in float64, computed entry by entry from the kept weights only
    w64 = layer.weight.double()
    ref = torch.einsum("bti,oi->bto", x.double(), w64 * mask.double())
    if layer.bias is not None:
        ref = ref + layer.bias.double()
    got = sparse(x)
    assert got.shape == (batch, 3, out_f)
    torch.testing.assert_close(got.double(), ref, atol=1e-5, rtol=1e-5)


def test_explicitly_kept_zero_weights_stay_in_the_pattern() -> None:
    layer, mask = masked_linear(6, 5, 0.7, seed=3)
    kept = mask.nonzero()[0]
    with torch.no_grad():
        layer.weight[kept[0], kept[1]] = 0.0  # a kept weight that trained to exactly zero
    assert SparseLinear.from_dense(layer, mask).nnz() == int(mask.sum())
    assert SparseLinear.from_dense(layer).nnz() == int(mask.sum()) - 1  # no mask: the non-zeros


CONV_CASES = [  # (c_in, c_out, kernel, stride, padding, dilation, bias, size)
    (3, 5, 1, 1, 0, 1, True, 7),
    (4, 6, 1, 2, 0, 1, False, 8),
    (3, 4, 3, 1, 1, 1, True, 6),
    (2, 5, 3, 2, 1, 1, False, 9),
    (3, 3, (3, 2), (2, 1), (0, 1), 2, True, 10),
    (2, 4, 1, 1, 1, 1, True, 5),  # 1x1 with padding goes through unfold
]


@pytest.mark.parametrize("c_in,c_out,kernel,stride,padding,dilation,bias,size", CONV_CASES)
@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_sparse_conv_matches_conv2d(
    c_in: int, c_out: int, kernel: int | tuple[int, int], stride: int | tuple[int, int],
    padding: int | tuple[int, int], dilation: int, bias: bool, size: int, layout: str,
) -> None:
    gen = torch.Generator().manual_seed(c_in * 100 + c_out)
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias)
    mask = torch.rand(conv.weight.shape, generator=gen) < 0.4
    with torch.no_grad():
        conv.weight.mul_(mask)
    sparse = SparseConv2d.from_dense(conv, mask, layout=layout)
    x = torch.randn(3, c_in, size, size + 1, generator=gen)
    ref = F.conv2d(x.double(), conv.weight.double(), None if conv.bias is None else conv.bias.double(),
                   stride, padding, dilation)
    torch.testing.assert_close(sparse(x).double(), ref, atol=1e-5, rtol=1e-5)
    back = sparse.to_dense()
    assert torch.equal(back.weight, conv.weight)
    assert (back.stride, back.padding, back.dilation) == (conv.stride, conv.padding, conv.dilation)


def test_grouped_conv_is_rejected_and_left_dense() -> None:
    conv = nn.Conv2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match="groups=1"):
        SparseConv2d.from_dense(conv)
    model = nn.Sequential(conv)
    assert isinstance(to_sparse(model, max_density=1.0, convs="all")[0], nn.Conv2d)


@pytest.mark.parametrize("convs", ["1x1", "all", "none"])
def test_to_sparse_on_a_masked_resnet_round_trips(convs: str) -> None:
    model = build_model("resnet20", num_classes=10, width=0.25, shortcut="B").eval()
    masking = Masking.from_scheme(model, "erk", 0.2, torch.Generator().manual_seed(1))
    sparse = to_sparse(model, max_density=0.5, convs=convs)
    densities = masking.densities()
    converted = sparse_layers(sparse)
    modules = dict(model.named_modules())
    expected = {
        n for n, p in densities.items()
        if p <= 0.5 and (isinstance(modules[n], nn.Linear) or convs == "all"
                         or (convs == "1x1" and modules[n].kernel_size == (1, 1)))
    }
    assert set(converted) == expected
    for name in expected:
        assert converted[name]["nnz"] == int(masking.masks[name].sum())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), model(x), atol=1e-5, rtol=1e-5)
    dense = to_dense(sparse).state_dict()
    folded = fold_masks(model).state_dict()
    assert dense.keys() == folded.keys()
    assert all(torch.equal(dense[k], folded[k]) for k in folded)
    assert all(not isinstance(m, (SparseLinear, SparseConv2d)) for m in to_dense(sparse).modules())
    assert isinstance(model.classifier, nn.Linear)  # the original is untouched


def test_fold_masks_zeroes_exactly_the_pruned_entries_and_drops_the_buffers() -> None:
    model = build_model("mlp", num_classes=3, in_features=10, hidden=[8])
    masks = {"hidden.0": torch.rand(8, 10) < 0.5, "classifier": torch.rand(3, 8) < 0.5}
    Masking(model, masks)
    with torch.no_grad():  # weights that drifted away from their masks
        model.hidden[0].weight.add_(1.0)
    plain = fold_masks(model)
    w = plain.hidden[0].weight
    assert torch.equal(w == 0, ~masks["hidden.0"] | (w == 0)) and int((w[~masks["hidden.0"]] != 0).sum()) == 0
    assert not torch.signbit(w[~masks["hidden.0"]]).any()  # +0.0
    assert "weight_mask" not in dict(plain.hidden[0].named_buffers())


def test_storage_bytes_count_indices_and_values() -> None:
    layer, mask = masked_linear(30, 50, 0.1, seed=0)
    nnz = int(mask.sum())
    assert storage_nbytes(nn.Sequential(layer)) == (30 * 50 + 30) * 4
    sparse32 = nn.Sequential(SparseLinear.from_dense(layer, mask))
    assert storage_nbytes(sparse32) == nnz * (4 + 4) + 31 * 4 + 30 * 4
    coo = nn.Sequential(SparseLinear.from_dense(layer, mask, layout="coo"))
    assert storage_nbytes(coo) == nnz * (4 + 2 * 8) + 30 * 4


def test_to_sparse_rejects_bad_arguments() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="'bsr'"):
        to_sparse(model, layout="bsr")
    with pytest.raises(ValueError, match="'3x3'"):
        to_sparse(model, convs="3x3")
    with pytest.raises(ValueError, match="1.5"):
        to_sparse(model, max_density=1.5)
    with pytest.raises(ValueError, match="nope"):
        to_sparse(model, masks={"nope": torch.ones(2, 3, dtype=torch.bool)})
    with pytest.raises(ValueError, match="batch_size"):  # the measured rule needs an input shape
        to_sparse(model)
    with pytest.raises(ValueError, match="example_input"):  # a convolution's cost depends on the image size
        to_sparse(nn.Sequential(nn.Conv2d(3, 4, 1)), batch_size=8)


# --- the measured conversion rule ------------------------------------------------------------------------------


def _mlp(widths: list[int], densities: list[float], seed: int) -> tuple[nn.Sequential, dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    masks: dict[str, torch.Tensor] = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layer = nn.Linear(a, b)
        mask = torch.rand(b, a, generator=gen) < densities[i]
        with torch.no_grad():
            layer.weight.mul_(mask)
        masks[str(2 * i)] = mask
        layers += [layer, nn.ReLU()]
    return nn.Sequential(*layers[:-1]), masks


@settings(max_examples=20)
@given(faster=st.lists(st.booleans(), min_size=1, max_size=5), seed=st.integers(0, 2**16))
def test_exactly_the_layers_measured_faster_convert(faster: list[bool], seed: int) -> None:
    widths = [6 + i for i in range(len(faster) + 1)]
    model, masks = _mlp(widths, [0.5] * len(faster), seed)
    by_out = {w: f for w, f in zip(widths[1:], faster, strict=True)}  # a fake timer keyed by the layer's width

    def fake(module: nn.Module, mask: torch.Tensor, shape: tuple[int, ...], *rest: object) -> LayerTiming:
        assert shape == (7, module.in_features)  # type: ignore[attr-defined]
        return LayerTiming(1.0, 0.5 if by_out[module.out_features] else 2.0, shape, 1)  # type: ignore[attr-defined]

    clear_timing_cache()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sparse_module, "measure_layer", fake)
        converted_model = to_sparse(model, masks=masks, batch_size=7)
    clear_timing_cache()
    assert set(sparse_layers(converted_model)) == {str(2 * i) for i, f in enumerate(faster) if f}
    x = torch.randn(3, widths[0])
    with torch.no_grad():
        torch.testing.assert_close(converted_model(x), model(x), atol=1e-5, rtol=1e-5)


def test_measured_plan_separates_clear_cases_and_is_cached() -> None:
    # a 2048 x 2048 layer keeping 0.2% of its weights is many times faster in CSR; a fully kept 512 x 512 one
    # is several times slower (CSR stores and walks an index per weight)
    clear_timing_cache()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: steadier timings on a shared machine
    try:
        model, masks = _mlp([2048, 2048, 512, 512], [0.002, 1.0, 1.0], seed=0)
        plan = conversion_plan(model, masks=masks, batch_size=64, repeats=5)
        assert plan["0"].converts and plan["0"].speedup > 2
        assert not plan["4"].converts and plan["4"].speedup < 1
        assert plan["0"].input_shape == (64, 2048) and plan["0"].threads == 1
        again = conversion_plan(model, masks=masks, batch_size=64, repeats=5)
        assert all(again[k] is plan[k] for k in plan)  # measured once per process and setting
        converted = sparse_layers(to_sparse(model, masks=masks, batch_size=64))
        assert set(converted) == {k for k, t in plan.items() if t.converts} and "0" in converted
    finally:
        torch.set_num_threads(threads)
        clear_timing_cache()


def test_example_input_gives_each_layer_its_own_shape() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2), nn.Flatten(), nn.Linear(4 * 7 * 7, 5)
    )
    shapes: dict[str, tuple[int, ...]] = {}

    def record(module: nn.Module, mask: torch.Tensor, shape: tuple[int, ...], *rest: object) -> LayerTiming:
        name = {id(m): n for n, m in model.named_modules()}[id(module)]
        shapes[name] = shape
        return LayerTiming(1.0, 2.0, shape, 1)

    plan = conversion_plan(model, example_input=torch.randn(2, 3, 16, 16), convs="all", measure=record)
    assert shapes == {"0": (2, 3, 16, 16), "2": (2, 8, 16, 16), "4": (2, 196)}
    assert not any(t.converts for t in plan.values())
    assert set(conversion_plan(model, example_input=torch.randn(2, 3, 16, 16), measure=record)) == {"0", "4"}


@st.composite
def sparse_arrays(draw: st.DrawFn) -> np.ndarray:
    shape = tuple(draw(st.lists(st.integers(1, 12), min_size=1, max_size=4)))
    density = draw(st.floats(0.0, 0.75))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.standard_normal(shape).astype(np.float32)
    return np.where(rng.random(shape) < density, values, np.float32(0.0))


@settings(max_examples=40)
@given(arr=sparse_arrays(), encoding=st.sampled_from(["auto", "bitmask", "csr"]))
def test_packing_round_trips_exactly(arr: np.ndarray, encoding: str) -> None:
    state = {"w": torch.from_numpy(arr), "steps": torch.tensor([3, 0, 0]), "dense": torch.ones(4)}
    packed, kinds = pack_state_dict(state, encoding=encoding)
    sparse_enough = np.count_nonzero(arr) <= 0.75 * arr.size  # pack_state_dict's default max_density
    assert set(kinds) == ({"w"} if sparse_enough else set())  # integer and dense tensors stay as they are
    if encoding != "auto" and sparse_enough:
        assert kinds["w"] == encoding
    out = unpack_state_dict(packed)
    assert out.keys() == state.keys()
    assert all(torch.equal(out[k], state[k]) and out[k].dtype == state[k].dtype for k in state)


def test_auto_packing_picks_the_smaller_encoding_with_the_expected_size() -> None:
    rng = np.random.default_rng(0)
    for density, expected in ((0.5, "bitmask"), (0.01, "csr")):
        arr = np.where(rng.random((100, 300)) < density, rng.standard_normal((100, 300)), 0.0).astype(np.float32)
        nnz = int((arr != 0).sum())
        packed, kinds = pack_state_dict({"w": torch.from_numpy(arr)})
        assert kinds["w"] == expected
        size = sum(t.numel() * t.element_size() for t in packed.values())
        bitmask_bytes = 2 * 8 + math.ceil(arr.size / 8) + 4 * nnz
        crow_bytes = 1 if nnz <= 255 else 2 if nnz <= 65535 else 4
        csr_bytes = 2 * 8 + 101 * crow_bytes + 2 * nnz + 4 * nnz  # 300 columns: uint16 column indices
        assert size == min(bitmask_bytes, csr_bytes)


def test_packed_file_round_trip_and_size(tmp_path: Path) -> None:
    model = build_model("mlp", num_classes=10, in_features=784, hidden=[300, 100])
    Masking.from_scheme(model, "uniform", 0.01, torch.Generator().manual_seed(0))
    state = fold_masks(model).state_dict()
    path = tmp_path / "m.safetensors"
    kinds = save_packed(path, state)
    assert set(kinds) == {"hidden.0.weight", "hidden.1.weight", "classifier.weight"}
    loaded = load_packed(path)
    assert all(torch.equal(loaded[k], state[k]) for k in state) and loaded.keys() == state.keys()
    dense_bytes = sum(t.numel() * 4 for t in state.values())
    assert path.stat().st_size < dense_bytes / 10  # 1% of the weights, 6 bytes each with uint16 columns
