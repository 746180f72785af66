"""Training methods, a registry by name: ``static`` plus the sparse-to-sparse methods.

``METHODS[name]`` is a :class:`~ertrain.methods.base.Method` subclass (a
:class:`~ertrain.registry.Registry` whose entries carry the method's ``Options`` dataclass); add one
with the :func:`register_method` decorator — in a module of your own, registered through the
``ertrain.methods`` entry-point group, or in a module listed below.
"""

from __future__ import annotations

from collections.abc import Callable

from ertrain.methods.base import Method
from ertrain.registry import Registry

#: The built-in method modules (each registers its methods on import).
_BUILTIN_MODULES = tuple(
    f"ertrain.methods.{m}" for m in ("static", "dst", "edgepopup", "imp", "pai", "str")
)

METHODS: Registry[type[Method]] = Registry("methods", builtins=_BUILTIN_MODULES, label="method")


def register_method(name: str, *, help: str = "") -> Callable[[type[Method]], type[Method]]:
    """Class decorator: register a :class:`Method` subclass under ``name`` (and set its ``name``)."""

    def deco(cls: type[Method]) -> type[Method]:
        METHODS.register(name, cls, options=cls.Options, help=help or (cls.__doc__ or "").split("\n")[0])
        cls.name = name
        return cls

    return deco


def get_method(name: str) -> type[Method]:
    """``METHODS[name]``; unknown names raise ``ValueError`` listing the valid ones."""
    return METHODS[name]

__all__ = ["METHODS", "Method", "get_method", "register_method"]
