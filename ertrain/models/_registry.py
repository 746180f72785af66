"""Model registry: name -> factory, ``build_model``, and ``mask_targets`` / ``maskable_layers`` (what is masked).

Every factory takes the common keyword arguments ``num_classes``, ``in_channels``, ``input_size``,
``width`` and ``in_features`` (it ignores the ones it does not need) plus its own options.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

from ertrain.models._maskable import MaskTarget, mask_scope
from ertrain.models._meta import shapes_only
from ertrain.registry import Registry

ModelFactory = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFactory)

#: Registered model factories by name (a :class:`~ertrain.registry.Registry`; every model module is
#: loaded on first use).  ``MODELS.entry(name).info["inputs"]`` names the input kinds the model accepts.
MODELS: Registry[ModelFactory] = Registry("models", builtins=("ertrain.models",), label="model")

#: The most parameters :func:`build_model` builds (8 GiB of float32 weights): a larger request is refused
#: before any memory is allocated.
MAX_PARAMETERS = 2**31

#: Input kinds a dataset can yield (see ``ertrain.data``); models declare which they accept.
INPUT_KINDS = ("image", "flat", "graph", "sequence")

#: Layer types whose ``.weight`` the built-in rules mask without transposing (see ``PARAM_RULES`` for all).
MASKABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def register_model(name: str, *, inputs: tuple[str, ...] = ("image",), help: str = "") -> Callable[[F], F]:
    """Decorator registering a model factory under ``name`` (re-registering a name raises).

    ``inputs``: the input kinds it accepts (:data:`INPUT_KINDS`), checked against the dataset's
    before any training starts.
    """
    bad = [k for k in inputs if k not in INPUT_KINDS]
    if bad:
        raise ValueError(f"model {name!r}: unknown input kinds {bad}; valid: {INPUT_KINDS}")
    reg: Callable[[F], F] = MODELS.register(name, help=help, inputs=tuple(inputs))
    return reg


def scaled(channels: int, width: float) -> int:
    """A hidden width/channel count multiplied by ``width`` (at least 1)."""
    return max(1, int(round(channels * width)))


def build_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int = 3,
    input_size: int = 32,
    width: float = 1.0,
    in_features: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the registered model ``name``.

    ``width`` multiplies every hidden width / channel count (the widening experiments); the number
    of classes and the input stay as given.  Model-specific options (``hidden`` for ``mlp``,
    ``stem`` for the ImageNet-style ResNets, ``shortcut`` for the CIFAR ResNets, ...) pass through.
    Unknown names or options raise ``ValueError``.
    """
    factory = MODELS[name]
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if int(in_channels) < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    if int(input_size) < 1:
        raise ValueError(f"input_size must be a positive integer, got {input_size!r}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    if in_features is not None and int(in_features) < 1:
        raise ValueError(f"in_features must be a positive integer, got {in_features!r}")
    params = inspect.signature(factory).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        own = [p for p in params if p not in ("num_classes", "in_channels", "input_size", "width", "in_features")]
        raise ValueError(f"unknown option(s) {unknown} for model {name!r}; valid options: {own}")
    kwargs = dict(num_classes=int(num_classes), in_channels=int(in_channels), input_size=int(input_size),
                  width=float(width), in_features=None if in_features is None else int(in_features), **kwargs)
    with shapes_only():  # count the parameters without allocating or initialising them
        count = sum(p.numel() for p in factory(**kwargs).parameters())
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"model {name!r} at width {width:g} has {count:.3g} parameters ({4 * count / 2**30:.3g} GiB of float32 "
            f"weights); at most {MAX_PARAMETERS:.3g} are built (lower --width)"
        )
    return factory(**kwargs)


def layer_weight(module: nn.Module | MaskTarget) -> torch.Tensor:
    """The ``.weight`` tensor of a layer or a :class:`MaskTarget` (``ValueError`` if it has none)."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"layer {type(module).__name__} has no weight tensor")
    return weight


def maskable_layers(
    model: nn.Module,
    include: str | Sequence[str] = "all",
    *,
    exclude_first: bool = False,
    exclude_last: bool = False,
    include_globs: Iterable[str] = (),
    exclude_globs: Iterable[str] = (),
    tied: str = "dense",
) -> list[tuple[str, Any]]:
    """The masked parameters as ``(name, layer)`` in forward order (:func:`mask_targets`'s, as layers).

    ``layer`` is the owning module when the parameter is its ``weight`` (every masked parameter of the
    registered models: each Conv/Linear weight, first conv, 1x1 shortcuts and classifier included, as
    the paper's code), else the :class:`~ertrain.models.MaskTarget` (it has ``.weight``).
    """
    targets = mask_targets(model, include, exclude_first=exclude_first, exclude_last=exclude_last,
                           include_globs=include_globs, exclude_globs=exclude_globs, tied=tied)
    return [(t.name, t.layer) for t in targets]


def mask_targets(
    model: nn.Module,
    include: str | Sequence[str] = "all",
    *,
    exclude_first: bool = False,
    exclude_last: bool = False,
    include_globs: Iterable[str] = (),
    exclude_globs: Iterable[str] = (),
    tied: str = "dense",
) -> list[MaskTarget]:
    """The parameters masked by default (:func:`~ertrain.models.mask_scope`), in registration (forward) order.

    ``include`` is ``"all"`` or an explicit sequence of target names (kept in model order);
    ``exclude_first`` / ``exclude_last`` drop the first (input) and last (classifier) one;
    ``include_globs`` / ``exclude_globs`` / ``tied`` go to :func:`~ertrain.models.mask_scope`.
    """
    targets = list(mask_scope(model, include=include_globs, exclude=exclude_globs, tied=tied).targets)
    if isinstance(include, str):
        if include != "all":
            raise ValueError(f"include must be 'all' or a sequence of layer names, got {include!r}")
    else:
        wanted = set(include)
        names = {t.name for t in targets}
        missing = [n for n in include if n not in names]
        if missing:
            raise ValueError(f"layer(s) {missing} are not maskable parameters of the model; valid: {sorted(names)}")
        targets = [t for t in targets if t.name in wanted]
    if exclude_first and targets:
        targets = targets[1:]
    if exclude_last and targets:
        targets = targets[:-1]
    if not targets:
        raise ValueError("the model has no maskable parameters left to mask")
    return targets
