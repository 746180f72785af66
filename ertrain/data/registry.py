"""The dataset registry: name → :class:`Dataset` (loader, typed options, declared inputs and shape, files).

Every dataset declares, besides its loader,

* ``options``: a frozen :class:`~ertrain.data._options.LoaderOptions` dataclass; unknown or mistyped
  ``data_options`` are refused before anything is loaded (:func:`dataset_options`);
* ``inputs``: the kind of input it yields, one of :data:`INPUT_KINDS`, so that a model can be checked
  against it before training (:func:`ertrain.data.identity.check_compatible`);
* ``shape``: the shape of one example (``None`` for an axis whose size the files decide); every loaded
  bundle is checked against it, and against empty splits and non-finite inputs (:func:`check_bundle`);
* ``classes``: the number of classes where the dataset fixes it, checked on every loaded bundle; with
  ``shape`` it gives a model's input and output sizes without the data files (:func:`declared_classes`);
* ``files``: the data files it reads (for the data fingerprint), and ``memory``: an estimate in bytes
  where the options set the size (synthetic sets), refused above the limit before generation.

A loader is ``load(data_dir: str | None, options, seed: int) -> DataBundle``.  A plain function
``f(data_dir, *, seed=0, **kw)`` registered without ``options`` keeps working: its options dataclass
is made from its keyword-only parameters.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ertheory._validate import check_memory, check_seed
from ertrain.data._options import LoaderOptions
from ertrain.data.bundle import DataBundle
from ertrain.registry import Registry

#: The kinds of input a dataset can yield (models declare which they accept).
INPUT_KINDS = ("image", "flat", "graph", "sequence")

Shape = tuple[int | None, ...]
Loader = Callable[[str | None, Any, int], DataBundle]


@dataclass(frozen=True)
class Dataset:
    """One registered dataset (see the module docstring).  Calling it loads it, like :func:`load_dataset`."""

    name: str
    load: Loader
    options: type[LoaderOptions]
    inputs: str | None = None
    shape: Callable[[Any], Shape] | None = None
    files: Callable[[str | None, Any], tuple[Path, list[Path]]] | None = None
    memory: Callable[[Any], float] | None = None
    version: Callable[[], str] | None = None
    help: str = ""
    classes: int | None = None

    def __call__(self, data_dir: str | None = None, *, seed: int = 0, **options: Any) -> DataBundle:
        return load_dataset(self.name, data_dir, seed=seed, **options)


#: Registered datasets by name; the built-in loader modules are imported on first use.
DATASETS: Registry[Dataset] = Registry(
    "datasets",
    builtins=(
        "ertrain.data.census",
        "ertrain.data.cifar",
        "ertrain.data.cora",
        "ertrain.data.idx",
        "ertrain.data.sklearn_sets",
        "ertrain.data.synthetic",
        "ertrain.data.synthetic_graph",
        "ertrain.data.tinyimagenet",
    ),
    label="dataset",
)


def register_dataset(
    name: str,
    *,
    options: type[LoaderOptions] | None = None,
    inputs: str | None = None,
    shape: Shape | Callable[[Any], Shape] | None = None,
    files: Callable[[str | None, Any], tuple[Path, list[Path]]] | None = None,
    memory: Callable[[Any], float] | None = None,
    version: Callable[[], str] | None = None,
    help: str = "",
    classes: int | None = None,
) -> Callable[[Callable[..., DataBundle]], Callable[..., DataBundle]]:
    """Decorator registering a loader under ``name`` (duplicates raise); see the module docstring."""
    if inputs is not None and inputs not in INPUT_KINDS:
        raise ValueError(f"dataset {name!r}: inputs must be one of {INPUT_KINDS}, got {inputs!r}")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 1):
        raise ValueError(f"dataset {name!r}: classes must be a positive integer, got {classes!r}")
    shape_fn = shape if shape is None or callable(shape) else _constant(tuple(shape))

    def deco(fn: Callable[..., DataBundle]) -> Callable[..., DataBundle]:
        opts, load = (options, fn) if options is not None else _keyword_loader(name, fn)
        spec = Dataset(name, load, opts, inputs, shape_fn, files, memory, version, help or _first_line(fn),
                       classes)
        DATASETS.register(name, spec, options=opts, help=spec.help)
        return fn

    return deco


def dataset(name: str) -> Dataset:
    """The registered dataset ``name``; unknown names raise a ``ValueError`` listing the valid ones."""
    return DATASETS.entry(name).obj


def dataset_options(name: str, options: Mapping[str, Any] | None = None) -> LoaderOptions:
    """``options`` validated against dataset ``name``'s declared options (unknown keys, types, ranges)."""
    values = dict(options or {})
    spec = dataset(name)
    known = [f.name for f in dataclasses.fields(spec.options)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown data option(s) {unknown} for dataset {name!r}; valid: {known or 'none'}")
    return spec.options(**values)


def declared_shape(name: str, options: Mapping[str, Any] | LoaderOptions | None = None) -> Shape | None:
    """The shape of one example that dataset ``name`` declares for ``options`` (None: not declared)."""
    spec = dataset(name)
    opts = options if isinstance(options, LoaderOptions) else dataset_options(name, options)
    return None if spec.shape is None else spec.shape(opts)


def declared_classes(name: str) -> int | None:
    """The number of classes dataset ``name`` declares (None: not declared)."""
    return dataset(name).classes


def estimated_memory(name: str, options: Mapping[str, Any] | LoaderOptions | None = None) -> float | None:
    """Bytes that generating dataset ``name`` takes (None where the files, not the options, set the size)."""
    spec = dataset(name)
    opts = options if isinstance(options, LoaderOptions) else dataset_options(name, options)
    return None if spec.memory is None else float(spec.memory(opts))


def load_dataset(
    name: str, data_dir: str | None = None, *, seed: int = 0, max_memory: float | None = None, **options: Any
) -> DataBundle:
    """Load dataset ``name`` from ``data_dir`` (None: the loader's default places), checked.

    ``seed`` (a non-negative integer) fixes synthetic sets and splits that are not part of a release;
    keyword ``options`` are the dataset's declared options (e.g. ``n_train`` for ``teacher``).  Synthetic
    sets estimated above ``max_memory`` bytes (default 4 GiB) are refused before they are generated; every
    bundle is checked by :func:`check_bundle`.
    """
    spec = dataset(name)
    opts = dataset_options(name, options)
    seed = check_seed(seed, "data seed")
    if spec.memory is not None:
        check_memory(spec.memory(opts), f"dataset {name!r} with options {_shown(opts)}", max_memory)
    bundle = spec.load(data_dir, opts, seed)
    check_bundle(spec, opts, bundle)
    return bundle


def check_bundle(spec: Dataset, options: Any, bundle: DataBundle) -> None:
    """Refuse empty splits, shapes other than the declared one, non-finite inputs and labels out of range."""
    import torch

    name = spec.name
    for split, count in (("training", bundle.num_train), ("test", bundle.num_test)):
        if count < 1:
            raise ValueError(f"{name}: the {split} split is empty (0 examples); check the data files and options")
    declared = None if spec.shape is None else spec.shape(options)
    for split, x in (("train", bundle.x_train), ("test", bundle.x_test)):
        got = tuple(int(s) for s in x.shape[1:])
        if declared is not None and not _fits(got, declared):
            raise ValueError(f"{name}: {split} examples have shape {_fmt(got)}, the dataset declares {_fmt(declared)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: the {split} inputs hold non-finite values (NaN or infinity)")
    example = tuple(int(s) for s in bundle.x_train.shape[1:])
    if tuple(bundle.input_shape) != example:
        raise ValueError(f"{name}: input_shape {bundle.input_shape} differs from the examples' {_fmt(example)}")
    if spec.classes is not None and bundle.num_classes != spec.classes:
        raise ValueError(f"{name}: the loader gives {bundle.num_classes} classes, the dataset declares {spec.classes}")
    if bundle.task == "classification":
        for split, y in (("train", bundle.y_train), ("test", bundle.y_test)):
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= bundle.num_classes):
                raise ValueError(f"{name}: {split} labels outside [0, {bundle.num_classes})")


