"""Sparsity-aware initialisation: rescale each masked layer's weights by its kept fan-in.

A Kaiming initialisation draws ``w ~ N(0, gain^2 / fan_in)`` so that a dense layer keeps the
variance of its pre-activations.  A mask that keeps only ``k`` of the ``fan_in`` incoming weights of
a neuron divides that variance by ``fan_in / k``; :func:`init_scale_fan` multiplies the weights by
``sqrt(fan_in / k)`` to restore it, i.e. it turns ``N(0, gain^2 / fan_in)`` into ``N(0, gain^2 / k)``.

What counts as the kept fan-in ``k`` (option ``per``, a registry):

* ``"neuron"`` (default): the number of kept incoming weights of each output neuron / filter;
* ``"layer"``: ``fan_in * p_l``, the layer's mask density ``p_l``;
* ``"global"``: ``fan_in * p`` with one overall ``density`` for every layer — the paper's code's
  ``--scale-fan`` (``STR/utils/builder.py``: ``std = gain / sqrt(fan * (1 - prune_rate))``;
  ``ER_SLT/initializers.py``: ``std / sqrt(sparsity)`` with ``sparsity`` the overall density).

Usable with any protocol and any initialisation (it rescales, it does not redraw); a neuron that
keeps no incoming weight is left as it is.  Biases and norm parameters are untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ertrain.registry import Registry

#: ``fn(mask, density) -> kept fan-in per output neuron`` (shape ``(c_out,)``), by name.
KeptFanIn = Callable[[torch.Tensor, float | None], torch.Tensor]
SCALE_FAN_MODES: Registry[KeptFanIn] = Registry("scale_fan_modes", builtins=("ertrain.init",), label="scale-fan mode")


def _fan_in(mask: torch.Tensor) -> int:
    return int(mask[0].numel())


@SCALE_FAN_MODES.register("neuron", help="the kept incoming weights of each neuron / filter")
def _per_neuron(mask: torch.Tensor, density: float | None) -> torch.Tensor:
    return mask.reshape(mask.shape[0], -1).sum(dim=1, dtype=torch.float64)


@SCALE_FAN_MODES.register("layer", help="fan_in times the layer's mask density")
def _per_layer(mask: torch.Tensor, density: float | None) -> torch.Tensor:
    p_l = float(mask.sum(dtype=torch.float64)) / mask.numel()
    return torch.full((mask.shape[0],), _fan_in(mask) * p_l, dtype=torch.float64)


@SCALE_FAN_MODES.register("global", help="fan_in times one overall density (the paper's code's --scale-fan)")
def _per_global(mask: torch.Tensor, density: float | None) -> torch.Tensor:
    if density is None or not 0 < density <= 1:
        raise ValueError(f"scale-fan mode 'global' needs the overall density in (0, 1], got {density!r}")
    return torch.full((mask.shape[0],), _fan_in(mask) * float(density), dtype=torch.float64)


@torch.no_grad()
def init_scale_fan(
    layers: Sequence[tuple[str, nn.Module]],
    masks: Sequence[torch.Tensor],
    *,
    per: str = "neuron",
    density: float | None = None,
) -> dict[str, list[float]]:
    """Multiply each layer's weight rows by ``sqrt(fan_in / kept fan-in)`` (in place); returns the factors.

    ``layers`` are ``(name, module)`` with a ``.weight`` of shape ``(c_out, ...)`` (or a
    :class:`~ertrain.models.MaskTarget`, read as ``(out, in, ...)``) and ``masks`` the
    matching 0/1 masks (same shapes).  ``per`` picks the kept fan-in (see the module docstring);
    ``density`` is the overall density for ``per="global"``.  Rows whose kept fan-in is 0 keep factor 1.
    """
    if len(layers) != len(masks):
        raise ValueError(f"got {len(masks)} masks for {len(layers)} layers")
    kept_fan_in = SCALE_FAN_MODES[per]
    factors: dict[str, list[float]] = {}
    for (name, module), mask in zip(layers, masks, strict=True):
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise ValueError(f"layer {name!r} has no weight tensor")
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(f"layer {name!r}: mask shape {tuple(mask.shape)} != weight shape {tuple(weight.shape)}")
        canonical = getattr(module, "canonical", None)  # a MaskTarget stored (in, out, ...): read it (out, in, ...)
        if canonical is not None:
            weight, mask = canonical(weight), canonical(mask)
        kept = kept_fan_in(mask.detach().to("cpu"), density)
        fan_in = _fan_in(mask)
        factor = torch.where(kept > 0, torch.sqrt(fan_in / kept.clamp(min=1e-300)), torch.ones_like(kept))
        shape = (-1,) + (1,) * (weight.dim() - 1)
        weight.mul_(factor.to(device=weight.device, dtype=weight.dtype).reshape(shape))
        factors[name] = factor.tolist()
    return factors


__all__ = ["SCALE_FAN_MODES", "init_scale_fan"]
