"""Values checked against a dataclass's field types, so a file that gives a field the wrong type is refused
with one line naming the field, the value and the type it needs (``"3"`` for an integer, a list for a string).

Only the types the configuration dataclasses use are known: ``bool``, ``int`` (not a bool), ``float`` (an
int or float, not a bool), ``str``, ``dict``, ``tuple[X, ...]`` / ``list[X]`` and ``X | None``.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is Any:
        return True
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is dict or origin is dict:
        return isinstance(value, Mapping)
    if origin in (tuple, list):
        items = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(_matches(v, items[0]) for v in value) if items else True
    return True  # a type this module does not know: the dataclass checks it


def type_name(tp: Any) -> str:
    """``int``, ``str or None``, ``list of str``: how a field's type reads in an error message."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "None"
    if origin in (tuple, list):
        items = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list of {type_name(items[0])}" if items else "list"
    if tp is dict or origin is dict:
        return "table (dict)"
    return getattr(tp, "__name__", str(tp))


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """Field name -> its resolved type hint, for dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def check_types(cls: type, values: Mapping[str, Any], what: str) -> None:
    """Every value of ``values`` whose key is a field of ``cls`` has that field's type, else ``ValueError``."""
    types_ = field_types(cls)
    for name, value in values.items():
        if name in types_ and not _matches(value, types_[name]):
            raise ValueError(f"{what}: {name} must be {type_name(types_[name])}, got {value!r}")


__all__ = ["check_types", "field_types", "type_name"]
