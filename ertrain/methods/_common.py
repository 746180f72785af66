"""Helpers shared by the sparse-to-sparse methods: the masked layers of a trainer, a mask for a
dense start, per-layer densities and the FLOPs accounting every method reports."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ertrain.flops import FlopsMeter, inference_flops_ratio, layer_macs
from ertrain.scores import weight_of

if TYPE_CHECKING:
    from torch import Tensor, nn

    from ertrain.masks import Masking
    from ertrain.train import Trainer


def ensure_masking(trainer: Trainer) -> Masking:
    """The trainer's ``Masking``; a dense start gets an all-ones one over the default masked layers."""
    if trainer.masking is None:
        import torch

        from ertrain.masks import Masking
        from ertrain.models import maskable_layers

        layers = maskable_layers(trainer.model)
        masks = {name: torch.ones_like(weight_of(m), dtype=torch.bool) for name, m in layers}
        trainer.masking = Masking(trainer.model, masks)
    return trainer.masking


def masked_modules(trainer: Trainer, masking: Masking) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every masked layer, in the order of ``masking.masks``."""
    modules = dict(trainer.model.named_modules())
    return [(name, modules[name]) for name in masking.masks]


def mask_list(masking: Masking) -> list[Tensor]:
    """Copies of the current masks (bool), in layer order; later mask updates leave them unchanged."""
    return [m.detach().bool().clone() for m in masking.masks.values()]


def densities_of(masks: list[Tensor]) -> np.ndarray:
    return np.array([float(m.sum()) / m.numel() for m in masks], dtype=np.float64)


def mask_difference(a: list[Tensor], b: list[Tensor]) -> int:
    """How many entries are kept in the masks ``a`` but not in ``b`` (layer by layer, same order)."""
    return sum(int((x & ~y).sum()) for x, y in zip(a, b, strict=True))


def overall(masks: list[Tensor]) -> float:
    return float(sum(int(m.sum()) for m in masks)) / float(sum(m.numel() for m in masks))


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


def steps_per_epoch(trainer: Trainer) -> int:
    """Optimizer steps per epoch of ``trainer.fit`` (one per batch; one for full-batch graph data)."""
    data = trainer.data
    if data.is_graph:
        return 1
    return max(1, math.ceil(data.num_train / trainer.config.batch_size))


def plain_state_dict_hook(model: nn.Module, names: list[str]) -> Any:
    """Make ``model.state_dict()`` look unparametrised while layers ``names`` carry a parametrisation.

    ``<layer>.parametrizations.weight.original`` is saved as ``<layer>.weight`` and the
    parametrisation's own tensors are left out (methods save them in their state), so a checkpoint
    taken mid-training loads into a fresh model. Returns the hook handle (call ``.remove()``).
    """

    def hook(_module: nn.Module, state: dict[str, Any], prefix: str, _meta: Any) -> None:
        for name in names:
            base = f"{prefix}{name}." if name else prefix
            original = state.pop(f"{base}parametrizations.weight.original", None)
            for key in [k for k in state if k.startswith(f"{base}parametrizations.")]:
                del state[key]
            if original is not None:
                state[f"{base}weight"] = original

    return model.register_state_dict_post_hook(hook)


def restore_masks(masking: Masking, masks: dict[str, Tensor]) -> None:
    """Load masks saved in a method's state (a resumed run) into ``masking``."""
    for name, m in masks.items():
        masking.set_mask(name, m)
