"""The optimizer and the learning-rate schedule a configuration asks for.

Two small functions of the :class:`~ertrain.config.TrainConfig`, kept apart from the loop so a
protocol option (another optimizer, a warm-up, a schedule) is a change here only.

The schedule is stepped once per epoch.  Without warm-up or ``schedule_options`` the ``exact``
protocol's schedules are PyTorch's own (cosine to ``lr_min``, x0.1 at 50% and 75%, constant), so
their results stay bit-identical; every other setting is a ``LambdaLR`` whose factor at epoch ``e``
is :func:`ertrain.schedules.lr_at` ``/ lr``: ``warmup_epochs`` of linear warm-up, then ``schedule``
over ``epochs`` (``step``, ``multistep`` at fractional milestones, ``cosine`` to an absolute floor,
``constant``).  A run trains :func:`total_epochs` ``= warmup_epochs + epochs`` epochs.
:meth:`ertrain.trainer.Trainer.make_optimizer` and :meth:`~ertrain.trainer.Trainer.make_scheduler`
call them (and can be overridden in a subclass).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ertrain.config import TrainConfig

Scheduler = torch.optim.lr_scheduler.LRScheduler


def _sgd(config: TrainConfig, params: Any, fused: bool | None) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                           nesterov=bool(config.nesterov), fused=fused)


def _adam(config: TrainConfig, params: Any, fused: bool | None) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def _adamw(config: TrainConfig, params: Any, fused: bool | None) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


#: Optimizer factories by ``config.optimizer``: ``factory(config, params, fused)``.
OPTIMIZER_FACTORIES: dict[str, Callable[[TrainConfig, Any, bool | None], torch.optim.Optimizer]] = {
    "sgd": _sgd, "adam": _adam, "adamw": _adamw,
}


def _cosine(config: TrainConfig, opt: torch.optim.Optimizer, epochs: int, lr_min: float) -> Scheduler:
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs), eta_min=lr_min)


def _multistep(config: TrainConfig, opt: torch.optim.Optimizer, epochs: int, lr_min: float) -> Scheduler:
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[epochs // 2, (epochs * 3) // 4], gamma=0.1)


def _constant(config: TrainConfig, opt: torch.optim.Optimizer, epochs: int, lr_min: float) -> Scheduler:
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)


#: Schedule factories by ``config.schedule``: ``factory(config, optimizer, epochs, lr_min)``, stepped per epoch.
SCHEDULE_FACTORIES: dict[str, Callable[[TrainConfig, torch.optim.Optimizer, int, float], Scheduler]] = {
    "cosine": _cosine, "multistep": _multistep, "constant": _constant,
}


def _pick(table: dict[str, Any], name: str, what: str) -> Any:
    if name not in table:
        raise ValueError(f"{what} must be one of {tuple(table)}, got {name!r}")
    return table[name]


def make_optimizer(config: TrainConfig, params: Any, device: torch.device) -> torch.optim.Optimizer:
    """``config.optimizer`` (``sgd``/``adam``/``adamw``) over ``params``; fused kernels on CUDA, foreach on the CPU."""
    fused = True if device.type == "cuda" else None
    factory = _pick(OPTIMIZER_FACTORIES, config.optimizer, "optimizer")
    out: torch.optim.Optimizer = factory(config, params, fused)
    return out


def total_epochs(config: TrainConfig, epochs: int | None = None) -> int:
    """Epochs one schedule spans: ``warmup_epochs`` + ``epochs`` (default ``config.epochs``)."""
    return int(config.warmup_epochs) + int(config.epochs if epochs is None else epochs)


def uses_torch_schedule(config: TrainConfig) -> bool:
    """Whether the schedule is PyTorch's own (no warm-up, no schedule options: the exact protocol's path)."""
    return int(config.warmup_epochs) == 0 and not config.schedule_options and config.schedule in SCHEDULE_FACTORIES


def lr_factors(config: TrainConfig, epochs: int, lr_min: float | None = None) -> list[float]:
    """``lr_at(e) / lr`` for every epoch ``e`` of warm-up + ``epochs`` (:func:`ertrain.schedules.lr_at`)."""
    from ertrain.schedules import lr_at

    options = dict(config.schedule_options)
    if config.schedule == "cosine":
        options["lr_min"] = config.lr_min if lr_min is None else lr_min
    warmup, lr = int(config.warmup_epochs), float(config.lr)
    n = max(1, int(epochs))
    return [lr_at(e, config.schedule, lr, n, warmup, **options) / lr for e in range(warmup + n)]


def make_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, epochs: int, lr_min: float | None = None
) -> Scheduler:
    """Per-epoch schedule over warm-up + ``epochs`` (see the module docstring); ``lr_min`` overrides ``config.lr_min``.

    Past the last epoch the last factor stays (a schedule stepped once more than it spans).
    """
    if uses_torch_schedule(config):
        factory = _pick(SCHEDULE_FACTORIES, config.schedule, "schedule")
        out: Scheduler = factory(config, optimizer, epochs, config.lr_min if lr_min is None else lr_min)
        return out
    factors = lr_factors(config, epochs, lr_min)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: factors[min(e, len(factors) - 1)])


__all__ = [
    "OPTIMIZER_FACTORIES", "SCHEDULE_FACTORIES", "lr_factors", "make_optimizer", "make_scheduler", "total_epochs",
    "uses_torch_schedule",
]
