"""Weight reparameterisations (``torch.nn.utils.parametrize``) used by edge-popup and STR, and the
context that installs them on the masked layers of a trainer's model (:func:`reparametrised`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ertrain.methods._common import (
    ensure_masking,
    mask_difference,
    mask_list,
    masked_start,
    per_epoch_accounting,
    plain_state_dict_hook,
    restore_masks,
)
from ertrain.methods.base import Method

if TYPE_CHECKING:
    from ertrain.masks import Masking
    from ertrain.trainer import Trainer


class _TopK(torch.autograd.Function):
    """Binary mask of the ``k`` largest entries; the gradient passes straight through."""

    @staticmethod
    def forward(ctx: Any, scores: Tensor, k: int) -> Tensor:
        out = torch.zeros_like(scores)
        if k > 0:
            idx = torch.topk(scores.reshape(-1), k, sorted=False).indices
            out.view(-1)[idx] = 1.0
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad, None


class ScoredWeight(nn.Module):
    """Edge-popup: ``w -> w * 1[|s| among the k largest |s| of the candidate entries]``.

    The mask's gradient goes straight through to the scores ``s`` (Ramanujan et al. 2020).
    """

    def __init__(self, scores: Tensor, candidates: Tensor, k: int) -> None:
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.candidates: Tensor
        self.register_buffer("candidates", candidates.bool())
        self.k = int(k)

    def mask(self) -> Tensor:
        s = torch.where(self.candidates, self.scores.abs(), torch.full_like(self.scores, -torch.inf))
        out: Tensor = _TopK.apply(s, self.k)
        return out

    def forward(self, weight: Tensor) -> Tensor:
        return weight * self.mask().to(weight.dtype)


class SoftThreshold(nn.Module):
    """STR: ``w -> sign(w) * relu(|w| - sigmoid(s)) * start_mask`` (Kusupati et al. 2020, eq. (3))."""

    def __init__(self, s_init: float, start_mask: Tensor) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.tensor(float(s_init), device=start_mask.device))
        self.start_mask: Tensor
        self.register_buffer("start_mask", start_mask.bool())

    def threshold(self) -> Tensor:
        return torch.sigmoid(self.s)

    def forward(self, weight: Tensor) -> Tensor:
        out = torch.sign(weight) * torch.relu(weight.abs() - self.threshold().to(weight.dtype))
        return out * self.start_mask.to(weight.dtype)


@contextlib.contextmanager
def reparametrised(
    trainer: Trainer,
    masking: Masking,
    params: Sequence[nn.Module],
    *,
    final_mask: Callable[[nn.Module, nn.Module], Tensor],
    leave_parametrized: bool,
) -> Iterator[None]:
    """Train the masked layers of ``masking`` with ``params[l]`` as the parametrisation of layer ``l``'s weight.

    Inside the context the trainer re-applies no mask (the parametrisations apply the start mask) and
    ``trainer.model.state_dict()`` looks unparametrised (:func:`~ertrain.methods._common.plain_state_dict_hook`).
    On exit, also after an error, each layer's new mask is ``final_mask(module, param)`` (evaluated with
    the parametrisation in place), the parametrisations are removed (``leave_parametrized``: the weight
    keeps the parametrised value, else the original), and ``masking`` holds the new masks again.
    """
    from torch.nn.utils import parametrize

    targets = list(masking.targets.values())
    for t, p in zip(targets, params, strict=True):
        parametrize.register_parametrization(t.module, t.param_name, p)
    owners = [t.full_name.rpartition(".")[0] for t in targets]
    hook = plain_state_dict_hook(trainer.model, owners, [t.param_name for t in targets])
    trainer.use_masking(None)
    try:
        yield
    finally:
        hook.remove()
        with torch.no_grad():
            final = [final_mask(t.layer, p).bool() for t, p in zip(targets, params, strict=True)]
        for t in targets:
            parametrize.remove_parametrizations(t.module, t.param_name, leave_parametrized=leave_parametrized)
        trainer.use_masking(masking)
        for t, m in zip(targets, final, strict=True):
            masking.set_mask(t.name, m)


class ReparametrisedMethod(Method):
    """Base of the methods that train through weight parametrisations (STR, edge-popup).

    The parametrisations are gone once a run finished, so the result and the final masks are kept
    in the state: a run resumed after its end restores the masks and returns the saved result.
    """

    @dataclass
    class State:
        result: dict[str, Any] | None = None  # set once finished
        final: dict[str, Any] = field(default_factory=dict)  # the final masks

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.layers: list[tuple[str, nn.Module]] = []
        self.start_masks: list[Tensor] = []
        self._masking: Masking | None = None

    @property
    def masking(self) -> Masking:
        """The trainer's masking (set by :meth:`start`)."""
        if self._masking is None:
            raise ValueError(f"{self.name}: start(trainer) must run first")
        return self._masking

    def saved_start(self) -> dict[str, Tensor]:
        """Start masks kept in the state, loaded when a run resumes (none by default)."""
        return {}

    def start(self, trainer: Trainer) -> None:
        """The masked layers and the start masks (all ones for a dense start)."""
        self._masking, self.layers, self.start_masks = masked_start(trainer, self.saved_start())

    def accounting(self, trainer: Trainer, phases: list[tuple[int, list[float]]], *, mask_changes: int | None = None,
                   dense_weight_grad: bool = False) -> dict[str, Any]:
        """The common result fields for the final masks (changes: against the start masks unless given)."""
        final = mask_list(self.masking)
        changes = mask_difference(self.start_masks, final) if mask_changes is None else mask_changes
        return per_epoch_accounting(trainer, self.layers, final, changes, phases, dense_weight_grad=dense_weight_grad)

    def run(self, trainer: Trainer) -> dict[str, Any]:
        if self.state.result is not None:
            restore_masks(ensure_masking(trainer), self.state.final)
            return dict(self.state.result)
        out = super().run(trainer)
        self.state.final, self.state.result = ensure_masking(trainer).state_dict(), out
        return out
