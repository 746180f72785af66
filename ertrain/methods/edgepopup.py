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
mask's non-zeros (uniform for a dense start). Each level uses a fresh optimizer over the scores and
the configured schedule; scores carry over.

Export. At the end the score parametrisation is removed: every masked layer's ``.weight`` is the
original random weight times the final binary mask, and the trainer's ``Masking`` holds that mask
(so a checkpoint's ``masks`` and ``model`` are the subnetwork over the unchanged random weights).
The final scores are kept in ``EdgePopup.scores`` (by layer name). Checkpoints taken during
training hold the plain random weights (``model``) and the scores (``method``), so runs resume.
"""

from __future__ import annotations

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
    plain_state_dict_hook,
    restore_masks,
    steps_per_epoch,
)
from ertrain.methods.base import Method
from ertrain.scores import apportion, weight_of

if TYPE_CHECKING:
    from torch import Tensor

    from ertrain.methods._reparam import ScoredWeight
    from ertrain.train import Trainer


INIT_CHOICES = ("kaiming_normal", "model")


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
class EdgePopup(Method):
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

    options: Options

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        o = self.options
        if not 0.0 < o.final_density <= 1.0:
            raise ValueError(f"edgepopup final_density must be in (0, 1], got {o.final_density!r}")
        if o.levels < 1:
            raise ValueError(f"edgepopup levels must be >= 1, got {o.levels!r}")
        if o.init not in INIT_CHOICES:
            raise ValueError(f"edgepopup init must be one of {INIT_CHOICES}, got {o.init!r}")
        self.scores: dict[str, Tensor] = {}
        #: The fixed random weights of the masked layers (CPU copies, by layer name).
        self.random_weights: dict[str, Tensor] = {}
        self._params: dict[str, ScoredWeight] = {}
        self._level = 0
        self._records: list[dict[str, Any]] = []
        self._changes = 0
        self._result: dict[str, Any] | None = None
        self._final: dict[str, Any] = {}
        self._prev: list[Tensor] = []  # the mask at the end of the last finished level

    def state_dict(self) -> dict[str, Any]:
        scores = {n: p.scores.detach().cpu().clone() for n, p in self._params.items()} or self.scores
        return {"level": self._level, "records": list(self._records), "changes": self._changes, "scores": scores,
                "random_weights": self.random_weights, "result": self._result, "final": self._final,
                "prev": self._prev}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self._level = int(state["level"])
            self._records = list(state["records"])
            self._changes = int(state["changes"])
            self.scores = dict(state["scores"])
            self.random_weights = dict(state["random_weights"])
            self._result = state["result"]
            self._final = dict(state["final"])
            self._prev = list(state["prev"])

    def run(self, trainer: Trainer) -> dict[str, Any]:
        import torch
        from torch import nn
        from torch.nn.utils import parametrize

        from ertrain.methods._reparam import ScoredWeight

        o = self.options
        masking = ensure_masking(trainer)
        if self._result is not None:  # resumed after the end: the final mask and the result are saved
            restore_masks(masking, self._final)
            return self._result
        layers = masked_modules(trainer, masking)
        names = [n for n, _ in layers]
        start = mask_list(masking)
        nnz0 = np.array([int(m.sum()) for m in start])
        total = sum(m.numel() for m in start)
        counts = level_counts(int(nnz0.sum()), total, o.final_density, o.levels)
        meter = make_meter(trainer, layers)
        model = trainer.model
        trainable = {param: param.requires_grad for param in model.parameters()}
        for param in model.parameters():
            param.requires_grad_(False)
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=trainer.generator)))
        if o.init == "kaiming_normal" and not self.scores:  # not when resuming: the weights are restored
            with torch.no_grad():
                for _, module in layers:
                    w = weight_of(module)
                    w.copy_(torch.nn.init.kaiming_normal_(torch.empty(w.shape), nonlinearity="relu", generator=gen))
                    bias = getattr(module, "bias", None)
                    if isinstance(bias, torch.Tensor):
                        bias.zero_()
                masking.apply_()
        if not self.random_weights:
            self.random_weights = {n: weight_of(m).detach().cpu().clone() for n, m in layers}
        for name, module in layers:
            if name in self.scores:  # resumed
                scores = self.scores[name].clone()
            else:
                scores = torch.empty(weight_of(module).shape)
                nn.init.kaiming_uniform_(scores, a=5**0.5, generator=gen)
            p = ScoredWeight(scores.to(weight_of(module).device), start[names.index(name)], 0)
            parametrize.register_parametrization(module, "weight", p)
            self._params[name] = p
        params = list(self._params.values())
        hook = plain_state_dict_hook(model, names)
        trainer.masking = None  # the parametrisation applies the start mask
        prev = [m.to(start[0].device) for m in self._prev] if self._prev else start
        try:
            for level in range(self._level, len(counts)):
                self._level = level
                for p, k in zip(params, apportion(counts[level], nnz0, nnz0), strict=True):
                    p.k = int(k)
                optimizer = trainer.make_optimizer(params=[p.scores for p in params])
                scheduler = trainer.make_scheduler(optimizer, int(trainer.config.epochs))
                trainer.fit(int(trainer.config.epochs), optimizer=optimizer, scheduler=scheduler,
                            desc=f"edgepopup level {level + 1}/{len(counts)}")
                with torch.no_grad():
                    current = [p.mask().bool() for p in params]
                self._changes += mask_difference(current, prev)
                prev = current
                self._prev = [m.cpu() for m in current]
                metrics = trainer.evaluate("test")
                self._records.append({"level": level + 1, "nnz": counts[level], "density": counts[level] / total,
                                      "test_accuracy": metrics["accuracy"],
                                      "layer_densities": densities_of(current).tolist()})
            self._level = len(counts)
        finally:
            hook.remove()
            with torch.no_grad():
                final = [p.mask().bool() for p in params]
            for (name, module), p in zip(layers, params, strict=True):
                self.scores[name] = p.scores.detach().cpu().clone()
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
            self._params = {}
            for param, flag in trainable.items():
                param.requires_grad_(flag)
            trainer.masking = masking
            for name, m in zip(names, final, strict=True):
                masking.set_mask(name, m)
        # every step: sparse forward and input gradient, dense weight gradient for the scores
        for rec in self._records:
            meter.add_steps(steps_per_epoch(trainer) * int(trainer.config.epochs), rec["layer_densities"],
                            dense_weight_grad=True)
        out = accounting(meter, names, mask_list(masking), self._changes)
        out.update({"levels": self._records, "start_density": float(nnz0.sum()) / total,
                    "final_density": counts[-1] / total})
        self._final, self._result = masking.state_dict(), out
        return out
