"""The registry of training methods, by name (:data:`METHODS`), below the methods themselves.

The configuration validates a run's method and its options against this registry, and the methods
register themselves in it, so the dependency runs one way: ``config`` -> ``method_registry`` <- each
method module.  The built-in method modules are imported on the first look-up (the registry's
``builtins``); other packages add methods through the ``ertrain.methods`` entry-point group.
:mod:`ertrain.methods` re-exports these names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ertrain.registry import Registry

#: The built-in method modules (each registers its methods on import).
BUILTIN_MODULES = tuple(f"ertrain.methods.{m}" for m in ("static", "dst", "edgepopup", "imp", "pai", "str"))

#: name -> the method class (a subclass of :class:`ertrain.methods.base.Method`), with its ``Options``.
METHODS: Registry[Any] = Registry("methods", builtins=BUILTIN_MODULES, label="method")

M = TypeVar("M", bound=type)


def register_method(name: str, *, help: str = "") -> Callable[[M], M]:
    """Class decorator: register a method class under ``name`` (and set its ``name``)."""

    def deco(cls: M) -> M:
        method: Any = cls  # a Method subclass: it has Options and name (the type is not imported here)
        METHODS.register(name, method, options=method.Options, help=help or (cls.__doc__ or "").split("\n")[0])
        method.name = name
        return cls

    return deco


def get_method(name: str) -> Any:
    """``METHODS[name]``; unknown names raise ``ValueError`` listing the valid ones."""
    return METHODS[name]


__all__ = ["BUILTIN_MODULES", "METHODS", "get_method", "register_method"]
