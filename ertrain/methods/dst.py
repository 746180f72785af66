"""Dynamic sparse training: RiGL (Evci et al. 2020) and SET (Mocanu et al. 2018), from an ER or a
dense start.

Semantics. The mask starts as the trainer's (``--density-scheme``/``--sparsity``; any scheme).
Every ``update_every`` optimizer steps, until ``stop_fraction`` of all training steps (``T_end``),
each layer drops the ``k_l = round(alpha_t * nnz_l)`` kept weights of smallest magnitude and grows
``k_l`` connections among the entries that are not kept after the drop:

* ``rigl``: those with the largest dense gradient ``|dL/dw|`` of the current batch;
* ``set``: chosen uniformly at random (with the trainer's generator).

Both scores are methods of :class:`DST` (:meth:`DST.drop_score`, :meth:`DST.grow_score`): a new
variant is a subclass overriding one of them plus a ``register_method`` call.

``alpha_t = prune_fraction * (1 + cos(pi t / T_end)) / 2`` (RiGL's cosine decay); with
``prune_fraction_min`` > 0 it decays to that floor instead (GraNet's ``CosineDecay``, the paper's DST
code: 0.5 → 0.005, :func:`ertrain.schedules.prune_rate`). Grown weights
start at 0 and their optimizer state (momentum) is zeroed. Each layer's number of non-zeros, and
so the overall density, is exactly preserved by every update.

Dense (or denser) start: with ``final_density`` > 0 the density also falls, as in sparse-to-sparse
DST (the paper's Table 28, after Liu et al. 2021's GraNet): before the drop-and-grow, each update
prunes the smallest-magnitude weights globally to ``n_t = n_f + (n_0 - n_f)(1 - t / T_end)^3``
(Zhu & Gupta's cubic schedule) and the last update before ``T_end`` prunes to exactly
``n_f = round(final_density * M)``. With ``gradual_end_epoch`` set the pruning follows GraNet's
schedule instead (:func:`ertrain.schedules.gradual_density`: updates from epoch 0 until that epoch,
the paper's code: 110 of 160). Without ``final_density`` a dense start is rejected (nothing to
drop and grow). The steps counted include the warm-up epochs.

``mask_changes`` counts connections grown that were not kept before the update (a weight dropped
and grown back in the same update is no change). FLOPs: steps with a RiGL update need the dense
weight gradient (``2 f_S + f_D``); all others cost ``3 f_S`` (``ertrain.flops``).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ertrain.methods import register_method
from ertrain.methods._common import accounting, densities_of, make_meter, mask_list, masked_start
from ertrain.methods.base import Method
from ertrain.methods.maskops import drop_and_grow, magnitude_prune, random_scores, regrow_count
from ertrain.optim import total_epochs
from ertrain.scores import weight_of

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from ertrain.masks import Masking
    from ertrain.trainer import Trainer


def drop_fraction(step: int, prune_fraction: float, t_end: int) -> float:
    """RiGL's cosine-decayed fraction ``alpha_t = alpha (1 + cos(pi t / T_end)) / 2`` (0 from ``T_end`` on)."""
    if step >= t_end:
        return 0.0
    return prune_fraction * 0.5 * (1.0 + math.cos(math.pi * step / t_end))


def gradual_target(step: int, t_end: int, start_nnz: int, final_nnz: int) -> int:
    """Cubic schedule ``n_f + (n_0 - n_f)(1 - t / T_end)^3`` of the number of kept weights."""
    frac = min(max(step / t_end, 0.0), 1.0) if t_end > 0 else 1.0
    return int(round(final_nnz + (start_nnz - final_nnz) * (1.0 - frac) ** 3))


