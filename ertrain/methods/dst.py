"""Dynamic sparse training: RiGL (Evci et al. 2020) and SET (Mocanu et al. 2018), from an ER or a
dense start.

Semantics. The mask starts as the trainer's (``--density-scheme``/``--sparsity``; any scheme).
Every ``update_every`` optimizer steps, until ``stop_fraction`` of all training steps (``T_end``),
each layer drops the ``k_l = round(alpha_t * nnz_l)`` kept weights of smallest magnitude and grows
``k_l`` connections among the entries that are not kept after the drop:

* ``rigl``: those with the largest dense gradient ``|dL/dw|`` of the current batch;
* ``set``: chosen uniformly at random (with the trainer's generator).

``alpha_t = prune_fraction * (1 + cos(pi t / T_end)) / 2`` (RiGL's cosine decay). Grown weights
start at 0 and their optimizer state (momentum) is zeroed. Each layer's number of non-zeros, and
so the overall density, is exactly preserved by every update.

Dense (or denser) start: with ``final_density`` > 0 the density also falls, as in sparse-to-sparse
DST (the paper's Table 28, after Liu et al. 2021's GraNet): before the drop-and-grow, each update
prunes the smallest-magnitude weights globally to ``n_t = n_f + (n_0 - n_f)(1 - t / T_end)^3``
(Zhu & Gupta's cubic schedule) and the last update before ``T_end`` prunes to exactly
``n_f = round(final_density * M)``. Without ``final_density`` a dense start is rejected (nothing to
drop and grow).

``mask_changes`` counts connections grown that were not kept before the update (a weight dropped
and grown back in the same update is no change). FLOPs: steps with a RiGL update need the dense
weight gradient (``2 f_S + f_D``); all others cost ``3 f_S`` (``ertrain.flops``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ertrain.methods import register_method
from ertrain.methods._common import (
    accounting,
    densities_of,
    make_meter,
    mask_list,
    masked_modules,
    restore_masks,
    steps_per_epoch,
)
from ertrain.methods.base import Method
from ertrain.methods.imp import magnitude_prune
from ertrain.scores import weight_of

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from ertrain.masks import Masking
    from ertrain.train import Trainer


def drop_fraction(step: int, prune_fraction: float, t_end: int) -> float:
    """RiGL's cosine-decayed fraction ``alpha_t = alpha (1 + cos(pi t / T_end)) / 2`` (0 from ``T_end`` on)."""
    if step >= t_end:
        return 0.0
    return prune_fraction * 0.5 * (1.0 + math.cos(math.pi * step / t_end))


def gradual_target(step: int, t_end: int, start_nnz: int, final_nnz: int) -> int:
    """Cubic schedule ``n_f + (n_0 - n_f)(1 - t / T_end)^3`` of the number of kept weights."""
    frac = min(max(step / t_end, 0.0), 1.0) if t_end > 0 else 1.0
    return int(round(final_nnz + (start_nnz - final_nnz) * (1.0 - frac) ** 3))


def update_mask(
    weight: Tensor,
    mask: Tensor,
    fraction: float,
    *,
    grad: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, int]:
    """One drop-and-grow update of one layer; returns the new mask and the number of changed connections.

    Drops ``round(fraction * nnz)`` kept entries of smallest ``|weight|`` and grows as many among
    the entries not kept after the drop: by largest ``|grad|`` when ``grad`` is given (RiGL), else
    uniformly at random from ``generator`` (SET). The number of kept entries is unchanged.
    """
    import torch

    flat_mask = mask.reshape(-1).bool()
    nnz = int(flat_mask.sum())
    k = min(int(round(fraction * nnz)), flat_mask.numel() - nnz)
    if k <= 0:
        return mask.bool().clone(), 0
    inf = torch.tensor(math.inf, dtype=torch.float64, device=mask.device)
    magnitude = torch.where(flat_mask, weight.detach().reshape(-1).abs().double(), inf)
    drop = torch.topk(magnitude, k, largest=False, sorted=False).indices
    after_drop = flat_mask.clone()
    after_drop[drop] = False
    if grad is not None:
        score = grad.detach().reshape(-1).abs().double()
    else:
        score = torch.rand(flat_mask.numel(), generator=generator, dtype=torch.float64).to(mask.device)
    score = torch.where(after_drop, -inf, score)
    grow = torch.topk(score, k, largest=True, sorted=False).indices
    new = after_drop.clone()
    new[grow] = True
    changed = int((new & ~flat_mask).sum())
    return new.reshape(mask.shape), changed


