"""Iterative magnitude pruning (IMP; Frankle & Carbin 2019), from a dense or an ER start.

Semantics. The start mask is the trainer's: dense for ``--density-scheme dense``, otherwise the ER
mask of ``--density-scheme``/``--sparsity`` (the paper's sparse-to-sparse IMP, Tables 4, 15, 29-32).
Cycle 0 trains the start mask for ``--epochs`` epochs. Each further cycle ``k`` removes the
smallest-magnitude weights so that exactly ``round(nnz_0 (1 - f)^k)`` remain (``f`` =
``prune_fraction``, 0.2 in the paper), rewinds the surviving weights (``rewind``: ``init``, ``epoch``
= the end of epoch ``rewind_epoch`` of cycle 0, ``iteration:N`` = the weights after ``N`` optimizer
steps of cycle 0 (``iteration:0`` is ``init``), or ``none``) and trains again for ``--epochs`` epochs
with a fresh optimizer (``reset_optimizer``; false keeps the momentum across cycles) and a cosine
schedule from ``lr`` to ``lr * lr_min_fraction`` (the paper: 0.1 -> 0.01, 150 epochs per cycle).
``cycle_epochs`` > 0 sets the epochs of every cycle instead; with ``final_retrain`` the last cycle
(after the last pruning) trains ``--epochs`` epochs instead (the paper's code: 150 per pruning
cycle, then 160 at the final mask, ``STR/main.py``). The number of pruning cycles is ``cycles``,
or, when ``final_density`` is set, as many as needed to reach it, the last cycle pruning to exactly
``final_density`` (overall density of the masked layers).

With ``level_start_density`` = ``d_s`` > 0 the cycles prune to the paper's code's absolute levels
instead (:func:`code_cycle_targets`, ``STR/run_imp.py``): ``d_s (1 - f)^l`` of all masked weights,
``l = 1..L`` (``L = int(log(final_density / d_s) / log(1 - f))``, or ``cycles``), and a level above
the current number of kept weights prunes nothing (``STR/main.py:281-292``) while its cycle still trains.

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ertrain.methods import register_method
from ertrain.methods._common import (
    cpu_masks,
    densities_of,
    mask_difference,
    mask_list,
    masked_start,
    per_epoch_accounting,
    restore_masks,
)
from ertrain.methods.base import Method
from ertrain.methods.maskops import SCOPE_CHOICES, magnitude_prune
from ertrain.scores import weight_of

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from ertrain.config import TrainConfig
    from ertrain.masks import Masking
    from ertrain.trainer import Trainer

REWIND_CHOICES = ("init", "epoch", "none", "iteration:N")


def parse_rewind(rewind: str) -> tuple[str, int]:
    """``(kind, steps)`` of a rewind setting: ``init``/``epoch``/``none`` (steps 0) or ``iteration:N`` (steps N)."""
    if rewind in ("init", "epoch", "none"):
        return rewind, 0
    kind, _, count = str(rewind).partition(":")
    if kind == "iteration" and count.isdigit():
        return "iteration", int(count)
    raise ValueError(f"imp rewind must be one of {REWIND_CHOICES} (N a non-negative integer), got {rewind!r}")


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


def code_cycle_targets(
    start_nnz: int, total: int, prune_fraction: float, cycles: int, final_density: float, level_start: float
) -> list[int]:
    """Kept weights per cycle at the paper's code's absolute levels ``level_start (1 - f)^l`` (cycle 0 = start).

    Level ``l`` keeps ``total - int((1 - d_l) total)`` weights (the code's ``kthvalue`` threshold) but
    never more than the previous cycle: a level above the current count is a no-op.  ``L`` =
    ``int(log(final_density / level_start) / log(1 - f))`` with ``final_density`` > 0, else ``cycles``.
    """
    if not 0.0 < prune_fraction < 1.0:
        raise ValueError(f"prune_fraction must be in (0, 1), got {prune_fraction!r}")
    if not 0.0 < level_start <= 1.0:
        raise ValueError(f"imp level_start_density must be in (0, 1], got {level_start!r}")
    if final_density > 0.0:
        levels = int((math.log(final_density) - math.log(level_start)) / math.log(1.0 - prune_fraction))
    elif cycles >= 0:
        levels = cycles
    else:
        raise ValueError(f"cycles must be >= 0, got {cycles!r}")
    targets = [start_nnz]
    for level in range(1, levels + 1):
        d = level_start * (1.0 - prune_fraction) ** level
        targets.append(min(targets[-1], total - int((1.0 - d) * total)))
    return targets


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
        rewind: str = field(
            default="init", metadata={"help": "rewind kept weights to: init, epoch, none or iteration:N (N steps)"}
        )
        rewind_epoch: int = field(default=1, metadata={"help": "epoch of cycle 0 to rewind to (--imp-rewind epoch)"})
        lr_min_fraction: float = field(
            default=0.1, metadata={"help": "each cycle's cosine schedule ends at lr * this (paper: 0.1 -> 0.01)"}
        )
        cycle_epochs: int = field(default=0, metadata={"help": "epochs of each pruning cycle (0: --epochs)"})
        final_retrain: bool = field(
            default=False, metadata={"help": "the last cycle (after the last pruning) trains --epochs epochs"}
        )
        reset_optimizer: bool = field(
            default=True, metadata={"help": "a fresh optimizer every cycle (false: momentum carries over)"}
        )
        level_start_density: float = field(
            default=0.0, metadata={"help": "prune to the paper's code's absolute levels d (1 - f)^l from this "
                                           "density d, no-op above the current count (0: off)"}
        )

    @dataclass
    class State:
        phase: int = 0  # fits started: cycle 0 has two with --imp-rewind epoch
        records: list[dict[str, Any]] = field(default_factory=list)
        changes: int = 0
        rewind_state: dict[str, Tensor] = field(default_factory=dict)  # parameters to rewind to (CPU)
        masks: dict[str, Tensor] = field(default_factory=dict)  # the current cycle's mask (CPU)
        cycle_masks: list[dict[str, Tensor]] = field(default_factory=list)  # every finished cycle's mask

    options: Options
    state: State
    supports_warmup = False

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        o = self.options
        if o.scope not in SCOPE_CHOICES:
            raise ValueError(f"imp scope must be one of {SCOPE_CHOICES}, got {o.scope!r}")
        self.rewind_kind, self.rewind_step = parse_rewind(o.rewind)
        if isinstance(o.cycle_epochs, bool) or not isinstance(o.cycle_epochs, int) or o.cycle_epochs < 0:
            raise ValueError(f"imp cycle_epochs must be a non-negative integer, got {o.cycle_epochs!r}")
        if not 0.0 <= o.final_density <= 1.0:
            raise ValueError(f"imp final_density must be in [0, 1], got {o.final_density!r}")
        if not 0.0 < o.lr_min_fraction <= 1.0:
            raise ValueError(f"imp lr_min_fraction must be in (0, 1], got {o.lr_min_fraction!r}")
        if not 0.0 <= o.level_start_density <= 1.0:
            raise ValueError(f"imp level_start_density must be in [0, 1] (0: off), got {o.level_start_density!r}")
        self.masking: Masking | None = None
        self.layers: list[tuple[str, nn.Module]] = []
        self.targets: list[int] = []
        self.lengths: list[int] = []  # epochs of each cycle
        self.fits: list[tuple[int, int, bool]] = []
        self.resumed = False

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        """The base checks, and ``select_from_epoch`` within the last cycle (the one whose epochs are selected)."""
        super().check_config(config)
        opts = config.method_options
        epochs = int(config.epochs)
        last = epochs if opts.get("final_retrain") else int(opts.get("cycle_epochs", 0)) or epochs
        if config.select != "final" and int(config.select_from_epoch) >= last:
            raise ValueError(f"select_from_epoch {config.select_from_epoch!r} is past the {last} epochs of imp's "
                             f"last cycle; use a value below {last}")

    @property
    def cycle_masks(self) -> list[dict[str, Tensor]]:
        """Every finished cycle's mask (CPU bool tensors by layer name)."""
        return self.state.cycle_masks

    def start(self, trainer: Trainer) -> None:
        o = self.options
        self.resumed = bool(self.state.masks)
        masking, self.layers, masks = masked_start(trainer, self.state.masks)
        self.masking = masking
        start_nnz = int(self.state.records[0]["nnz"]) if self.state.records else sum(int(m.sum()) for m in masks)
        if o.level_start_density > 0:
            self.targets = code_cycle_targets(start_nnz, masking.numel(), o.prune_fraction, o.cycles,
                                              o.final_density, o.level_start_density)
        else:
            self.targets = cycle_targets(start_nnz, masking.numel(), o.prune_fraction, o.cycles, o.final_density)
        self.lengths = [self.cycle_length(c, int(trainer.config.epochs)) for c in range(len(self.targets))]
        first = self.lengths[0]
        if self.rewind_kind == "epoch" and not 0 <= o.rewind_epoch <= first:
            raise ValueError(f"imp rewind_epoch must lie in [0, {first}], got {o.rewind_epoch!r}")
        if self.rewind_kind == "iteration" and self.rewind_step > first * trainer.steps_per_epoch:
            raise ValueError(f"imp rewind {o.rewind!r} is past the {first * trainer.steps_per_epoch} steps of cycle 0")
        if not self.state.rewind_state:
            self.state.rewind_state = _parameters(trainer.model)
        # the fits as (cycle, epochs, take the rewind snapshot after it); cycle 0 splits at rewind_epoch
        self.fits = [(0, o.rewind_epoch, True), (0, first - o.rewind_epoch, False)] if self.rewind_kind == "epoch" \
            else [(0, first, False)]
        self.fits += [(c, self.lengths[c], False) for c in range(1, len(self.targets))]

    def cycle_length(self, cycle: int, epochs: int) -> int:
        """Epochs of ``cycle``: ``cycle_epochs`` (0: ``epochs``); the last one ``epochs`` with ``final_retrain``."""
        o = self.options
        if o.final_retrain and cycle == len(self.targets) - 1:
            return epochs
        return int(o.cycle_epochs) or epochs

    def after_step(self, trainer: Trainer, step: int) -> None:
        """With ``rewind="iteration:N"`` (N > 0): keep the weights after the ``N``-th step as the rewind point."""
        if self.rewind_kind == "iteration" and step + 1 == self.rewind_step:
            self.state.rewind_state = _parameters(trainer.model)

    def train(self, trainer: Trainer) -> None:
        o = self.options
        optimizer: torch.optim.Optimizer | None = None
        scheduler: Any = None
        first = self.state.phase
        for index in range(first, len(self.fits)):
            cycle, n_epochs, snapshot = self.fits[index]
            new_cycle = index == 0 or self.fits[index - 1][0] != cycle
            continuing = self.resumed and index == first  # the fit a checkpoint interrupted
            if cycle > 0 and new_cycle and not continuing:
                self._prune_and_rewind(trainer, cycle)
            self.state.masks = cpu_masks([n for n, _ in self.layers], self._masks())
            self.state.phase = index
            if new_cycle or optimizer is None:  # a resumed fit gets its saved state loaded by trainer.fit
                optimizer = _cycle_optimizer(trainer, optimizer, o.reset_optimizer)
                scheduler = trainer.make_scheduler(optimizer, self.lengths[cycle],
                                                   lr_min=trainer.config.lr * o.lr_min_fraction)
            trainer.fit(n_epochs, optimizer=optimizer, scheduler=scheduler, hooks=(self,), desc=f"imp cycle {cycle}")
            if snapshot:
                self.state.rewind_state = _parameters(trainer.model)
            if index + 1 == len(self.fits) or self.fits[index + 1][0] != cycle:
                self._record_cycle(trainer, cycle)
            self.state.phase = index + 1

    def _masks(self) -> list[Tensor]:
        assert self.masking is not None
        return mask_list(self.masking)

    def _prune_and_rewind(self, trainer: Trainer, cycle: int) -> None:
        """Prune to cycle ``cycle``'s number of weights by magnitude and rewind the survivors."""
        import torch

        assert self.masking is not None
        masks = self._masks()
        new_masks = magnitude_prune([weight_of(m) for _, m in self.layers], masks, self.targets[cycle],
                                    self.options.scope)
        self.state.changes += mask_difference(masks, new_masks)
        restore_masks(self.masking, dict(zip([n for n, _ in self.layers], new_masks, strict=True)))
        if self.rewind_kind != "none":
            with torch.no_grad():
                for n, p in trainer.model.named_parameters():
                    p.copy_(self.state.rewind_state[n].to(p.device))
            self.masking.apply_()

    def _record_cycle(self, trainer: Trainer, cycle: int) -> None:
        metrics = trainer.evaluate("test")
        total = sum(m.numel() for m in self._masks())
        self.state.cycle_masks.append(dict(self.state.masks))
        self.state.records.append({
            "cycle": cycle, "nnz": self.targets[cycle], "density": self.targets[cycle] / total,
            "layer_densities": densities_of(self._masks()).tolist(),
            "test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"],
        })

    def finish(self, trainer: Trainer) -> dict[str, Any]:
        total = sum(m.numel() for m in self._masks())
        phases = [(self.lengths[rec["cycle"]], rec["layer_densities"]) for rec in self.state.records]
        out = per_epoch_accounting(trainer, self.layers, self._masks(), self.state.changes, phases)
        out.update({"cycles": self.state.records, "start_density": self.targets[0] / total,
                    "final_density": self.targets[-1] / total})
        return out


def _cycle_optimizer(
    trainer: Trainer, previous: torch.optim.Optimizer | None, reset: bool
) -> torch.optim.Optimizer:
    """A fresh optimizer (``reset`` or the first cycle), else ``previous`` with its learning rates back at the start."""
    if reset or previous is None:
        return trainer.make_optimizer()
    for group in previous.param_groups:
        group["lr"] = group.get("initial_lr", group["lr"])
    return previous


def _parameters(model: nn.Module) -> dict[str, Tensor]:
    """CPU copies of the model's parameters by name (a rewind point)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters()}


__all__ = [
    "IMP", "REWIND_CHOICES", "SCOPE_CHOICES", "code_cycle_targets", "cycle_targets", "magnitude_prune", "parse_rewind",
]
