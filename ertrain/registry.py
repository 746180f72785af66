"""One generic registry for every set of named things in ertrain.

A :class:`Registry` maps a name to an :class:`Entry`: the registered object (a function or a
class), an optional typed options dataclass (its fields become CLI flags and are validated), what
the entry needs to run (``"shapes"`` only, the ``"model"``, or the ``"data"``) and a one-line help.

Three guarantees hold for every registry:

* a duplicate name is an error (:class:`DuplicateNameError`);
* an unknown name is a :class:`UnknownNameError` (a ``ValueError``) whose message lists the valid
  names;
* the set of names is complete whichever module was imported first: a registry names the modules
  that hold its built-in entries (``builtins``) and imports them on first use, then loads the
  Python entry-point group ``ertrain.<kind>`` so that other packages can add entries.

An entry point's value is a module (importing it registers its entries through the public
``register`` calls) or a callable taking no argument (called once).

Example::

    SCHEMES = Registry("density_schemes", builtins=("ertrain.density",))

    @SCHEMES.register("uniform", help="the same density in every layer")
    def uniform(shapes, density): ...

    SCHEMES["uniform"]              # the function
    SCHEMES.entry("uniform").needs  # 'shapes'
    sorted(SCHEMES)                 # every name, built-ins and plug-ins
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Obj = TypeVar("Obj")

#: What an entry needs beyond its options: the layer shapes only, a built model, or the data.
NEEDS = ("shapes", "model", "data")


class UnknownNameError(ValueError):
    """A name that is not registered; the message lists the valid ones."""


class DuplicateNameError(ValueError):
    """A name registered twice."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name."""

    name: str
    obj: T
    options: type | None = None
    needs: str = "shapes"
    help: str = ""
    #: Registry-specific facts (e.g. the input kinds a model accepts).
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def make_options(self, values: Mapping[str, Any] | None = None) -> Any:
        """The options dataclass filled from ``values`` (unknown keys raise, naming the valid ones)."""
        values = dict(values or {})
        if self.options is None:
            if values:
                raise ValueError(f"{self.name!r} takes no options, got {sorted(values)}")
            return None
        known = [f.name for f in dataclasses.fields(self.options)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown options {unknown} for {self.name!r}; valid: {known}")
        return self.options(**values)

    def canonical_options(self, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``values`` validated, with the entries equal to their defaults dropped (for run identity)."""
        opts = self.make_options(values)
        if opts is None:
            return {}
        out: dict[str, Any] = {}
        for f in dataclasses.fields(opts):
            value = getattr(opts, f.name)
            if _normal(value) != _normal(field_default(f)):
                out[f.name] = _normal(value)
        return out


class Registry(Mapping[str, T], Generic[T]):
    """Names → :class:`Entry` (a read-only mapping name → object; see the module docstring)."""

    def __init__(self, kind: str, *, builtins: tuple[str, ...] = (), label: str | None = None) -> None:
        self.kind = kind
        self.label = label or kind.rstrip("s").replace("_", " ")
        self._builtins = builtins
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False
        self._loading = False

    # -- registration ------------------------------------------------------------------------------
    def register(
        self,
        name: str,
        obj: Any = None,
        *,
        options: type | None = None,
        needs: str = "shapes",
        help: str = "",
        **info: Any,
    ) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, a decorator.  Duplicates raise."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.label} name must be a non-empty string, got {name!r}")
        if needs not in NEEDS:
            raise ValueError(f"needs must be one of {NEEDS}, got {needs!r}")
        if options is not None and not dataclasses.is_dataclass(options):
            raise ValueError(f"options of {self.label} {name!r} must be a dataclass, got {options!r}")

        def add(target: Obj) -> Obj:
            if name in self._entries:
                raise DuplicateNameError(f"{self.label} {name!r} is already registered")
            self._entries[name] = Entry(name, target, options, needs, help, dict(info))  # type: ignore[arg-type]
            return target

        return add if obj is None else add(obj)

    # -- lookup ------------------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for module in self._builtins:
                importlib.import_module(module)
            for ep in _entry_points(tuple(sys.path)).select(group=f"ertrain.{self.kind}"):
                loaded = ep.load()
                if callable(loaded) and not isinstance(loaded, type):
                    loaded()
            self._loaded = True
        finally:
            self._loading = False

    def entry(self, name: str) -> Entry[T]:
        """The entry of ``name``; unknown names raise :class:`UnknownNameError` listing the valid ones."""
        self._ensure_loaded()
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.label} {name!r}; valid names: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._ensure_loaded()
        return sorted(self._entries)

    def check(self, name: str) -> str:
        """``name`` if registered, else :class:`UnknownNameError`."""
        self.entry(name)
        return name

    def __getitem__(self, name: str) -> T:
        return self.entry(name).obj

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests that register a throw-away entry)."""
        self._entries.pop(name, None)


@functools.lru_cache(maxsize=8)
def _entry_points(path: tuple[str, ...]) -> Any:
    """Every installed entry point, found by one scan of the distributions on ``path`` (``sys.path``).

    A scan reads every installed package's metadata (tens of milliseconds); the registries share one.
    """
    return metadata.entry_points()


def field_default(f: dataclasses.Field[Any]) -> Any:
    """A dataclass field's default (calling its factory), or ``dataclasses.MISSING`` when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    factory = f.default_factory
    return factory() if callable(factory) else dataclasses.MISSING


def _normal(value: Any) -> Any:
    """Tuples as lists, so options read back from JSON compare equal to their defaults."""
    if isinstance(value, tuple | list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


Factory = Callable[..., Any]

__all__ = ["NEEDS", "DuplicateNameError", "Entry", "Registry", "UnknownNameError", "field_default"]