class _UpdateHook:
    """Train-loop hook: keeps RiGL's dense gradients (``after_backward``) and updates the masks."""

    def __init__(self, method: _DST, trainer: Trainer, t_end: int, final_nnz: int | None) -> None:
        self.m = method
        masking = trainer.masking
        assert masking is not None
        self.masking = masking
        layers = masked_modules(trainer, masking)
        self.names = [n for n, _ in layers]
        self.weights = [weight_of(mod) for _, mod in layers]
        self.t_end, self.final_nnz = t_end, final_nnz
        self.generator = trainer.generator
        self.grads: list[Tensor] | None = None

    def is_update(self, done: int) -> bool:
        return done % self.m.options.update_every == 0 and 0 < done < self.t_end

    def after_backward(self, trainer: Trainer, step: int) -> None:
        if self.m.growth == "gradient" and self.is_update(step + 1):
            import torch

            self.grads = [w.grad.detach().clone() if w.grad is not None else torch.zeros_like(w) for w in self.weights]

    def after_step(self, trainer: Trainer, step: int) -> None:
        done = step + 1
        if not self.is_update(done):
            return
        import torch

        o = self.m.options
        old = mask_list(self.masking)
        masks = old
        if self.final_nnz is not None:
            nnz = sum(int(m.sum()) for m in masks)
            last = done + o.update_every >= self.t_end
            target = self.final_nnz if last else gradual_target(done, self.t_end, self.m.start_nnz, self.final_nnz)
            if target < nnz:
                masks = magnitude_prune(self.weights, masks, target, "global")
        alpha = drop_fraction(done, o.prune_fraction, self.t_end)
        changed = 0
        for i, (name, w, m) in enumerate(zip(self.names, self.weights, masks, strict=True)):
            grad = self.grads[i] if self.grads is not None else None
            new, c = update_mask(w, m, alpha, grad=grad, generator=self.generator)
            changed += c
            self.masking.set_mask(name, new)
            with torch.no_grad():
                w[new & ~old[i]] = 0.0
        self.grads = None
        new_masks = mask_list(self.masking)
        opt = trainer.optimizer
        if opt is not None:
            self.masking.mask_optimizer_state_(opt)
            for w, a, b in zip(self.weights, old, new_masks, strict=True):
                for value in opt.state.get(w, {}).values():
                    if isinstance(value, torch.Tensor) and value.shape == w.shape:
                        value[b & ~a] = 0
        self.m.changes += changed
        self.m.updates.append({"step": done, "alpha": alpha, "changed": changed,
                               "nnz": sum(int(m.sum()) for m in new_masks),
                               "layer_densities": densities_of(new_masks).tolist()})


