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
from ertrain.methods._common import (
    accounting,
    ensure_masking,
    make_meter,
    mask_difference,
    mask_list,
    masked_modules,
    plain_state_dict_hook,
    restore_masks,
    steps_per_epoch,
)
from ertrain.methods.base import Method
from ertrain.scores import weight_of

if TYPE_CHECKING:
    from ertrain.methods._reparam import SoftThreshold
    from ertrain.train import Trainer


@register_method("str")
class STR(Method):
    """Soft threshold reparameterisation (see the module docstring)."""

    @dataclass(frozen=True)
    class Options:
        s_init: float = field(default=-200.0, metadata={"help": "initial threshold parameter s (threshold sigmoid(s))"})
        s_weight_decay: float = field(
            default=-1.0, metadata={"help": "weight decay of the thresholds s (negative: same as --weight-decay)"}
        )

    options: Options

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self._params: dict[str, SoftThreshold] = {}
        self._s: dict[str, float] = {}
        self._history: list[dict[str, Any]] = []
        self._start: dict[str, Any] = {}
        self._result: dict[str, Any] | None = None
        self._final: dict[str, Any] = {}

    def state_dict(self) -> dict[str, Any]:
        s = {n: float(p.s.detach()) for n, p in self._params.items()} or self._s
        return {"s": s, "history": list(self._history), "start": self._start, "result": self._result,
                "final": self._final}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self._s = dict(state["s"])
            self._history = list(state["history"])
            self._start = dict(state["start"])
            self._result = state["result"]
            self._final = dict(state["final"])

    def run(self, trainer: Trainer) -> dict[str, Any]:
        import torch
        from torch.nn.utils import parametrize

        from ertrain.methods._reparam import SoftThreshold

        o = self.options
        masking = ensure_masking(trainer)
        if self._result is not None:  # resumed after the end: the final mask and the result are saved
            restore_masks(masking, self._final)
            return self._result
        restore_masks(masking, self._start)  # resumed mid-run: the start mask
        layers = masked_modules(trainer, masking)
        names = [n for n, _ in layers]
        start = mask_list(masking)
        self._start = {n: m.detach().cpu().clone() for n, m in zip(names, start, strict=True)}
        total = sum(m.numel() for m in start)
        for (name, module), m in zip(layers, start, strict=True):
            p = SoftThreshold(self._s.get(name, o.s_init), m)
            parametrize.register_parametrization(module, "weight", p)
            self._params[name] = p
        params = list(self._params.values())
        hook = plain_state_dict_hook(trainer.model, names)
        thresholds = {id(p.s) for p in params}
        others = [p for p in trainer.model.parameters() if id(p) not in thresholds]
        s_wd = trainer.config.weight_decay if o.s_weight_decay < 0 else o.s_weight_decay
        groups = [{"params": others}, {"params": [p.s for p in params], "weight_decay": s_wd}]
        epochs = int(trainer.config.epochs)
        trainer.masking = None  # the reparameterisation applies the start mask
        history = self._history

        class _Track:
            def end_epoch(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
                with torch.no_grad():
                    nnz = [int(weight_of(module).count_nonzero()) for _, module in layers]
                metrics["density"] = sum(nnz) / total
                history.append({"epoch": epoch, "density": sum(nnz) / total,
                                "layer_densities": [n / weight_of(module).numel()
                                                    for n, (_, module) in zip(nnz, layers, strict=True)],
                                "thresholds": [float(p.threshold().detach()) for p in params]})

        try:
            optimizer = trainer.make_optimizer(params=groups)
            scheduler = trainer.make_scheduler(optimizer, epochs)
            trainer.fit(epochs, optimizer=optimizer, scheduler=scheduler, hooks=(_Track(),), desc="str")
        finally:
            hook.remove()
            self._s = {n: float(p.s.detach()) for n, p in self._params.items()}
            self._params = {}
            for _, module in layers:
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            trainer.masking = masking
            for name, module in layers:
                masking.set_mask(name, weight_of(module).detach() != 0)
        final = mask_list(masking)
        # each epoch is counted at the density it ended with
        meter = make_meter(trainer, layers)
        for rec in history:
            meter.add_steps(steps_per_epoch(trainer), rec["layer_densities"])
        changes = mask_difference(start, final)
        out = accounting(meter, names, final, changes)
        out.update({"start_density": sum(int(m.sum()) for m in start) / total,
                    "final_density": sum(int(m.sum()) for m in final) / total,
                    "thresholds": {n: float(torch.sigmoid(torch.tensor(v))) for n, v in self._s.items()},
                    "history": history})
        self._final, self._result = masking.state_dict(), out
        return out
