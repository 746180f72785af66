"""``static``: train with a fixed mask (the paper's random-pruning experiments, appendix A.7)."""

from __future__ import annotations

from ertrain.methods import register_method
from ertrain.methods.base import Method


@register_method("static")
class Static(Method):
    """The mask chosen at initialisation never changes; train ``config.epochs`` epochs."""