class _DST(Method):
    """Drop-and-grow dynamic sparse training (see the module docstring); ``growth`` picks the variant."""

    growth = "gradient"

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

    options: Options

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        o = self.options
        if o.update_every < 1:
            raise ValueError(f"{self.name} update_every must be >= 1, got {o.update_every!r}")
        for key in ("prune_fraction", "stop_fraction", "final_density"):
            if not 0.0 <= getattr(o, key) <= 1.0:
                raise ValueError(f"{self.name} {key} must be in [0, 1], got {getattr(o, key)!r}")
        self.changes = 0
        self.updates: list[dict[str, Any]] = []
        self.start_nnz = 0
        self.start_densities: list[float] = []
        self._masking: Masking | None = None
        self._saved_masks: dict[str, Tensor] = {}

    def state_dict(self) -> dict[str, Any]:
        masks = self._masking.state_dict() if self._masking is not None else self._saved_masks
        return {"changes": self.changes, "updates": list(self.updates), "start_nnz": self.start_nnz,
                "start_densities": list(self.start_densities), "masks": masks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.changes = int(state["changes"])
            self.updates = list(state["updates"])
            self.start_nnz = int(state["start_nnz"])
            self.start_densities = list(state["start_densities"])
            self._saved_masks = dict(state["masks"])

    def run(self, trainer: Trainer) -> dict[str, Any]:
        o = self.options
        if trainer.masking is None:
            if o.final_density <= 0.0 and not self._saved_masks:
                raise ValueError(
                    f"method {self.name!r} from a dense start needs --{self.name}-final-density "
                    "(or start from an ER mask: --density-scheme with --sparsity/--density)"
                )
            from ertrain.methods._common import ensure_masking

            ensure_masking(trainer)
        masking = trainer.masking
        assert masking is not None
        restore_masks(masking, self._saved_masks)
        self._masking = masking
        layers = masked_modules(trainer, masking)
        names = [n for n, _ in layers]
        masks = mask_list(masking)
        total = sum(m.numel() for m in masks)
        if not self.start_densities:
            self.start_nnz = sum(int(m.sum()) for m in masks)
            self.start_densities = densities_of(masks).tolist()
        epochs = int(trainer.config.epochs)
        spe = steps_per_epoch(trainer)
        total_steps = epochs * spe
        t_end = int(o.stop_fraction * total_steps)
        final_nnz = None
        if o.final_density > 0.0:
            final_nnz = int(round(o.final_density * total))
            if not 0 < final_nnz <= self.start_nnz:
                raise ValueError(
                    f"{self.name} final_density {o.final_density!r} must be positive and at most the start "
                    f"density {self.start_nnz / total!r}"
                )
            if final_nnz < self.start_nnz and t_end <= o.update_every:
                raise ValueError(
                    f"{self.name}: no mask update before step {t_end} (stop_fraction * {total_steps} steps) to reach "
                    f"final_density; lower --{self.name}-update-every (now {o.update_every})"
                )
        hook = _UpdateHook(self, trainer, t_end, final_nnz)
        optimizer = trainer.make_optimizer()
        scheduler = trainer.make_scheduler(optimizer, epochs)
        trainer.fit(epochs, optimizer=optimizer, scheduler=scheduler, hooks=(hook,), desc=self.name)
        # FLOPs from the update history: 3 f_S per step at the densities in force, 2 f_S + f_D on RiGL updates
        meter = make_meter(trainer, layers)
        dens, last = self.start_densities, 0
        for up in self.updates:
            meter.add_steps(up["step"] - 1 - last, dens)
            meter.add_steps(1, dens, dense_weight_grad=self.growth == "gradient")
            dens, last = up["layer_densities"], up["step"]
        meter.add_steps(max(0, trainer.global_step - last), dens)
        out = accounting(meter, names, mask_list(masking), self.changes)
        out.update({"mask_updates": len(self.updates), "update_log": self.updates,
                    "start_density": self.start_nnz / total, "final_density": masking.nnz() / total})
        return out


@register_method("rigl")
class RigL(_DST):
    """RiGL: magnitude drop, gradient growth (see the module docstring)."""

    growth = "gradient"

    @dataclass(frozen=True)
    class Options(_DST.Options):
        pass


@register_method("set")
class SET(_DST):
    """SET: magnitude drop, random growth (see the module docstring)."""

    growth = "random"

    @dataclass(frozen=True)
    class Options(_DST.Options):
        pass
