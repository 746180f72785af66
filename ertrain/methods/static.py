"""``static``: train with a fixed mask (the paper's random-pruning experiments, appendix A.7)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ertrain.methods import register_method
from ertrain.methods.base import Method

if TYPE_CHECKING:
    from ertrain.train import Trainer


@register_method("static")
class Static(Method):
    """The mask chosen at initialisation never changes; train ``config.epochs`` epochs."""

    def run(self, trainer: Trainer) -> dict[str, Any]:
        trainer.fit(trainer.config.epochs, desc="static")
        return {}
