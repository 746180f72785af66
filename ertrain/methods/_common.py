"""Helpers shared by the sparse-to-sparse methods: a mask for a dense start, the masked layers, copies
of the masks and the FLOPs accounting every method reports.  They use only the trainer interface
listed in :mod:`ertrain.methods.base`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ertrain.flops import FlopsMeter, inference_flops_ratio, layer_macs
from ertrain.methods.maskops import densities_of, mask_difference, overall

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ertrain.masks import Masking
    from ertrain.trainer import Trainer


def ensure_masking(trainer: Trainer) -> Masking:
    """The trainer's ``Masking``; a dense start gets an all-ones one over the default masked layers."""
    if trainer.masking is None:
        import torch

        from ertrain.masks import Masking
        from ertrain.models import mask_targets

        opts = dict(trainer.config.mask_options)
        targets = mask_targets(trainer.model, include_globs=opts.get("include", ()),
                               exclude_globs=opts.get("exclude", ()), tied=opts.get("tied", "dense"))
        masks = [torch.ones_like(t.weight, dtype=torch.bool) for t in targets]
        trainer.use_masking(Masking(trainer.model, masks, targets))
    assert trainer.masking is not None
    return trainer.masking


def masked_start(
    trainer: Trainer, saved: dict[str, Tensor] | None = None
) -> tuple[Masking, list[tuple[str, nn.Module]], list[Tensor]]:
    """The trainer's masking (all ones for a dense start) with ``saved`` masks loaded (a resumed run),
    its masked layers and copies of its masks."""
    masking = ensure_masking(trainer)
    restore_masks(masking, saved or {})
    return masking, masked_modules(masking), mask_list(masking)


def masked_modules(masking: Masking) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every masked layer, in the order of ``masking.masks``."""
    return list(masking.layers.items())


def mask_list(masking: Masking) -> list[Tensor]:
    """Copies of the current masks (bool), in layer order; later mask updates leave them unchanged."""
    return [m.detach().bool().clone() for m in masking.masks.values()]


def cpu_masks(names: list[str], masks: list[Tensor]) -> dict[str, Tensor]:
    """CPU copies of ``masks`` by layer name (for a method's state)."""
    return {n: m.detach().cpu().clone() for n, m in zip(names, masks, strict=True)}


def example_input(trainer: Trainer) -> Tensor | tuple[Tensor, ...]:
    """One training example (plus the adjacency for graph models) for counting FLOPs."""
    data = trainer.data
    adj = getattr(data, "adj", None)
    if adj is not None:
        return (data.x_train, adj)
    return data.x_train[:1]


def make_meter(trainer: Trainer, layers: list[tuple[str, nn.Module]]) -> FlopsMeter:
    macs = layer_macs(trainer.model, example_input(trainer), layers=layers)
    return FlopsMeter(macs)


def accounting(meter: FlopsMeter, names: list[str], masks: list[Tensor], mask_changes: int) -> dict[str, Any]:
    """The result fields every method reports: per-layer densities, mask changes, FLOPs ratios."""
    dens = densities_of(masks)
    return {
        "layer_densities": {n: float(d) for n, d in zip(names, dens, strict=True)},
        "layer_order": list(names),  # result.json sorts keys; this keeps the forward order
        "mask_changes": int(mask_changes),
        "inference_flops": inference_flops_ratio(meter.macs, dens),
        "training_flops": meter.training_ratio,
        "train_steps": meter.steps,
    }


def per_epoch_accounting(
    trainer: Trainer, layers: list[tuple[str, nn.Module]], masks: list[Tensor], mask_changes: int,
    phases: list[tuple[int, list[float]]], *, dense_weight_grad: bool = False,
) -> dict[str, Any]:
    """:func:`accounting` for methods whose density changes between epochs: ``phases`` lists
    ``(epochs, layer densities)`` in the order trained."""
    meter = make_meter(trainer, layers)
    for epochs, dens in phases:
        meter.add_steps(trainer.steps_per_epoch * epochs, dens, dense_weight_grad=dense_weight_grad)
    return accounting(meter, [n for n, _ in layers], masks, mask_changes)


def plain_state_dict_hook(model: nn.Module, names: list[str], param_names: list[str] | None = None) -> Any:
    """Make ``model.state_dict()`` look unparametrised while layers ``names`` carry a parametrisation.

    ``<layer>.parametrizations.<param>.original`` (``<param>`` from ``param_names``, default ``weight``)
    is saved as ``<layer>.<param>`` and the parametrisation's own tensors are left out (methods save
    them in their state), so a checkpoint taken mid-training loads into a fresh model. Returns the hook
    handle (call ``.remove()``).
    """
    pnames = param_names if param_names is not None else ["weight"] * len(names)

    def hook(_module: nn.Module, state: dict[str, Any], prefix: str, _meta: Any) -> None:
        for name, pname in zip(names, pnames, strict=True):
            base = f"{prefix}{name}." if name else prefix
            original = state.pop(f"{base}parametrizations.{pname}.original", None)
            for key in [k for k in state if k.startswith(f"{base}parametrizations.{pname}.")]:
                del state[key]
            if original is not None:
                state[f"{base}{pname}"] = original

    return model.register_state_dict_post_hook(hook)


def restore_masks(masking: Masking, masks: dict[str, Tensor]) -> None:
    """Load masks saved in a method's state (a resumed run) into ``masking``."""
    for name, m in masks.items():
        masking.set_mask(name, m)


__all__ = [
    "accounting", "cpu_masks", "densities_of", "ensure_masking", "example_input", "make_meter", "mask_difference",
    "mask_list", "masked_modules", "masked_start", "overall", "per_epoch_accounting", "plain_state_dict_hook",
    "restore_masks",
]
