"""Tests of ertrain.init.init_scale_fan: factors by hand, and the paper's code's --scale-fan distribution."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ertrain.init import SCALE_FAN_MODES, init_scale_fan


def ones_linear(n_out: int, n_in: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.fill_(0.5)
    return layer


def test_linear_factors_by_hand() -> None:
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    # neuron: fan_in 3, kept 2 and 1 -> sqrt(3/2), sqrt(3)
    layer = ones_linear(2, 3)
    factors = init_scale_fan([("fc", layer)], [mask])
    assert factors["fc"] == pytest.approx([math.sqrt(1.5), math.sqrt(3.0)])
    torch.testing.assert_close(layer.weight, torch.tensor([[1.5**0.5] * 3, [3**0.5] * 3]))
    assert torch.all(layer.bias == 0.5)  # biases untouched
    # layer: density 3/6 -> kept fan-in 1.5 -> sqrt(2) for both rows
    layer = ones_linear(2, 3)
    assert init_scale_fan([("fc", layer)], [mask], per="layer")["fc"] == pytest.approx([2**0.5] * 2)
    # global (the paper's code): overall density 0.25 -> kept fan-in 0.75 -> factor 2
    layer = ones_linear(2, 3)
    assert init_scale_fan([("fc", layer)], [mask], per="global", density=0.25)["fc"] == pytest.approx([2.0, 2.0])
    assert torch.all(layer.weight == 2.0)


def test_conv_rows_and_empty_neuron() -> None:
    conv = nn.Conv2d(2, 4, 3, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    mask = torch.zeros(4, 2, 3, 3)
    for i in range(3):
        mask[i].view(-1)[: i + 1] = 1  # filter i keeps i + 1 of its 18 incoming weights; filter 3 keeps none
    factors = init_scale_fan([("conv", conv)], [mask])["conv"]
    assert factors == pytest.approx([math.sqrt(18 / 1), math.sqrt(18 / 2), math.sqrt(18 / 3), 1.0])
    assert torch.all(conv.weight[3] == 1.0)
    assert float(conv.weight.detach()[1, 0, 0, 0]) == pytest.approx(3.0)


def test_global_mode_gives_the_str_codes_scale_fan_distribution() -> None:
    """STR/utils/builder.py with --scale-fan: std = gain / sqrt(fan_in * (1 - prune_rate)); here density 0.1."""
    gen = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(256, 256, 3, bias=False)
    with torch.no_grad():
        conv.weight.normal_(0.0, math.sqrt(2.0 / (256 * 9)), generator=gen)  # kaiming_normal_, fan_in, relu
    mask = (torch.rand(conv.weight.shape, generator=gen) < 0.1).float()
    init_scale_fan([("conv", conv)], [mask], per="global", density=0.1)
    expected_std = math.sqrt(2.0) / math.sqrt(256 * 9 * (1 - 0.9))
    assert float(conv.weight.detach().std()) == pytest.approx(expected_std, rel=0.01)
    # per neuron: the kept weights' pre-activation variance is back to the dense one's (2 / fan_in * fan_in = 2)
    conv2 = nn.Conv2d(256, 256, 3, bias=False)
    with torch.no_grad():
        conv2.weight.normal_(0.0, math.sqrt(2.0 / (256 * 9)), generator=gen)
    init_scale_fan([("conv", conv2)], [mask])
    row_var = ((conv2.weight.detach() * mask) ** 2).reshape(256, -1).sum(dim=1)
    assert float(row_var.mean()) == pytest.approx(2.0, rel=0.02)


def test_bad_input() -> None:
    layer = ones_linear(2, 3)
    mask = torch.ones(2, 3)
    with pytest.raises(ValueError, match="unknown scale-fan mode 'row'; valid names: global, layer, neuron"):
        init_scale_fan([("fc", layer)], [mask], per="row")
    with pytest.raises(ValueError, match="needs the overall density"):
        init_scale_fan([("fc", layer)], [mask], per="global")
    with pytest.raises(ValueError, match="mask shape"):
        init_scale_fan([("fc", layer)], [torch.ones(3, 2)])
    with pytest.raises(ValueError, match="got 0 masks for 1 layers"):
        init_scale_fan([("fc", layer)], [])
    assert set(SCALE_FAN_MODES) == {"neuron", "layer", "global"}
