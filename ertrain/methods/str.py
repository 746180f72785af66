"""Soft threshold reparameterisation (STR; Kusupati et al. 2020), from a dense or an ER start.

Every masked layer's weight is reparameterised as ``S_g(W, s) = sign(W) * relu(|W| - g(s))`` with
one learnable threshold ``s`` per layer and ``g = sigmoid`` (STR, eq. (3)); the forward pass uses
``S_g(W, s)`` and ``W`` and ``s`` are trained jointly by SGD. Weight decay on ``s`` pulls it towards
0 and so raises the threshold: the sparsity that results is controlled by ``s_init`` and the weight
decay (the paper: ``sInit = -200``, weight decay 5e-4 for final sparsity 0.96 and 1e-3 for 0.995), not
set directly, and the density reached is reported.

Semantics. The start mask is the trainer's: dense for ``--density-scheme dense``, otherwise the ER
mask of ``--density-scheme``/``--sparsity`` (Tables 3, 14, 16); entries pruned by the start mask stay
pruned (the reparameterised weight is multiplied by the start mask). At the end the
reparameterisation is removed: ``.weight`` holds ``S_g(W, s)`` and the trainer's ``Masking`` holds
its support, so the final density is that of the non-zero weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ertrain.methods import register_method
from ertrain.methods._common import cpu_masks
from ertrain.methods._reparam import ReparametrisedMethod, SoftThreshold, reparametrised
from ertrain.methods.base import fit_schedule
from ertrain.scores import weight_of

if TYPE_CHECKING:

    from ertrain.trainer import Trainer


@register_method("str")
class STR(ReparametrisedMethod):
    """Soft threshold reparameterisation (see the module docstring)."""

    @dataclass(frozen=True)
    class Options:
        s_init: float = field(default=-200.0, metadata={"help": "initial threshold parameter s (threshold sigmoid(s))"})
        s_weight_decay: float = field(
            default=-1.0, metadata={"help": "weight decay of the thresholds s (negative: same as --weight-decay)"}
        )

    @dataclass
    class State(ReparametrisedMethod.State):
        s: dict[str, float] = field(default_factory=dict)  # threshold parameters by layer (synced every epoch)
        history: list[dict[str, Any]] = field(default_factory=list)
        start: dict[str, Any] = field(default_factory=dict)  # the start masks

    options: Options
    state: State

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.params: list[SoftThreshold] = []

    def saved_start(self) -> dict[str, Any]:
        return self.state.start  # resumed mid-run: the start mask

    def start(self, trainer: Trainer) -> None:
        super().start(trainer)
        self.state.start = cpu_masks([n for n, _ in self.layers], self.start_masks)
        self.params = [SoftThreshold(self.state.s.get(name, self.options.s_init), m)
                       for (name, _), m in zip(self.layers, self.start_masks, strict=True)]

    def train(self, trainer: Trainer) -> None:
        o = self.options
        s_wd = trainer.config.weight_decay if o.s_weight_decay < 0 else o.s_weight_decay
        with reparametrised(trainer, self.masking, self.params, final_mask=lambda module, _: weight_of(module) != 0,
                            leave_parametrized=True):
            thresholds = {id(p.s) for p in self.params}
            others = [p for p in trainer.model.parameters() if id(p) not in thresholds]
            groups = [{"params": others}, {"params": [p.s for p in self.params], "weight_decay": s_wd}]
            fit_schedule(trainer, self, "str", params=groups)  # warm-up epochs first (they move s as well)

    def end_epoch(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        """Record the epoch's density (the support of the thresholded weights) and sync the thresholds."""
        import torch

        with torch.no_grad():
            nnz = [int(weight_of(module).count_nonzero()) for _, module in self.layers]
        total = sum(m.numel() for m in self.start_masks)
        record["density"] = sum(nnz) / total
        self.state.history.append({
            "epoch": epoch, "density": sum(nnz) / total,
            "layer_densities": [n / weight_of(module).numel() for n, (_, module) in zip(nnz, self.layers, strict=True)],
            "thresholds": [float(p.threshold().detach()) for p in self.params],
        })
        self.state.s = {name: float(p.s.detach()) for (name, _), p in zip(self.layers, self.params, strict=True)}

    def finish(self, trainer: Trainer) -> dict[str, Any]:
        import torch

        total = self.masking.numel()
        # each epoch is counted at the density it ended with
        out = self.accounting(trainer, [(1, rec["layer_densities"]) for rec in self.state.history])
        out.update({"start_density": sum(int(m.sum()) for m in self.start_masks) / total,
                    "final_density": self.masking.nnz() / total,
                    "thresholds": {n: float(torch.sigmoid(torch.tensor(v))) for n, v in self.state.s.items()},
                    "history": self.state.history})
        return out