def _fits(got: tuple[int, ...], declared: Shape) -> bool:
    return len(got) == len(declared) and all(d is None or g == d for g, d in zip(got, declared, strict=True))


def _fmt(shape: Shape) -> str:
    return "x".join("?" if s is None else str(s) for s in shape) if shape else "(scalar)"


def _shown(opts: Any) -> str:
    return ", ".join(f"{f.name}={getattr(opts, f.name)!r}" for f in dataclasses.fields(opts)) or "none"


def _constant(shape: Shape) -> Callable[[Any], Shape]:
    return lambda _opts: shape


def _first_line(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.splitlines()[0] if doc else ""


def _keyword_loader(name: str, fn: Callable[..., DataBundle]) -> tuple[type[LoaderOptions], Loader]:
    """Options made from the keyword-only parameters of ``fn(data_dir, *, seed=0, **kw)``, and its adapter."""
    hints = typing.get_type_hints(fn)
    fields: list[tuple[str, Any, Any]] = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.KEYWORD_ONLY and p.name != "seed":
            if p.default is p.empty:
                raise ValueError(f"dataset {name!r}: option {p.name!r} needs a default")
            fields.append((p.name, hints.get(p.name, Any), dataclasses.field(default=p.default)))
    options = dataclasses.make_dataclass(
        f"{name.title().replace('-', '')}Options", fields, bases=(LoaderOptions,), frozen=True
    )
    options.dataset = name  # type: ignore[attr-defined]

    def load(data_dir: str | None, opts: Any, seed: int) -> DataBundle:
        return fn(data_dir, seed=seed, **{f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)})

    return options, load


__all__ = [
    "DATASETS",
    "INPUT_KINDS",
    "Dataset",
    "check_bundle",
    "dataset",
    "dataset_options",
    "declared_classes",
    "declared_shape",
    "estimated_memory",
    "load_dataset",
    "register_dataset",
]
