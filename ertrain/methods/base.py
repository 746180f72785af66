"""The interface every training method implements.

A method is a small class with a frozen ``Options`` dataclass of its hyper-parameters (the CLI
generates ``--<method>-<field>`` flags from it; the values live in ``TrainConfig.method_options``)
and a ``run(trainer)`` that trains by calling ``trainer.fit`` once or several times and returns the
extra fields of ``result.json``.

Resuming: ``ertrain.train.run`` stores ``state_dict()`` in every checkpoint and hands it back to
``load_state_dict`` before ``run`` when it resumes.  After a restore, the *next* ``trainer.fit``
call continues the fit that was interrupted (same optimizer, scheduler and epoch).  A method that
calls ``fit`` more than once (IMP cycles, annealing levels) therefore keeps in its state where it
was (e.g. the cycle index, updated before each ``fit``) and starts its loop from there.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ertrain.config import TrainConfig
    from ertrain.train import Trainer


class Method(abc.ABC):
    """Base class: subclass it, define ``Options`` and ``run``, and register it with ``register_method``."""

    name: ClassVar[str] = ""

    @dataclass(frozen=True)
    class Options:
        """No options."""

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()

    @classmethod
    def from_config(cls, config: TrainConfig) -> Method:
        """The method with the options stored in ``config.method_options``."""
        known = {f.name for f in dataclasses.fields(cls.Options)}
        return cls(cls.Options(**{k: v for k, v in config.method_options.items() if k in known}))

    @abc.abstractmethod
    def run(self, trainer: Trainer) -> dict[str, Any]:
        """Train with ``trainer``; return extra result fields (JSON-able)."""

    def state_dict(self) -> dict[str, Any]:
        """What the method needs to resume (tensors, numbers, strings, lists, dicts)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (stateless methods keep this no-op)
        """Restore what :meth:`state_dict` returned."""
