"""Typed loader options: every dataset declares its options as a frozen dataclass deriving :class:`LoaderOptions`.

The fields' annotations are enforced when an instance is made (from a config's ``data_options``, a sweep
file or keyword arguments): ``int`` takes integers (an integral float such as ``1000.0`` is converted,
``True`` is not an integer), ``float`` takes finite numbers, ``bool`` only booleans, ``str`` only strings,
``X | None`` also ``None``, ``tuple[int, int]`` a list or tuple of two integers (JSON and TOML give lists).
Ranges are checked by each class's :meth:`LoaderOptions.check`.  A wrong type or range raises
``ValueError`` naming the option, the value and what is valid.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True)
class LoaderOptions:
    """Base of every loader's options (see the module docstring)."""

    #: The dataset's name, used in error messages (set by subclasses).
    dataset: ClassVar[str] = "dataset"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = _coerce(getattr(self, f.name), hints[f.name], f"{self.dataset} option {f.name!r}")
            object.__setattr__(self, f.name, value)
        self.check()

    def check(self) -> None:
        """Range checks of the subclass (types are already enforced)."""

    def require_positive(self, *names: str) -> None:
        """:meth:`fail` on the first option of ``names`` below 1 (they are integers)."""
        for name in names:
            if getattr(self, name) < 1:
                self.fail(name, "a positive integer")

    def fail(self, name: str, valid: str) -> typing.NoReturn:
        """Raise the ``ValueError`` of option ``name``: its value and what would be ``valid``."""
        raise ValueError(f"{self.dataset} option {name!r} must be {valid}, got {getattr(self, name)!r}")


def _coerce(value: Any, hint: Any, what: str) -> Any:
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(value, inner[0], what)
        raise TypeError(f"unsupported option annotation {hint!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"{what} must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, what) for v, a in zip(value, args, strict=True))
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{what} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{what} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{what} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported option annotation {hint!r}")


__all__ = ["LoaderOptions"]
