"""Tests of ertrain.schedules against the paper's code's formulas written out here, and against torch's schedulers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ertrain.schedules import (
    LR_SCHEDULES,
    cosine_lr,
    edgepopup_level_densities,
    edgepopup_lr,
    gradual_density,
    imp_level_densities,
    lr_at,
    multistep_lr,
    prune_rate,
    step_lr,
    str_threshold_trajectory,
    warmup_lr,
)


def torch_lrs(make: object, epochs: int, lr: float = 0.1) -> list[float]:
    """The learning rate of each epoch of a torch scheduler stepped once per epoch (as the training loops do)."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr)
    sched = make(opt)  # type: ignore[operator]
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_multistep_every_epoch_equals_the_er_dst_codes_multisteplr() -> None:
    # ER_DST/main.py: MultiStepLR(milestones=[int(epochs / 2), int(epochs * 3 / 4)]), stepped after each epoch
    for epochs in (160, 7, 250):
        expected = torch_lrs(
            lambda o, e=epochs: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[int(e / 2), int(e * 3 / 4)]),
            epochs,
        )
        got = [multistep_lr(e, 0.1, epochs) for e in range(epochs)]
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert multistep_lr(79, 0.1, 160) == 0.1 and multistep_lr(80, 0.1, 160) == pytest.approx(0.01)
    assert multistep_lr(120, 0.1, 160) == pytest.approx(0.001)


def test_cosine_with_floor_every_epoch_equals_the_str_code() -> None:
    # STR/utils/schedulers.py cosine_lr: lr_min + 0.5 * (1 + cos(pi * e / es)) * (lr - lr_min), lr_min = 0.01 absolute
    lr, lr_min, epochs = 0.1, 0.01, 160
    code = [lr_min + 0.5 * (1 + np.cos(np.pi * e / epochs)) * (lr - lr_min) for e in range(epochs)]
    got = [cosine_lr(e, lr, epochs, lr_min=lr_min) for e in range(epochs)]
    np.testing.assert_allclose(got, code, rtol=1e-13)
    # a second algorithm: torch's (recursive) CosineAnnealingLR with eta_min
    recursive = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=epochs, eta_min=lr_min), epochs)
    np.testing.assert_allclose(got, recursive, rtol=1e-9)
    assert got[0] == 0.1 and got[80] == pytest.approx(0.055) and got[-1] > lr_min
    # the floor is absolute: lr 0.05 still ends near 0.01, not near 0.005
    assert cosine_lr(159, 0.05, 160, lr_min=0.01) == pytest.approx(0.01, rel=1e-3)


