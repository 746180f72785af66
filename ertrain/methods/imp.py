"""Iterative magnitude pruning (IMP; Frankle & Carbin 2019), from a dense or an ER start.

Semantics. The start mask is the trainer's: dense for ``--density-scheme dense``, otherwise the ER
mask of ``--density-scheme``/``--sparsity`` (the paper's sparse-to-sparse IMP, Tables 4, 15, 29-32).
Cycle 0 trains the start mask for ``--epochs`` epochs. Each further cycle ``k`` removes the
smallest-magnitude weights so that exactly ``round(nnz_0 (1 - f)^k)`` remain (``f`` =
``prune_fraction``, 0.2 in the paper), rewinds the surviving weights (to initialisation, to the end of
epoch ``rewind_epoch`` of cycle 0, or not at all) and trains again for ``--epochs`` epochs with a
fresh optimizer and a cosine schedule from ``lr`` to ``lr * lr_min_fraction`` (the paper: 0.1 -> 0.01,
150 epochs per cycle). The number of pruning cycles is ``cycles``, or, when ``final_density`` is
set, as many as needed to reach it, the last cycle pruning to exactly ``final_density`` (overall
density of the masked layers).

``scope="global"`` ranks all masked weights together (the paper's IMP); ``"layerwise"`` removes the
same fraction from every layer (counts apportioned so the total is exact).

Every cycle's record holds its density, per-layer densities, test accuracy, and the mask itself is
kept in ``IMP.cycle_masks`` (and the final mask in the trainer's ``Masking``). The per-layer
densities of the final cycle (``layer_densities`` in ``result.json``) are the ER-IMP ratios:
``--density-scheme imp --density-options '{"run": "RUN_DIR"}'`` builds an ER mask with them
(``ertrain.scores``). A run resumes from its checkpoints (the cycle, masks and rewind point are
kept in the method's state).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ertrain.methods import register_method
from ertrain.methods._common import (
    accounting,
    densities_of,
    ensure_masking,
    make_meter,
    mask_difference,
    mask_list,
    masked_modules,
    steps_per_epoch,
)
from ertrain.methods.base import Method
from ertrain.scores import apportion, global_topk_masks, weight_of

if TYPE_CHECKING:
    from torch import Tensor

    from ertrain.train import Trainer

REWIND_CHOICES = ("init", "epoch", "none")
SCOPE_CHOICES = ("global", "layerwise")


def cycle_targets(start_nnz: int, total: int, prune_fraction: float, cycles: int, final_density: float) -> list[int]:
    """Number of kept weights in each cycle, cycle 0 = the start.

    ``round(start_nnz (1 - f)^k)`` for ``k = 0..cycles``; with ``final_density > 0`` the sequence
    runs until ``round(final_density * total)`` and ends exactly there.
    """
    if not 0.0 < prune_fraction < 1.0:
        raise ValueError(f"prune_fraction must be in (0, 1), got {prune_fraction!r}")
    if final_density > 0.0:
        final = int(round(final_density * total))
        if final > start_nnz:
            raise ValueError(f"final_density {final_density!r} is above the start density {start_nnz / total!r}")
        if final < 1:
            raise ValueError(f"final_density {final_density!r} keeps no weight of {total}")
        targets = [start_nnz]
        k = 1
        while targets[-1] > final:
            targets.append(max(final, int(round(start_nnz * (1.0 - prune_fraction) ** k))))
            k += 1
        return targets
    if cycles < 0:
        raise ValueError(f"cycles must be >= 0, got {cycles!r}")
    return [int(round(start_nnz * (1.0 - prune_fraction) ** k)) for k in range(cycles + 1)]


def magnitude_prune(weights: Sequence[Tensor], masks: Sequence[Tensor], keep: int, scope: str) -> list[Tensor]:
    """Masks keeping exactly ``keep`` of the currently kept weights: those of largest ``|w|``.

    ``scope="global"`` ranks all layers together; ``"layerwise"`` keeps the same fraction of every
    layer (counts apportioned by largest remainders so the total is exact).
    """
    import torch

    current = sum(int(m.sum()) for m in masks)
    if not 0 < keep <= current:
        raise ValueError(f"keep must lie in (0, {current}], got {keep}")
    scores = [w.detach().abs() for w in weights]
    if scope == "global":
        return global_topk_masks(scores, keep / current, masks=list(masks))
    if scope == "layerwise":
        nnz = np.array([int(m.sum()) for m in masks])
        counts = apportion(keep, nnz, nnz)
        out = []
        for s, m, c in zip(scores, masks, counts, strict=True):
            new = torch.zeros_like(m, dtype=torch.bool)
            if c > 0:
                flat = torch.where(m.reshape(-1).bool(), s.reshape(-1).double(),
                                   torch.tensor(-math.inf, dtype=torch.float64, device=s.device))
                idx = torch.sort(flat, descending=True, stable=True).indices[: int(c)]
                new.view(-1)[idx] = True
            out.append(new)
        return out
    raise ValueError(f"scope must be one of {SCOPE_CHOICES}, got {scope!r}")


@register_method("imp")
class IMP(Method):
    """Iterative magnitude pruning with weight rewinding (see the module docstring)."""

    @dataclass(frozen=True)
    class Options:
        cycles: int = field(
            default=3, metadata={"help": "pruning cycles after the first training (without a final density)"}
        )
        prune_fraction: float = field(default=0.2, metadata={"help": "fraction of the kept weights removed per cycle"})
        final_density: float = field(
            default=0.0,
            metadata={"help": "overall density to end at (0: use --imp-cycles); the last cycle hits it exactly"},
        )
        scope: str = field(default="global", metadata={"help": "magnitude ranking", "choices": SCOPE_CHOICES})
        rewind: str = field(default="init", metadata={"help": "rewind kept weights to", "choices": REWIND_CHOICES})
        rewind_epoch: int = field(default=1, metadata={"help": "epoch of cycle 0 to rewind to (--imp-rewind epoch)"})
        lr_min_fraction: float = field(
            default=0.1, metadata={"help": "each cycle's cosine schedule ends at lr * this (paper: 0.1 -> 0.01)"}
        )

    options: Options

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        o = self.options
        if o.scope not in SCOPE_CHOICES:
            raise ValueError(f"imp scope must be one of {SCOPE_CHOICES}, got {o.scope!r}")
        if o.rewind not in REWIND_CHOICES:
            raise ValueError(f"imp rewind must be one of {REWIND_CHOICES}, got {o.rewind!r}")
        if not 0.0 <= o.final_density <= 1.0:
            raise ValueError(f"imp final_density must be in [0, 1], got {o.final_density!r}")
        if not 0.0 < o.lr_min_fraction <= 1.0:
            raise ValueError(f"imp lr_min_fraction must be in (0, 1], got {o.lr_min_fraction!r}")
        #: Every finished cycle's mask (CPU bool tensors by layer name).
        self.cycle_masks: list[dict[str, Tensor]] = []
        self._phase = 0  # fits started: cycle 0 has two with --imp-rewind epoch
        self._records: list[dict[str, Any]] = []
        self._changes = 0
        self._rewind_state: dict[str, Tensor] = {}
        self._masks: dict[str, Tensor] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"phase": self._phase, "records": list(self._records), "changes": self._changes,
                "rewind_state": self._rewind_state, "masks": self._masks,
                "cycle_masks": list(self.cycle_masks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self._phase = int(state["phase"])
            self._records = list(state["records"])
            self._changes = int(state["changes"])
            self._rewind_state = dict(state["rewind_state"])
            self._masks = dict(state["masks"])
            self.cycle_masks = list(state["cycle_masks"])

    def run(self, trainer: Trainer) -> dict[str, Any]:
        import torch

        o = self.options
        epochs = int(trainer.config.epochs)
        if o.rewind == "epoch" and not 0 <= o.rewind_epoch <= epochs:
            raise ValueError(f"imp rewind_epoch must lie in [0, {epochs}], got {o.rewind_epoch!r}")
        masking = ensure_masking(trainer)
        resumed = bool(self._masks)
        for name, m in self._masks.items():
            masking.set_mask(name, m)
        layers = masked_modules(trainer, masking)
        names = [n for n, _ in layers]
        weights = [weight_of(m) for _, m in layers]
        masks = mask_list(masking)
        total = sum(m.numel() for m in masks)
        start_nnz = int(self._records[0]["nnz"]) if self._records else sum(int(m.sum()) for m in masks)
        targets = cycle_targets(start_nnz, total, o.prune_fraction, o.cycles, o.final_density)
        model = trainer.model
        if not self._rewind_state:
            self._rewind_state = {n: p.detach().cpu().clone() for n, p in model.named_parameters()}
        # the fits as (cycle, epochs, take the rewind snapshot after it); cycle 0 splits at rewind_epoch
        fits = [(0, o.rewind_epoch, True), (0, epochs - o.rewind_epoch, False)] if o.rewind == "epoch" else [
            (0, epochs, False)]
        fits += [(c, epochs, False) for c in range(1, len(targets))]
        optimizer: torch.optim.Optimizer | None = None
        scheduler: Any = None
        first = self._phase
        for index in range(first, len(fits)):
            cycle, n_epochs, snapshot = fits[index]
            new_cycle = index == 0 or fits[index - 1][0] != cycle
            continuing = resumed and index == first  # the fit a checkpoint interrupted
            if cycle > 0 and new_cycle and not continuing:
                new_masks = magnitude_prune(weights, masks, targets[cycle], o.scope)
                self._changes += mask_difference(masks, new_masks)
                for name, m in zip(names, new_masks, strict=True):
                    masking.set_mask(name, m)
                masks = mask_list(masking)
                if o.rewind != "none":
                    with torch.no_grad():
                        for n, p in model.named_parameters():
                            p.copy_(self._rewind_state[n].to(p.device))
                    masking.apply_()
            self._masks = {n: m.detach().cpu().clone() for n, m in zip(names, masks, strict=True)}
            self._phase = index
            if new_cycle or optimizer is None:  # a resumed fit gets its saved state loaded by trainer.fit
                optimizer = trainer.make_optimizer()
                scheduler = trainer.make_scheduler(optimizer, epochs, lr_min=trainer.config.lr * o.lr_min_fraction)
            trainer.fit(n_epochs, optimizer=optimizer, scheduler=scheduler, desc=f"imp cycle {cycle}")
            if snapshot:
                self._rewind_state = {n: p.detach().cpu().clone() for n, p in model.named_parameters()}
            if index + 1 == len(fits) or fits[index + 1][0] != cycle:
                metrics = trainer.evaluate("test")
                self.cycle_masks.append(dict(self._masks))
                self._records.append({
                    "cycle": cycle, "nnz": targets[cycle], "density": targets[cycle] / total,
                    "layer_densities": densities_of(masks).tolist(),
                    "test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"],
                })
            self._phase = index + 1
        meter = make_meter(trainer, layers)
        for rec in self._records:
            meter.add_steps(steps_per_epoch(trainer) * epochs, rec["layer_densities"])
        out = accounting(meter, names, masks, self._changes)
        out.update({"cycles": self._records, "start_density": targets[0] / total, "final_density": targets[-1] / total})
        return out
