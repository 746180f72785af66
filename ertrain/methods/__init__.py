"""Training methods, a registry by name: ``static`` plus the sparse-to-sparse methods.

``METHODS[name]`` is a :class:`~ertrain.methods.base.Method` subclass (a
:class:`~ertrain.registry.Registry` whose entries carry the method's ``Options`` dataclass); add one
with the :func:`register_method` decorator — in a module of your own, registered through the
``ertrain.methods`` entry-point group, or in a module listed in :data:`ertrain.method_registry.BUILTIN_MODULES`.
"""

from __future__ import annotations

from ertrain.method_registry import METHODS, get_method, register_method
from ertrain.methods.base import Method

__all__ = ["METHODS", "Method", "get_method", "register_method"]