def test_str_warmup_then_cosine_every_epoch() -> None:
    """STR/main.py: 10 warm-up epochs at lr (e + 1) / 10, then the cosine restarts at lr for 160 more epochs."""
    lr, warm, epochs = 0.1, 10, 160
    code = [lr * (e + 1) / warm for e in range(warm)]
    code += [0.01 + 0.5 * (1 + math.cos(math.pi * e / epochs)) * (lr - 0.01) for e in range(epochs)]
    got = [lr_at(e, "cosine", lr, epochs, warmup_epochs=warm, lr_min=0.01) for e in range(warm + epochs)]
    np.testing.assert_allclose(got, code, rtol=1e-13)
    assert got[0] == pytest.approx(0.01) and got[9] == got[10] == pytest.approx(0.1)
    assert [warmup_lr(e, 0.1, 4) for e in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    with pytest.raises(ValueError, match="past the 10 \\+ 160 epochs"):
        lr_at(170, "cosine", lr, epochs, warmup_epochs=warm)


def test_edgepopup_every_epoch_of_every_level_equals_the_code() -> None:
    """ER_SLT/cifar_main.py: for each of 5 levels, epochs 1..100 at lr * 0.1 ** (epoch // 30)."""
    lr = 0.1
    code = [lr * (0.1 ** (epoch // 30)) for _level in range(1, 6) for epoch in range(1, 101)]
    got = [edgepopup_lr(e, lr, 100) for e in range(500)]
    np.testing.assert_allclose(got, code, rtol=1e-13)
    # the first drop is after 29 epochs of each level, and every level restarts at lr
    assert got[28] == 0.1 and got[29] == pytest.approx(0.01) and got[100] == 0.1 and got[99] == pytest.approx(1e-4)
    assert [step_lr(e, 1.0, 100, step_size=30) for e in (0, 29, 30, 60, 90)] == pytest.approx([1, 1, 0.1, 0.01, 0.001])


def test_rigl_prune_rate_equals_the_dst_codes_cosine_decay() -> None:
    """ER_DST CosineDecay: CosineAnnealingLR(T_max = steps, eta_min = 0.005) on 0.5, stepped before each read."""
    total = 600
    param = torch.nn.Parameter(torch.zeros(1))
    sgd = torch.optim.SGD([param], lr=0.5)
    stepper = torch.optim.lr_scheduler.CosineAnnealingLR(sgd, total, 0.005)
    for t in range(1, total + 1):
        sgd.step()
        stepper.step()  # Masking.step: prune_rate_decay.step(), then get_dr()
        assert prune_rate(t, total) == pytest.approx(sgd.param_groups[0]["lr"], rel=1e-9, abs=1e-12)
    assert prune_rate(0, total) == 0.5 and prune_rate(total, total) == pytest.approx(0.005)
    assert prune_rate(total // 2, total) == pytest.approx(0.2525)


def test_gradual_pruning_ends_at_epoch_110_of_160_as_the_code() -> None:
    """ER_DST core.py ``pruning``: cubic from init to final density between epochs 0 and 110, every update step."""
    steps_per_epoch, every, d0, d1 = 450, 1000, 0.5, 0.01  # CIFAR-10 45k/100, --update-frequency 1000
    total = 160 * steps_per_epoch
    seen: list[tuple[int, float]] = []
    for step in range(1, total + 1):
        got = gradual_density(step, steps_per_epoch, every, d0, d1)
        # the code, written out
        expected = None
        if step % every == 0:
            curr = int(step / every)
            final_iter = int((110 * steps_per_epoch) / every)
            ini_iter = int((0 * steps_per_epoch) / every)
            if ini_iter <= curr <= final_iter - 1:
                decay = (1 - ((curr - ini_iter) / (final_iter - ini_iter))) ** 3
                expected = 1 - ((1 - d0) + (d0 - d1) * (1 - decay))  # the code's prune rate is a sparsity
        if expected is None:
            assert got is None, step
        else:
            assert got is not None and got == pytest.approx(expected, rel=1e-12), step
            seen.append((step, got))
    assert seen[-1][0] == 48_000 and seen[-1][0] < 110 * steps_per_epoch  # last prune before epoch 110
    assert seen[-1][1] > d1 and seen[-1][1] == pytest.approx(d1 + (d0 - d1) / 49**3)
    assert len(seen) == 48


def test_str_threshold_trajectory_equals_torch_sgd_with_warmup() -> None:
    """s under weight decay alone, through 10 warm-up epochs and a cosine, equals torch's SGD on a scalar."""
    warm, epochs, steps, wd = 10, 20, 7, 5e-4
    lrs = [lr_at(e, "cosine", 0.1, epochs, warmup_epochs=warm, lr_min=0.01) for e in range(warm + epochs)]
    for nesterov in (False, True):
        s_par = torch.nn.Parameter(torch.tensor([-200.0], dtype=torch.float64))
        opt = torch.optim.SGD([s_par], lr=0.1, momentum=0.9, weight_decay=wd, nesterov=nesterov)
        expected = []
        for lr in lrs:
            for group in opt.param_groups:
                group["lr"] = lr
            for _ in range(steps):
                s_par.grad = torch.zeros_like(s_par)  # sigmoid'(-200) ~ 1e-87: the loss gradient vanishes
                opt.step()
            expected.append(float(s_par.detach()))
        s, threshold = str_threshold_trajectory(-200.0, lrs, steps, wd, momentum=0.9, nesterov=nesterov)
        np.testing.assert_allclose(s, expected, rtol=1e-12)
        np.testing.assert_allclose(threshold, 1 / (1 + np.exp(-np.asarray(expected))), rtol=1e-9)
    # without momentum the closed form is a product of (1 - lr_t wd)
    s, _ = str_threshold_trajectory(-200.0, lrs, steps, wd, momentum=0.0)
    assert s[-1] == pytest.approx(-200.0 * math.prod((1 - lr * wd) ** steps for lr in lrs), rel=1e-12)
    # warm-up moves s towards 0 before the main schedule: after the same cosine, s is closer to 0 with warm-up
    no_warm = [lr_at(e, "cosine", 0.1, epochs, lr_min=0.01) for e in range(epochs)]
    s_no, _ = str_threshold_trajectory(-200.0, no_warm, steps, wd)
    s_w, _ = str_threshold_trajectory(-200.0, lrs, steps, wd)
    assert s_no[-1] < s_w[-1] < 0


def test_imp_levels_equal_run_imp() -> None:
    # STR/run_imp.py: L = int((log(d) - log(0.3)) / log(0.8)); y = 0.3 * 0.8 ** arange(1, L + 1)
    for density in (0.01, 0.1, 0.2, 0.25):
        levels = int((np.log(density) - np.log(0.3)) / np.log(0.8))
        code = (0.3 * 0.8 ** np.arange(1, levels + 1)).tolist()
        np.testing.assert_allclose(imp_level_densities(0.3, density), code, rtol=1e-13)
    assert len(imp_level_densities(0.3, 0.01)) == 15 and imp_level_densities(0.3, 0.25) == []


@pytest.mark.parametrize(("final", "init"), [(0.2, 0.5), (0.05, 0.1), (0.1, 1.0), (0.01, 0.3)])
def test_edgepopup_levels_equal_the_codes_annealing(final: float, init: float) -> None:
    # ER_SLT/cifar_main.py: b = (sparsity / sparsity_start) ** (1 / levels); sparsity *= b; clamp to [final, init]
    b = (final / 0.6) ** (1 / 5)
    sparsity, code = 0.6, []
    for _level in range(1, 6):
        sparsity = sparsity * b
        if init <= sparsity:
            sparsity = init
        if sparsity < final:
            sparsity = final
        code.append(sparsity)
    assert edgepopup_level_densities(final, 5, init) == pytest.approx(code, rel=1e-13)
    assert code[-1] == pytest.approx(final)


@settings(max_examples=50)
@given(epochs=st.integers(1, 300), data=st.data())
def test_registered_schedules_start_at_lr_and_never_increase(epochs: int, data: st.DataObject) -> None:
    for name in ("constant", "multistep", "cosine", "step"):
        lrs = [lr_at(e, name, 0.2, epochs) for e in range(epochs)]
        assert lrs[0] == pytest.approx(0.2) or (name == "multistep" and epochs < 2)
        assert all(b <= a * (1 + 1e-12) for a, b in zip(lrs, lrs[1:], strict=False))


def test_registry_and_bad_input() -> None:
    assert {"constant", "multistep", "cosine", "step"} <= set(LR_SCHEDULES)
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'cosin'; valid names: constant, cosine"):
        lr_at(0, "cosin", 0.1, 10)
    with pytest.raises(ValueError, match="unknown options \\['floor'\\]"):
        lr_at(0, "cosine", 0.1, 10, floor=0.01)
    with pytest.raises(ValueError, match="lr_min must be in"):
        cosine_lr(0, 0.1, 10, lr_min=0.2)
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        cosine_lr(-1, 0.1, 10)
    with pytest.raises(ValueError, match="need 0 < final_density <= init_density"):
        gradual_density(1000, 10, 100, 0.1, 0.5)
    with pytest.raises(ValueError, match="rate_min"):
        prune_rate(1, 10, rate=0.1, rate_min=0.2)
