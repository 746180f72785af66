"""Learning-rate and sparsity schedules as pure functions of (epoch or step, settings) → value.

Every function here is a closed form of what a training loop steps through; nothing keeps state.
Epochs and steps count from 0 unless a docstring says otherwise.  The learning-rate schedules are
registered in :data:`LR_SCHEDULES` (name → function of ``(epoch, lr, epochs, **options)``) and
:func:`lr_at` composes a linear warm-up with any of them.  The paper's code's settings of each are
cited in ``docs/protocol.md``; its code is RelationalML/sparse_to_sparse.

Learning rate
    :func:`constant_lr`, :func:`multistep_lr` (× ``gamma`` at each milestone; the ER_DST code's
    ``MultiStepLR`` at 50% and 75% of the epochs), :func:`cosine_lr` (to an absolute floor ``lr_min``:
    the STR/IMP code anneals 0.1 → 0.01), :func:`step_lr` (× ``gamma`` every ``step_size`` epochs:
    the edge-popup code's ÷10 every 30 epochs), :func:`warmup_lr` (linear warm-up),
    :func:`edgepopup_lr` (the edge-popup code's step schedule, restarted at every annealing level).

STR
    :func:`str_threshold_trajectory`: the threshold parameter ``s`` of STR under weight decay alone
    through warm-up and the main schedule — it sets when pruning starts, which is why warm-up epochs
    change the weight decay → sparsity mapping.

Sparsity
    :func:`prune_rate` (RiGL/GraNet's cosine-decayed drop fraction, down to 0.005),
    :func:`gradual_density` (GraNet's cubic gradual pruning, ending at epoch 110 of 160),
    :func:`imp_level_densities` (the IMP code's ×0.8 levels), :func:`edgepopup_level_densities`
    (the edge-popup code's geometric annealing over levels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ertrain.registry import Registry

LrFn = Callable[..., float]

#: Learning-rate schedules by name: ``fn(epoch, lr, epochs, **options) -> lr`` (per epoch, 0-based).
LR_SCHEDULES: Registry[LrFn] = Registry("lr_schedules", builtins=("ertrain.schedules",), label="learning-rate schedule")


def _check_epoch(epoch: int, epochs: int | None = None) -> None:
    if int(epoch) != epoch or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    if epochs is not None and (int(epochs) != epochs or epochs < 1):
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")


def _check_positive(value: float, name: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")


@LR_SCHEDULES.register("constant", help="the same learning rate every epoch")
def constant_lr(epoch: int, lr: float, epochs: int) -> float:
    """``lr`` at every epoch."""
    _check_epoch(epoch, epochs)
    return float(lr)


@dataclass(frozen=True)
class MultistepOptions:
    """Options of ``multistep``: milestones as fractions of the epochs (0.5, 0.75 as the ER_DST code) and ``gamma``."""

    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1


@LR_SCHEDULES.register("multistep", options=MultistepOptions, help="x gamma at fractions of the epochs")
def multistep_lr(
    epoch: int, lr: float, epochs: int, milestones: Sequence[float] = (0.5, 0.75), gamma: float = 0.1
) -> float:
    """``lr * gamma ** #{m : epoch >= int(m * epochs)}``: ``MultiStepLR`` stepped once per epoch.

    ``milestones`` are fractions of ``epochs`` (the ER_DST code: ``int(epochs / 2)``,
    ``int(epochs * 3 / 4)``, i.e. epochs 80 and 120 of 160 train at 0.01 and 0.001).
    """
    _check_epoch(epoch, epochs)
    if any(not 0 <= m <= 1 for m in milestones):
        raise ValueError(f"multistep milestones must be fractions of the epochs in [0, 1], got {list(milestones)!r}")
    passed = sum(1 for m in milestones if epoch >= int(m * epochs))
    return float(lr * gamma**passed)


@dataclass(frozen=True)
class CosineOptions:
    """Options of ``cosine``: the absolute floor ``lr_min`` (the STR/IMP code: 0.01)."""

    lr_min: float = 0.0


@LR_SCHEDULES.register("cosine", options=CosineOptions, help="cosine from lr to an absolute floor lr_min")
def cosine_lr(epoch: int, lr: float, epochs: int, lr_min: float = 0.0) -> float:
    """``lr_min + (lr - lr_min) (1 + cos(pi epoch / epochs)) / 2`` — STR's ``cosine_lr``.

    The floor is absolute (the STR code's ``--lr-min``, default 0.01, not a fraction of ``lr``); the
    last epoch ``epochs - 1`` stays slightly above it, as in that code.
    """
    _check_epoch(epoch, epochs)
    if not (math.isfinite(lr_min) and 0 <= lr_min <= lr):
        raise ValueError(f"cosine lr_min must be in [0, lr = {lr!r}], got {lr_min!r}")
    return float(lr_min + 0.5 * (1.0 + math.cos(math.pi * epoch / epochs)) * (lr - lr_min))


@dataclass(frozen=True)
class StepOptions:
    """Options of ``step``: × ``gamma`` every ``step_size`` epochs, counting epochs from ``offset``."""

    step_size: int = 30
    gamma: float = 0.1
    offset: int = 0


@LR_SCHEDULES.register("step", options=StepOptions, help="x gamma every step_size epochs (edge-popup: /10 every 30)")
def step_lr(epoch: int, lr: float, epochs: int, step_size: int = 30, gamma: float = 0.1, offset: int = 0) -> float:
    """``lr * gamma ** ((epoch + offset) // step_size)``.

    The edge-popup code counts epochs from 1 (``offset=1``), so its first drop comes after 29 epochs.
    """
    _check_epoch(epoch, epochs)
    if int(step_size) != step_size or step_size < 1:
        raise ValueError(f"step_size must be a positive integer, got {step_size!r}")
    if int(offset) != offset or offset < 0:
        raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
    return float(lr * gamma ** ((epoch + offset) // step_size))


def warmup_lr(epoch: int, lr: float, warmup_epochs: int) -> float:
    """Linear warm-up ``lr (epoch + 1) / warmup_epochs`` for ``epoch < warmup_epochs`` (STR's ``_warmup_lr``)."""
    _check_epoch(epoch)
    if int(warmup_epochs) != warmup_epochs or warmup_epochs < 1:
        raise ValueError(f"warmup_epochs must be a positive integer, got {warmup_epochs!r}")
    if epoch >= warmup_epochs:
        raise ValueError(f"epoch {epoch!r} is past the {warmup_epochs} warm-up epochs")
    return float(lr * (epoch + 1) / warmup_epochs)


def lr_at(epoch: int, schedule: str, lr: float, epochs: int, warmup_epochs: int = 0, **options: object) -> float:
    """The learning rate of ``epoch`` under ``warmup_epochs`` of linear warm-up, then ``schedule``.

    The warm-up epochs come *before* the ``epochs`` of the schedule, which starts afresh at ``lr``
    (the STR code: 10 warm-up epochs, then a 160-epoch cosine; 170 epochs in all).
    """
    _check_epoch(epoch, epochs)
    _check_positive(lr, "lr")
    if int(warmup_epochs) != warmup_epochs or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be a non-negative integer, got {warmup_epochs!r}")
    if epoch < warmup_epochs:
        return warmup_lr(epoch, lr, warmup_epochs)
    if epoch - warmup_epochs >= epochs:
        raise ValueError(f"epoch {epoch!r} is past the {warmup_epochs} + {epochs} epochs of the schedule")
    entry = LR_SCHEDULES.entry(schedule)
    entry.make_options(options)  # unknown options raise, naming the valid ones
    return float(entry.obj(epoch - warmup_epochs, lr, epochs, **options))


def edgepopup_lr(epoch: int, lr: float, epochs_per_level: int, step_size: int = 30, gamma: float = 0.1) -> float:
    """The edge-popup code's learning rate at global ``epoch`` (0-based over all levels).

    Within each level the code counts epochs 1..``epochs_per_level`` and sets
    ``lr * 0.1 ** (epoch // 30)``: the schedule restarts at every level.
    """
    _check_epoch(epoch, epochs_per_level)
    return step_lr(epoch % epochs_per_level, lr, epochs_per_level, step_size, gamma, offset=1)


# ---------------------------------------------------------------------------------------------- STR


def str_threshold_trajectory(
    s_init: float,
    epoch_lrs: Sequence[float],
    steps_per_epoch: int,
    weight_decay: float,
    momentum: float = 0.9,
    nesterov: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """STR's threshold parameter ``s`` and threshold ``sigmoid(s)`` after each epoch, under weight decay alone.

    STR (Kusupati et al. 2020) prunes ``|w| <= sigmoid(s)``; ``s`` starts at ``s_init`` (-200 in the
    paper's runs) and is trained by SGD with the model's weight decay.  While ``s << 0`` its loss
    gradient carries the factor ``sigmoid'(s) ≈ e^s`` (1e-87 at -200), so ``s`` moves by weight decay
    only: PyTorch's SGD with ``g = weight_decay * s``, ``buf = momentum * buf + g`` (``buf = g`` at the
    first step), ``s -= lr * (g + momentum * buf if nesterov else buf)``.  Every warm-up epoch adds
    ``steps_per_epoch`` such steps, so warm-up moves ``s`` toward 0 and pruning starts earlier: the
    sparsity that a weight decay reaches depends on the warm-up.

    ``epoch_lrs`` is the learning rate of each epoch (e.g. ``[lr_at(e, ...) for e in ...]``).
    Returns ``(s, sigmoid(s))`` after each epoch; valid while ``sigmoid(s)`` stays far below the
    weight magnitudes (then the loss gradient starts to matter).
    """
    if int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
    for name, value in (("weight_decay", weight_decay), ("momentum", momentum)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if not math.isfinite(s_init):
        raise ValueError(f"s_init must be a finite number, got {s_init!r}")
    s, buf, started = float(s_init), 0.0, False
    out = np.empty(len(epoch_lrs), dtype=np.float64)
    for e, lr in enumerate(epoch_lrs):
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"epoch {e}: learning rate must be a non-negative number, got {lr!r}")
        for _ in range(int(steps_per_epoch)):
            g = weight_decay * s
            buf = momentum * buf + g if started else g
            started = True
            s -= lr * (g + momentum * buf if nesterov else buf)
        out[e] = s
    from scipy.special import expit  # imported here: scipy.special costs every ertrain command its start-up

    return out, np.asarray(expit(out), dtype=np.float64)


# ---------------------------------------------------------------------------------------------- sparsity


def prune_rate(step: int, total_steps: int, rate: float = 0.5, rate_min: float = 0.005) -> float:
    """RiGL/GraNet's drop fraction at optimizer ``step``: cosine from ``rate`` to ``rate_min`` over ``total_steps``.

    ``rate_min + (rate - rate_min) (1 + cos(pi step / total_steps)) / 2``: the paper's DST code's
    ``CosineDecay`` (``CosineAnnealingLR`` with ``eta_min=0.005`` over all training steps), stepped
    before each mask update reads it, so the update after step ``t`` (1-based) uses ``prune_rate(t, ...)``.
    """
    _check_epoch(step)
    if int(total_steps) != total_steps or total_steps < 1:
        raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
    if not 0 <= rate_min <= rate <= 1:
        raise ValueError(f"need 0 <= rate_min <= rate <= 1, got rate={rate!r}, rate_min={rate_min!r}")
    t = min(step, total_steps)
    return float(rate_min + 0.5 * (rate - rate_min) * (1.0 + math.cos(math.pi * t / total_steps)))


def gradual_density(
    step: int,
    steps_per_epoch: int,
    update_every: int,
    init_density: float,
    final_density: float,
    *,
    init_prune_epoch: int = 0,
    final_prune_epoch: int = 110,
) -> float | None:
    """GraNet's gradual-pruning target density at optimizer ``step`` (1-based), or ``None`` if it does not prune there.

    The paper's DST code (Zhu & Gupta's cubic schedule, as in GraNet) prunes at every
    ``update_every``-th step ``t`` with ``i = t // update_every`` between ``i_0 = int(init_prune_epoch
    * steps_per_epoch / update_every)`` and ``i_1 - 1`` (``i_1`` the same for ``final_prune_epoch``):
    ``density = final + (init - final) (1 - (i - i_0) / (i_1 - i_0)) ** 3``.  Pruning ends before
    epoch ``final_prune_epoch`` (110 of 160), one update short of ``final_density``.
    """
    if int(step) != step or step < 1:
        raise ValueError(f"step must be a positive integer (1-based), got {step!r}")
    for name, value in (("steps_per_epoch", steps_per_epoch), ("update_every", update_every)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0 <= init_prune_epoch < final_prune_epoch:
        raise ValueError(f"need 0 <= init_prune_epoch < final_prune_epoch, got {init_prune_epoch}, {final_prune_epoch}")
    if not 0 < final_density <= init_density <= 1:
        raise ValueError(f"need 0 < final_density <= init_density <= 1, got {final_density!r}, {init_density!r}")
    if step % update_every:
        return None
    i = step // update_every
    i0 = init_prune_epoch * steps_per_epoch // update_every
    i1 = final_prune_epoch * steps_per_epoch // update_every
    if not i0 <= i <= i1 - 1 or i1 == i0:
        return None
    decay = (1.0 - (i - i0) / (i1 - i0)) ** 3
    return float(final_density + (init_density - final_density) * decay)


def imp_level_densities(start_density: float, final_density: float, keep: float = 0.8) -> list[float]:
    """The IMP code's levels: ``start * keep ** l``, ``l = 1..L``, ``L = int(log(final / start) / log(keep))``.

    The paper's ``run_imp.py`` (0.3 → 0.01 with ``keep = 0.8``: 15 levels, ending at 0.01056, not at
    0.01); ``[]`` when ``final >= start * keep``.
    """
    if not 0 < final_density <= start_density <= 1:
        raise ValueError(f"need 0 < final_density <= start_density <= 1, got {final_density!r}, {start_density!r}")
    if not 0 < keep < 1:
        raise ValueError(f"keep must be in (0, 1), got {keep!r}")
    levels = int((math.log(final_density) - math.log(start_density)) / math.log(keep))
    return [start_density * keep**level for level in range(1, levels + 1)]


def edgepopup_level_densities(
    final_density: float, levels: int, init_density: float = 1.0, start_density: float = 0.6
) -> list[float]:
    """The edge-popup code's density at each annealing level, ``1..levels``.

    ``d_k = clip(d_{k-1} * b)`` from ``d_0 = start`` with ``b = (final / start) ** (1 / levels)``,
    clipped to ``[final, init_density]`` (``init_density``: the ER mask's density; the code's
    ``--sparsity_start`` 0.6 is a density).  The clip feeds the next level, so an ER start below
    ``start * b`` anneals geometrically from ``init_density``; the last level is ``final_density``.
    """
    if int(levels) != levels or levels < 1:
        raise ValueError(f"levels must be a positive integer, got {levels!r}")
    named = (("final_density", final_density), ("init_density", init_density), ("start_density", start_density))
    for name, value in named:
        if not 0 < value <= 1:
            raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    b = (final_density / start_density) ** (1.0 / levels)
    out, d = [], start_density
    for _ in range(int(levels)):
        d = max(min(d * b, init_density), final_density)
        out.append(d)
    return out


__all__ = [
    "LR_SCHEDULES",
    "constant_lr",
    "cosine_lr",
    "edgepopup_level_densities",
    "edgepopup_lr",
    "gradual_density",
    "imp_level_densities",
    "lr_at",
    "multistep_lr",
    "prune_rate",
    "step_lr",
    "str_threshold_trajectory",
    "warmup_lr",
]
