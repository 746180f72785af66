"""Edge-popup (Ramanujan et al. 2020): find a strong lottery ticket by training scores over fixed
random weights, with the iterative annealed variant the paper uses (Fischer & Burkholz 2022).

Semantics. The source network is the trainer's model at initialisation, masked by its start mask:
dense for ``--density-scheme dense``, otherwise the ER mask of ``--density-scheme``/``--sparsity``
(the paper's "EP in ER networks", Tables 5, 17-22). Its random weights are drawn once at the start
(``init="kaiming_normal"``: N(0, 2 / fan_in) weights and zero biases, the paper's ``kn-zero-bias``;
``"model"``: the model's own initialisation) and, like biases and normalisation parameters, are
never trained; they are kept in ``EdgePopup.random_weights``. Every masked layer gets a score per
weight; the forward pass uses ``w * 1[|s| among the k_l largest |s| of the layer's candidates]``
(candidates = the start mask's kept entries) and the scores learn through the straight-through
estimator.

Annealing: ``levels`` levels of ``--epochs`` epochs each (the paper: 5 x 100); level ``i = 1..L``
keeps exactly ``round(d_i M)`` weights with ``d_i = d_0 (d_final / d_0)^(i / L)`` (geometric from
the start density ``d_0`` to ``final_density``), split over layers in proportion to the start
mask's non-zeros (uniform for a dense start). With ``level_start_density`` set the densities are
the paper's code's instead (:func:`ertrain.schedules.edgepopup_level_densities`: geometric from that
density, clipped to the start mask's density). Each level uses a fresh optimizer over the scores and
the configured schedule, restarted at every level (``lr_restart_per_level``; false: one schedule over
all ``levels * epochs`` epochs); scores carry over. Scores start Kaiming-uniform
(``score_init="kaiming_uniform"``), all 0.5 (``"constant"``) or, as the paper's code
(``ER_SLT/resnet_new.py:76``, ``:103``), 0.5 in conv layers and Kaiming-uniform in linear ones
(``"paper-code"``). ``optimizer_per_level=false`` keeps one optimizer (and its momentum) across the
levels, as the code does (``ER_SLT/cifar_main.py:268-273``).

Subnetwork (option ``subnet``). ``"topk"`` is the binary top-k above. ``"paper-code"`` reproduces the
paper's code's bug (``ER_SLT/resnet_new.py:44``): ``torch.where(er_mask == 1)[0]`` on the 4-D / 2-D
ER mask yields *row* indices, so only the first ``c_out`` flat entries of a layer are binarised (by
top-k among the repeated row entries, the last write of each row winning) and every other weight is
multiplied by its raw ``|s|``; the ER mask selects nothing (:class:`RowIndexScoredWeight`).  The
top-k count of a layer is ertrain's (the level's count apportioned over layers); the code's is
``int(d * numel)`` of the layer's weights and biases, and its conv biases carry scores too.

Export. At the end the score parametrisation is removed: every masked layer's ``.weight`` is the
original random weight times the final binary mask, and the trainer's ``Masking`` holds that mask
(so a checkpoint's ``masks`` and ``model`` are the subnetwork over the unchanged random weights).
With ``subnet="paper-code"`` the exported ``.weight`` is the random weight times the final
multipliers (what the code evaluated) and the mask their non-zeros.
The final scores are kept in ``EdgePopup.scores`` (by layer name). Checkpoints taken during
training hold the plain random weights (``model``) and the scores (``method``), so runs resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ertrain.methods import register_method
from ertrain.methods._common import densities_of, mask_difference
from ertrain.methods._reparam import ReparametrisedMethod, ScoredWeight, reparametrised
from ertrain.optim import lr_factors
from ertrain.scores import apportion, weight_of

if TYPE_CHECKING:
    from torch import nn

    from ertrain.trainer import Trainer


INIT_CHOICES = ("kaiming_normal", "model")
SCORE_INIT_CHOICES = ("kaiming_uniform", "constant", "paper-code")
SUBNET_CHOICES = ("topk", "paper-code")


class _RowIndexSubnet(torch.autograd.Function):
    """The paper's code's ``GetSubnetER`` on flat ``|s|``: binary at the row indices only; gradient straight through."""

    @staticmethod
    def forward(ctx: Any, abs_scores: Tensor, rows: Tensor, k: int) -> Tensor:
        out = abs_scores.clone()
        if rows.numel() == 0:
            return out
        temp = abs_scores[rows]
        order = torch.sort(temp, descending=True, stable=True).indices
        binary = torch.zeros_like(temp)
        binary[order[:k]] = 1.0
        last = torch.ones_like(rows, dtype=torch.bool)  # rows are sorted: the last entry of each row wins
        last[:-1] = rows[1:] != rows[:-1]
        out[rows[last]] = binary[last]
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return grad, None, None


class RowIndexScoredWeight(ScoredWeight):
    """Edge-popup as the paper's code ran it: ``w * m`` with ``m`` from :class:`_RowIndexSubnet` (see the module doc).

    ``candidates`` (the ER mask) only supplies the row index of each kept entry, in row-major order,
    as ``torch.where(er_mask == 1)[0]`` does; ``mask()`` returns the multipliers (not binary).
    """

    def mask(self) -> Tensor:
        rows = torch.nonzero(self.candidates.reshape(self.candidates.shape[0], -1))[:, 0]
        flat = self.scores.abs().reshape(-1)
        out: Tensor = _RowIndexSubnet.apply(flat, rows, self.k)
        return out.view(self.scores.shape)


def code_level_counts(start_nnz: int, total: int, final_density: float, levels: int, start_density: float) -> list[int]:
    """Kept weights at each level from :func:`ertrain.schedules.edgepopup_level_densities` (the last exactly final)."""
    from ertrain.schedules import edgepopup_level_densities

    final = int(round(final_density * total))
    if final < 1 or final > start_nnz:
        raise ValueError(f"final_density {final_density!r} must keep between 1 and the start's {start_nnz} weights")
    dens = edgepopup_level_densities(final_density, levels, init_density=start_nnz / total, start_density=start_density)
    counts = [int(round(d * total)) for d in dens]
    counts[-1] = final
    return [min(max(c, final), start_nnz) for c in counts]


def level_counts(start_nnz: int, total: int, final_density: float, levels: int) -> list[int]:
    """Kept weights at each level: ``round(d_0 (d_f / d_0)^(i/L) M)``, ``i = 1..L``, the last exactly ``d_f M``."""
    d0 = start_nnz / total
    final = int(round(final_density * total))
    if final < 1:
        raise ValueError(f"final_density {final_density!r} keeps no weight of {total}")
    if final > start_nnz:
        raise ValueError(f"final_density {final_density!r} is above the start density {d0!r}")
    counts = [int(round(d0 * (final_density / d0) ** (i / levels) * total)) for i in range(1, levels + 1)]
    counts[-1] = final
    return [min(max(c, final), start_nnz) for c in counts]


@register_method("edgepopup")
class EdgePopup(ReparametrisedMethod):
    """Iterative edge-popup over fixed random weights (see the module docstring)."""

    @dataclass(frozen=True)
    class Options:
        final_density: float = field(default=0.5, metadata={"help": "overall density of the final subnetwork"})
        levels: int = field(default=5, metadata={"help": "annealing levels, --epochs epochs each (paper: 5)"})
        init: str = field(
            default="kaiming_normal",
            metadata={"help": "random weights: kaiming_normal with zero biases (the paper's kn-zero-bias) or the "
                              "model's own initialisation", "choices": INIT_CHOICES},
        )
        score_init: str = field(
            default="kaiming_uniform",
            metadata={"help": "initial scores: kaiming_uniform or constant (0.5, the paper's code)",
                      "choices": SCORE_INIT_CHOICES},
        )
        level_start_density: float = field(
            default=0.0, metadata={"help": "the paper's code's level densities from this density (0: geometric from "
                                           "the start mask's)"}
        )
        lr_restart_per_level: bool = field(
            default=True, metadata={"help": "restart the schedule at every level (false: one over all levels)"}
        )
        subnet: str = field(
            default="topk",
            metadata={"help": "topk, or paper-code: the paper's code's row-index bug (only the first c_out entries "
                              "binarised, the rest multiplied by |score|)", "choices": SUBNET_CHOICES},
        )
        optimizer_per_level: bool = field(
            default=True, metadata={"help": "a fresh optimizer every level (false: one kept across levels)"}
        )

    @dataclass
    class State(ReparametrisedMethod.State):
        level: int = 0  # the level being trained
        records: list[dict[str, Any]] = field(default_factory=list)
        changes: int = 0
        scores: dict[str, Tensor] = field(default_factory=dict)  # by layer (synced every epoch; final at the end)
        random_weights: dict[str, Tensor] = field(default_factory=dict)  # the fixed random weights (CPU copies)
        prev: list[Tensor] = field(default_factory=list)  # the mask at the end of the last finished level

    options: Options
    state: State

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        o = self.options
        if not 0.0 < o.final_density <= 1.0:
            raise ValueError(f"edgepopup final_density must be in (0, 1], got {o.final_density!r}")
        if o.levels < 1:
            raise ValueError(f"edgepopup levels must be >= 1, got {o.levels!r}")
        if o.init not in INIT_CHOICES:
            raise ValueError(f"edgepopup init must be one of {INIT_CHOICES}, got {o.init!r}")
        if o.score_init not in SCORE_INIT_CHOICES:
            raise ValueError(f"edgepopup score_init must be one of {SCORE_INIT_CHOICES}, got {o.score_init!r}")
        if not 0.0 <= o.level_start_density <= 1.0:
            raise ValueError(f"edgepopup level_start_density must be in [0, 1] (0: off), got {o.level_start_density!r}")
        if o.subnet not in SUBNET_CHOICES:
            raise ValueError(f"edgepopup subnet must be one of {SUBNET_CHOICES}, got {o.subnet!r}")
        self.optimizer: torch.optim.Optimizer | None = None
        self.params: list[ScoredWeight] = []
        self.counts: list[int] = []
        self.trainable: dict[Tensor, bool] = {}

    @property
    def scores(self) -> dict[str, Tensor]:
        """The scores by layer name (final after the run)."""
        return self.state.scores

    @property
    def random_weights(self) -> dict[str, Tensor]:
        """The fixed random weights of the masked layers (CPU copies, by layer name)."""
        return self.state.random_weights

    def start(self, trainer: Trainer) -> None:
        import torch

        super().start(trainer)
        masking = self.masking
        nnz0 = sum(int(m.sum()) for m in self.start_masks)
        o = self.options
        self.counts = code_level_counts(nnz0, masking.numel(), o.final_density, o.levels, o.level_start_density) \
            if o.level_start_density > 0 else level_counts(nnz0, masking.numel(), o.final_density, o.levels)
        self.trainable = {param: param.requires_grad for param in trainer.model.parameters()}
        for param in trainer.model.parameters():
            param.requires_grad_(False)
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=trainer.generator)))
        if self.options.init == "kaiming_normal" and not self.state.scores:  # resumed: the weights are restored
            self._draw_weights(gen)
            masking.apply_()
            self._scale_fan_in(trainer)
        if not self.state.random_weights:
            self.state.random_weights = {n: weight_of(m).detach().cpu().clone() for n, m in self.layers}
        scored = RowIndexScoredWeight if o.subnet == "paper-code" else ScoredWeight
        self.params = [scored(self._initial_scores(name, module, gen).to(weight_of(module).device), m, 0)
                       for (name, module), m in zip(self.layers, self.start_masks, strict=True)]

    def _draw_weights(self, gen: torch.Generator) -> None:
        """N(0, 2 / fan_in) weights and zero biases for the masked layers (the paper's ``kn-zero-bias``)."""
        import torch

        with torch.no_grad():
            for _, module in self.layers:
                w = weight_of(module)
                w.copy_(torch.nn.init.kaiming_normal_(torch.empty(w.shape), nonlinearity="relu", generator=gen))
                bias = getattr(module, "bias", None)
                if isinstance(bias, torch.Tensor):
                    bias.zero_()

    def _scale_fan_in(self, trainer: Trainer) -> None:
        """``init_scale_fan`` again on the redrawn weights (the trainer's rescaling was of the model's own)."""
        config = trainer.config
        if config.init_scale_fan:
            from ertrain.init import init_scale_fan

            init_scale_fan(self.layers, [m.detach() for m in self.start_masks], per=config.init_scale_fan_per,
                           density=config.density)

    def _initial_scores(self, name: str, module: nn.Module, gen: torch.Generator) -> Tensor:
        import torch

        if name in self.state.scores:  # resumed
            return self.state.scores[name].clone()
        scores = torch.empty(weight_of(module).shape)
        if self.options.score_init == "constant" or (self.options.score_init == "paper-code" and scores.dim() > 2):
            return scores.fill_(0.5)
        torch.nn.init.kaiming_uniform_(scores, a=5**0.5, generator=gen)
        return scores

    def train(self, trainer: Trainer) -> None:
        try:
            with reparametrised(trainer, self.masking, self.params, final_mask=lambda _, p: p.mask(),  # type: ignore[operator]
                                leave_parametrized=self.options.subnet == "paper-code"):
                for level in range(self.state.level, len(self.counts)):
                    self.state.level = level
                    self._train_level(trainer, level)
                self.state.level = len(self.counts)
        finally:
            for param, flag in self.trainable.items():
                param.requires_grad_(flag)

    def _train_level(self, trainer: Trainer, level: int) -> None:
        """Train the scores at level ``level`` (0-based) and record the mask it ends with."""
        import torch

        nnz0 = np.array([int(m.sum()) for m in self.start_masks])
        for p, k in zip(self.params, apportion(self.counts[level], nnz0, nnz0), strict=True):
            p.k = int(k)
        epochs = int(trainer.config.epochs)
        optimizer = self._level_optimizer(trainer)
        scheduler = trainer.make_scheduler(optimizer, epochs) if self.options.lr_restart_per_level \
            else _level_slice(trainer.config, optimizer, level, len(self.counts))
        trainer.fit(epochs, optimizer=optimizer, scheduler=scheduler, hooks=(self,),
                    desc=f"edgepopup level {level + 1}/{len(self.counts)}")
        prev = [m.to(self.start_masks[0].device) for m in self.state.prev] if self.state.prev else self.start_masks
        with torch.no_grad():
            current = [p.mask().bool() for p in self.params]
        self.state.changes += mask_difference(current, prev)
        self.state.prev = [m.cpu() for m in current]
        metrics = trainer.evaluate("test")
        total = sum(m.numel() for m in self.start_masks)
        self.state.records.append({"level": level + 1, "nnz": self.counts[level], "density": self.counts[level] / total,
                                   "test_accuracy": metrics["accuracy"],
                                   "layer_densities": densities_of(current).tolist()})

    def _level_optimizer(self, trainer: Trainer) -> torch.optim.Optimizer:
        """A fresh optimizer over the scores, or (``optimizer_per_level`` false) the first one, lr back at the start."""
        if self.optimizer is None or self.options.optimizer_per_level:
            self.optimizer = trainer.make_optimizer(params=[p.scores for p in self.params])
            return self.optimizer
        for group in self.optimizer.param_groups:
            group["lr"] = group.get("initial_lr", group["lr"])
        return self.optimizer

    supports_warmup = False

    def end_epoch(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        """Keep the scores in the state (for the epoch's checkpoint)."""
        self.state.scores = {name: p.scores.detach().cpu().clone()
                             for (name, _), p in zip(self.layers, self.params, strict=True)}

    def finish(self, trainer: Trainer) -> dict[str, Any]:
        total = self.masking.numel()
        # every step: sparse forward and input gradient, dense weight gradient for the scores
        phases = [(int(trainer.config.epochs), rec["layer_densities"]) for rec in self.state.records]
        out = self.accounting(trainer, phases, mask_changes=self.state.changes, dense_weight_grad=True)
        out.update({"levels": self.state.records,
                    "start_density": sum(int(m.sum()) for m in self.start_masks) / total,
                    "final_density": self.counts[-1] / total})
        return out


def _level_slice(config: Any, optimizer: torch.optim.Optimizer, level: int, levels: int) -> Any:
    """Level ``level``'s part of one schedule over all ``levels * epochs`` epochs (no restart per level)."""
    import torch

    epochs = int(config.epochs)
    factors = lr_factors(config, levels * epochs)[level * epochs:(level + 1) * epochs]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: factors[min(e, len(factors) - 1)])
