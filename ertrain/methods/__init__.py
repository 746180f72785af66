"""Training methods, a registry by name: ``static`` plus the sparse-to-sparse methods.

``METHODS[name]`` is a :class:`~ertrain.methods.base.Method` subclass; add one with the
:func:`register_method` decorator in a module imported at the bottom of this file.
"""

from __future__ import annotations

from collections.abc import Callable

from ertrain.methods.base import Method

METHODS: dict[str, type[Method]] = {}


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: register a :class:`Method` subclass under ``name`` (and set its ``name``)."""

    def deco(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        cls.name = name
        METHODS[name] = cls
        return cls

    return deco


def get_method(name: str) -> type[Method]:
    """``METHODS[name]``; unknown names raise ``ValueError`` listing the valid ones."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid names: {', '.join(sorted(METHODS))}")
    return METHODS[name]


# Method modules register themselves on import (one line per module).
import ertrain.methods.dst  # noqa: E402, F401
import ertrain.methods.edgepopup  # noqa: E402, F401
import ertrain.methods.imp  # noqa: E402, F401
import ertrain.methods.pai  # noqa: E402, F401
import ertrain.methods.str  # noqa: E402, F401
from ertrain.methods import static  # noqa: E402, F401

__all__ = ["METHODS", "Method", "get_method", "register_method"]
