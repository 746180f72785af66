"""FLOPs accounting against hand-counted multiply-accumulates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ertrain.flops import FlopsMeter, inference_flops_ratio, layer_macs


def small_convnet() -> tuple[nn.Module, list[tuple[str, nn.Module]]]:
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, stride=2, padding=1), nn.Flatten(),
        nn.Linear(2 * 4 * 4, 10),
    )
    return net, [("0", net[0]), ("2", net[2]), ("4", net[4])]


def test_layer_macs_hand_counted() -> None:
    net, layers = small_convnet()
    macs = layer_macs(net, torch.zeros(5, 1, 8, 8), layers=layers)
    # conv1: 4*1*3*3 weights at 8*8 positions; conv2: 2*4*3*3 at 4*4; linear: 32*10 once.
    np.testing.assert_array_equal(macs, [36 * 64, 72 * 16, 320])


def test_inference_and_training_ratios() -> None:
    macs = np.array([2304.0, 1152.0, 320.0])
    dens = np.array([0.5, 0.25, 1.0])
    f_s = (1152 + 288 + 320) / 3776
    assert inference_flops_ratio(macs, dens) == pytest.approx(f_s)
    meter = FlopsMeter(macs)
    meter.add_steps(9, dens)
    meter.add_steps(1, dens, dense_weight_grad=True)
    # 9 sparse steps at 3 f_S, one step at 2 f_S + f_D, over 10 dense steps at 3 f_D.
    assert meter.training_ratio == pytest.approx((9 * 3 * f_s + 2 * f_s + 1) / 30)
    meter.add_extra_dense(2)
    assert meter.training_ratio == pytest.approx((9 * 3 * f_s + 2 * f_s + 1 + 6) / 30)
    dense = FlopsMeter(macs)
    dense.add_steps(4, np.ones(3))
    assert dense.training_ratio == pytest.approx(1.0)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="densities"):
        inference_flops_ratio([1.0, 2.0], [0.5])
    with pytest.raises(ValueError, match="densities"):
        inference_flops_ratio([1.0], [1.5])
    net, layers = small_convnet()
    unused = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="not called"):
        layer_macs(net, torch.zeros(1, 1, 8, 8), layers=[*layers, ("unused", unused)])
