"""The interface every training method implements, and the part of the trainer it may use.

A method is a small class with

* ``Options`` — a frozen dataclass of its hyper-parameters (the CLI generates ``--<method>-<field>``
  flags from it; the values live in ``TrainConfig.method_options``);
* ``State`` — a dataclass of what it needs to resume (numbers, strings, lists, dicts, CPU tensors).
  :meth:`Method.state_dict` is its fields and :meth:`Method.load_state_dict` rebuilds it; the runner
  saves it in every checkpoint and hands it back before :meth:`Method.run` when it resumes;
* hooks, all no-ops here:

  ========================================  =====================================================
  ``start(trainer)``                        once, before training (after a resume restored state)
  ``train(trainer)``                        the training; default: one ``fit`` of warm-up + ``epochs``
  ``after_backward(trainer, step)``         gradients are ready (dense ones, before the step)
  ``after_step(trainer, step)``             after the optimizer step and the mask re-application
  ``end_epoch(trainer, epoch, record)``     after an epoch's evaluation, before its checkpoint;
                                            may add keys to ``record``
  ``finish(trainer) -> dict``               once, after training: the extra ``result.json`` fields
  ========================================  =====================================================

  :meth:`Method.run` is ``start``, ``train``, ``finish``; ``train`` passes the method itself as
  the loop's hook object, so the three step/epoch hooks are called by ``trainer.fit``.

Resuming: after a restore the *next* ``trainer.fit`` call continues the fit that was interrupted
(same optimizer, scheduler and epoch).  A method that calls ``fit`` more than once (IMP cycles,
annealing levels) therefore keeps in its state where it was (e.g. the cycle index, updated before
each ``fit``) and starts its loop from there.

The trainer interface (:data:`TRAINER_INTERFACE`; a test checks methods use nothing else, and
never assign a trainer attribute):

* read: ``config`` (the run's ``TrainConfig``), ``model`` (the plain module; methods may register
  parametrisations on its layers), ``data`` (the dataset on the device), ``generator`` (the run's
  CPU ``torch.Generator``), ``masking`` (the current ``Masking`` or None), ``optimizer`` (of the
  current ``fit``), ``global_step``, ``steps_per_epoch``;
* call: ``fit(epochs, optimizer=, scheduler=, hooks=, desc=)``, ``evaluate(split)``,
  ``make_optimizer(params)``, ``make_scheduler(optimizer, epochs, lr_min)``,
  ``use_masking(masking)`` (the masks the loop re-applies after every step; None: none).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ertrain.optim import total_epochs

if TYPE_CHECKING:
    from ertrain.config import TrainConfig
    from ertrain.trainer import Trainer

#: The trainer attributes and methods a method may use (see the module docstring).
TRAINER_INTERFACE = frozenset({
    "config", "model", "data", "generator", "masking", "optimizer", "global_step", "steps_per_epoch",
    "fit", "evaluate", "make_optimizer", "make_scheduler", "use_masking",
})


class Method:
    """Base class: subclass it, define ``Options`` and ``State``, override hooks, register with ``register_method``."""

    name: ClassVar[str] = ""
    #: Whether the method trains the top-level ``warmup_epochs`` (a linear warm-up before its schedule).
    supports_warmup: ClassVar[bool] = True

    @dataclass(frozen=True)
    class Options:
        """No options."""

    @dataclass
    class State:
        """Nothing to resume."""

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()
        self.state: Any = self.State()

    @classmethod
    def from_config(cls, config: TrainConfig) -> Method:
        """The method with the options stored in ``config.method_options`` (checked against ``config`` first)."""
        cls.check_config(config)
        known = {f.name for f in dataclasses.fields(cls.Options)}
        return cls(cls.Options(**{k: v for k, v in config.method_options.items() if k in known}))

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        """Raise ``ValueError`` for run settings the method cannot train (before any work)."""
        if int(config.warmup_epochs) > 0 and not cls.supports_warmup:
            raise ValueError(f"method {cls.name!r} has no warm-up; got warmup_epochs={config.warmup_epochs!r} (use 0)")
        span = int(config.warmup_epochs) + int(config.epochs)
        # no epoch at all (a masks-only run, --epochs 0) reports the untrained model: nothing to select from
        if config.select != "final" and span > 0 and int(config.select_from_epoch) >= span:
            raise ValueError(f"select_from_epoch {config.select_from_epoch!r} is past the {span} epochs trained "
                             f"(warm-up + epochs); use a value below {span}")

    # -- the run --------------------------------------------------------------------------------------
    def run(self, trainer: Trainer) -> dict[str, Any]:
        """Train with ``trainer``: :meth:`start`, :meth:`train`, :meth:`finish`; return extra result fields."""
        self.start(trainer)
        self.train(trainer)
        return self.finish(trainer)

    def start(self, trainer: Trainer) -> None:  # noqa: B027 (a hook: no-op unless overridden)
        """Prepare the run (masks, parametrisations, schedules); the state may come from a checkpoint."""

    def train(self, trainer: Trainer) -> None:
        """One ``fit`` of ``warmup_epochs + epochs`` epochs with this method as the loop's hooks."""
        fit_schedule(trainer, self, self.name)

    def finish(self, trainer: Trainer) -> dict[str, Any]:
        """Extra ``result.json`` fields (JSON-able), after training."""
        return {}

    # -- hooks of the loop ----------------------------------------------------------------------------
    def after_backward(self, trainer: Trainer, step: int) -> None:  # noqa: B027
        """Gradients of step ``step`` (0-based, over the run) are ready; the optimizer has not stepped."""

    def after_step(self, trainer: Trainer, step: int) -> None:  # noqa: B027
        """Step ``step`` is done and the masks are re-applied."""

    def end_epoch(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:  # noqa: B027
        """Epoch ``epoch`` (0-based within the fit) is evaluated; ``record`` may be extended."""

    # -- checkpoint state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The fields of :attr:`state` (what the method needs to resume)."""
        return {f.name: getattr(self.state, f.name) for f in dataclasses.fields(self.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Rebuild :attr:`state` from :meth:`state_dict`'s output (an empty dict: a fresh run)."""
        if not state:
            return
        known = {f.name for f in dataclasses.fields(self.State)}
        unknown = sorted(set(state) - known)
        if unknown:
            raise ValueError(f"{self.name or type(self).__name__} state has unknown fields {unknown}; "
                             f"valid: {sorted(known)}")
        self.state = self.State(**state)


def fit_schedule(trainer: Trainer, method: Method, desc: str, params: Any = None) -> None:
    """One ``fit`` over ``params`` (default: all): a fresh optimizer and the configured schedule, warm-up first.

    It trains :func:`ertrain.optim.total_epochs` ``= warmup_epochs + epochs`` epochs.
    """
    config = trainer.config
    optimizer = trainer.make_optimizer() if params is None else trainer.make_optimizer(params=params)
    scheduler = trainer.make_scheduler(optimizer, int(config.epochs))
    trainer.fit(total_epochs(config), optimizer=optimizer, scheduler=scheduler, hooks=(method,), desc=desc)


__all__ = ["TRAINER_INTERFACE", "Method", "fit_schedule"]