class DST(Method):
    """Drop-and-grow dynamic sparse training (see the module docstring).

    Subclasses choose the scores: :meth:`drop_score` (kept entries of smallest score are dropped;
    default ``|w|``) and :meth:`grow_score` (entries of largest score are grown).  Set
    ``uses_gradient`` when :meth:`grow_score` reads the dense gradient of the update's batch.
    """

    #: Whether the update reads the dense gradient (kept after backward; FLOPs ``2 f_S + f_D`` per update).
    uses_gradient: ClassVar[bool] = False

    @dataclass(frozen=True)
    class Options:
        update_every: int = field(default=100, metadata={"help": "optimizer steps between mask updates"})
        prune_fraction: float = field(
            default=0.5, metadata={"help": "fraction of each layer's weights dropped and regrown (cosine decay)"}
        )
        stop_fraction: float = field(default=0.75, metadata={"help": "no mask update after this fraction of steps"})
        final_density: float = field(
            default=0.0, metadata={"help": "prune gradually to this overall density (0: keep the start density)"}
        )
        prune_fraction_min: float = field(
            default=0.0, metadata={"help": "floor of the cosine decay of prune_fraction (the paper's code: 0.005)"}
        )
        gradual_end_epoch: int = field(
            default=0, metadata={"help": "gradual pruning (GraNet's schedule) ends at this epoch (0: at T_end)"}
        )

    @dataclass
    class State:
        changes: int = 0
        updates: list[dict[str, Any]] = field(default_factory=list)
        start_nnz: int = 0
        start_densities: list[float] = field(default_factory=list)
        masks: dict[str, Any] = field(default_factory=dict)

    options: Options
    state: State

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        o = self.options
        if o.update_every < 1:
            raise ValueError(f"{self.name} update_every must be >= 1, got {o.update_every!r}")
        for key in ("prune_fraction", "stop_fraction", "final_density", "prune_fraction_min"):
            if not 0.0 <= getattr(o, key) <= 1.0:
                raise ValueError(f"{self.name} {key} must be in [0, 1], got {getattr(o, key)!r}")
        if o.prune_fraction_min > o.prune_fraction:
            raise ValueError(f"{self.name} prune_fraction_min {o.prune_fraction_min!r} is above prune_fraction "
                             f"{o.prune_fraction!r}")
        end = o.gradual_end_epoch
        if isinstance(end, bool) or not isinstance(end, int) or end < 0:
            raise ValueError(f"{self.name} gradual_end_epoch must be a non-negative integer, got {end!r}")
        self.t_end = 0
        self.final_nnz: int | None = None
        self.total = 0
        self.steps_per_epoch = 1
        self.grads: list[Tensor] | None = None
        self._masking: Masking | None = None
        self.layers: list[tuple[str, torch.nn.Module]] = []
        self.weights: list[Tensor] = []

    @property
    def masking(self) -> Masking:
        """The trainer's masks this method updates (set by :meth:`start`)."""
        if self._masking is None:
            raise ValueError(f"{self.name}: start(trainer) must run before the mask updates")
        return self._masking

    # -- the variation points -------------------------------------------------------------------------
    def drop_score(self, weight: Tensor, mask: Tensor) -> Tensor:
        """Score of each kept entry of one layer; the ``k`` smallest are dropped (RiGL, SET: ``|w|``)."""
        return weight.detach().abs()

    @abc.abstractmethod
    def grow_score(self, weight: Tensor, grad: Tensor | None, mask: Tensor, generator: torch.Generator) -> Tensor:
        """Score of each entry of one layer; the ``k`` largest among those not kept after the drop are grown.

        ``grad`` is the dense gradient of the update's batch when ``uses_gradient`` is set (else None);
        ``generator`` is the run's CPU generator.  Every variant defines it (RiGL: ``|grad|``, SET: random).
        """

    # -- the run --------------------------------------------------------------------------------------
    def start(self, trainer: Trainer) -> None:
        o = self.options
        if trainer.masking is None and o.final_density <= 0.0 and not self.state.masks:
            raise ValueError(
                f"method {self.name!r} from a dense start needs --{self.name}-final-density "
                "(or start from an ER mask: --density-scheme with --sparsity/--density)"
            )
        masking, self.layers, masks = masked_start(trainer, self.state.masks)
        self._masking = masking
        self.weights = [weight_of(mod) for _, mod in self.layers]
        if not self.state.start_densities:
            self.state.start_nnz = sum(int(m.sum()) for m in masks)
            self.state.start_densities = densities_of(masks).tolist()
        self.state.masks = masking.state_dict()
        self._schedule(trainer, sum(m.numel() for m in masks))

    def _schedule(self, trainer: Trainer, total: int) -> None:
        """``T_end`` and the final number of kept weights (None: the density stays)."""
        o = self.options
        self.total, self.steps_per_epoch = total, trainer.steps_per_epoch
        total_steps = total_epochs(trainer.config) * trainer.steps_per_epoch
        self.t_end = int(o.stop_fraction * total_steps)
        self.final_nnz = None
        if o.final_density <= 0.0:
            return
        start_nnz = self.state.start_nnz
        self.final_nnz = int(round(o.final_density * total))
        if not 0 < self.final_nnz <= start_nnz:
            raise ValueError(f"{self.name} final_density {o.final_density!r} must be positive and at most the "
                             f"start density {start_nnz / total!r}")
        if o.gradual_end_epoch > 0:
            self._check_gradual_end(total_steps)
        elif self.final_nnz < start_nnz and self.t_end <= o.update_every:
            raise ValueError(
                f"{self.name}: no mask update before step {self.t_end} (stop_fraction * {total_steps} steps) to reach "
                f"final_density; lower --{self.name}-update-every (now {o.update_every})"
            )

    def _check_gradual_end(self, total_steps: int) -> None:
        o = self.options
        if o.gradual_end_epoch * self.steps_per_epoch > total_steps:
            raise ValueError(f"{self.name} gradual_end_epoch {o.gradual_end_epoch!r} is past the "
                             f"{total_steps // self.steps_per_epoch} epochs trained")
        if o.gradual_end_epoch * self.steps_per_epoch // o.update_every < 1:
            raise ValueError(f"{self.name}: no mask update before gradual_end_epoch {o.gradual_end_epoch!r} "
                             f"({self.steps_per_epoch} steps per epoch); lower --{self.name}-update-every")

    def alpha(self, done: int) -> float:
        """The drop fraction of the update after ``done`` steps (0 from ``T_end`` on)."""
        o = self.options
        if o.prune_fraction_min <= 0.0 or done >= self.t_end:
            return drop_fraction(done, o.prune_fraction, self.t_end)
        from ertrain.schedules import prune_rate

        return prune_rate(done, self.t_end, o.prune_fraction, o.prune_fraction_min)

    def is_update(self, done: int) -> bool:
        """Whether the mask changes after ``done`` optimizer steps."""
        return done % self.options.update_every == 0 and 0 < done < self.t_end

    def after_backward(self, trainer: Trainer, step: int) -> None:
        if self.uses_gradient and self.is_update(step + 1):
            import torch

            self.grads = [w.grad.detach().clone() if w.grad is not None else torch.zeros_like(w) for w in self.weights]

    def after_step(self, trainer: Trainer, step: int) -> None:
        done = step + 1
        if not self.is_update(done):
            return
        old = mask_list(self.masking)
        masks = self._gradual_prune(done, old)
        alpha = self.alpha(done)
        changed = self._drop_and_grow(trainer, masks, old, alpha)
        self.grads = None
        new_masks = mask_list(self.masking)
        if trainer.optimizer is not None:
            self._reset_optimizer_state(trainer.optimizer, old, new_masks)
        self.state.changes += changed
        self.state.masks = self.masking.state_dict()
        self.state.updates.append({"step": done, "alpha": alpha, "changed": changed,
                                   "nnz": sum(int(m.sum()) for m in new_masks),
                                   "layer_densities": densities_of(new_masks).tolist()})

    def _gradual_prune(self, done: int, masks: list[Tensor]) -> list[Tensor]:
        """The masks after the cubic schedule's global magnitude pruning (unchanged without ``final_density``)."""
        if self.final_nnz is None:
            return masks
        nnz = sum(int(m.sum()) for m in masks)
        if self.options.gradual_end_epoch > 0:
            target = self._granet_target(done)
            if target is None:
                return masks
        else:
            last = done + self.options.update_every >= self.t_end
            target = self.final_nnz if last else gradual_target(done, self.t_end, self.state.start_nnz, self.final_nnz)
        return magnitude_prune(self.weights, masks, target, "global") if target < nnz else masks

    def _granet_target(self, done: int) -> int | None:
        """Kept weights after GraNet's pruning at step ``done`` (:func:`ertrain.schedules.gradual_density`)."""
        from ertrain.schedules import gradual_density

        assert self.final_nnz is not None
        o = self.options
        density = gradual_density(done, self.steps_per_epoch, o.update_every, self.state.start_nnz / self.total,
                                  self.final_nnz / self.total, final_prune_epoch=o.gradual_end_epoch)
        return None if density is None else int(round(density * self.total))

    def _drop_and_grow(self, trainer: Trainer, masks: list[Tensor], old: list[Tensor], alpha: float) -> int:
        """Update every layer's mask in place; grown weights start at 0. The number of changed connections."""
        import torch

        changed = 0
        for i, ((name, _), w, m) in enumerate(zip(self.layers, self.weights, masks, strict=True)):
            new, c = m.bool().clone(), 0
            k = regrow_count(m, alpha)
            if k > 0:
                grad = self.grads[i] if self.grads is not None else None
                new, c = drop_and_grow(m, k, self.drop_score(w, m), self.grow_score(w, grad, m, trainer.generator))
            changed += c
            self.masking.set_mask(name, new)
            with torch.no_grad():
                w[new & ~old[i]] = 0.0
        return changed

    def _reset_optimizer_state(self, opt: torch.optim.Optimizer, old: list[Tensor], new: list[Tensor]) -> None:
        """Zero the optimizer state of pruned weights and of grown ones (their momentum starts at 0)."""
        import torch

        self.masking.mask_optimizer_state_(opt)
        for w, a, b in zip(self.weights, old, new, strict=True):
            for value in opt.state.get(w, {}).values():
                if isinstance(value, torch.Tensor) and value.shape == w.shape:
                    value[b & ~a] = 0

    def finish(self, trainer: Trainer) -> dict[str, Any]:
        # FLOPs from the update history: 3 f_S per step at the densities in force, 2 f_S + f_D on RiGL updates
        meter = make_meter(trainer, self.layers)
        dens, last = self.state.start_densities, 0
        for up in self.state.updates:
            meter.add_steps(up["step"] - 1 - last, dens)
            meter.add_steps(1, dens, dense_weight_grad=self.uses_gradient)
            dens, last = up["layer_densities"], up["step"]
        meter.add_steps(max(0, trainer.global_step - last), dens)
        total = self.masking.numel()
        out = accounting(meter, [n for n, _ in self.layers], mask_list(self.masking), self.state.changes)
        out.update({"mask_updates": len(self.state.updates), "update_log": self.state.updates,
                    "start_density": self.state.start_nnz / total, "final_density": self.masking.nnz() / total})
        return out


@register_method("rigl")
class RigL(DST):
    """RiGL: magnitude drop, gradient growth (see the module docstring)."""

    uses_gradient = True

    @dataclass(frozen=True)
    class Options(DST.Options):
        pass

    def grow_score(self, weight: Tensor, grad: Tensor | None, mask: Tensor, generator: torch.Generator) -> Tensor:
        """``|dL/dw|`` of the update's batch."""
        assert grad is not None
        return grad.detach().abs()


@register_method("set")
class SET(DST):
    """SET: magnitude drop, random growth (see the module docstring)."""

    @dataclass(frozen=True)
    class Options(DST.Options):
        pass

    def grow_score(self, weight: Tensor, grad: Tensor | None, mask: Tensor, generator: torch.Generator) -> Tensor:
        """Uniform random scores from the run's generator."""
        return random_scores(mask, generator)


__all__ = ["DST", "SET", "RigL", "drop_fraction", "gradual_target"]
