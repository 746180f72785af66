"""``pai``: pruning at initialisation with SNIP's or iterative SynFlow's own (non-random) mask, then static training.

Semantics (the conventions of ``imp``). The start mask is the trainer's: dense for
``--density-scheme dense`` (the usual case, and the one the paper compares ER-SNIP / ER-SynFlow
with), otherwise the ER mask of ``--density-scheme``/``--sparsity``. Before any training, the
saliency is computed on the network at initialisation with the start mask applied, and the kept
weights are the global top-``k`` of the saliency among the start mask's kept weights, with
``k = round(final_density * M)`` (``M`` = all weights of the masked layers, so ``final_density`` is
the overall density of the result, as ``imp``'s ``final_density``). ``final_density`` 0 keeps the
start density (only useful with a sparse start: the mask is then re-chosen inside the ER mask).

``saliency="snip"``: SNIP's connection sensitivity ``|w dL/dw|`` (Lee et al. 2019, eq. (6)) on one
batch of ``--batch-size`` training examples drawn with the run's generator, kept in one shot.
``saliency="synflow"``: iterative SynFlow (Tanaka et al. 2020, Algorithm 1), ``synflow_iterations``
rounds of data-free scoring and pruning towards the target. The mask then stays fixed and the
network trains ``--epochs`` epochs, as ``static`` does. These are the non-random counterparts of
the ``snip`` / ``synflow`` density schemes (ER-SNIP / ER-SynFlow, Tables 1 and 8-11 of the paper).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ertrain.methods import register_method
from ertrain.methods._common import ensure_masking, mask_list, masked_start
from ertrain.methods.base import Method, fit_schedule
from ertrain.scores import global_topk_masks, iterative_synflow_masks, snip_scores

if TYPE_CHECKING:
    from torch import Tensor

    from ertrain.trainer import Trainer

SALIENCY_CHOICES = ("snip", "synflow")


@register_method("pai")
class PruneAtInit(Method):
    """SNIP / iterative SynFlow mask chosen at initialisation, then fixed (see the module docstring)."""

    @dataclass(frozen=True)
    class Options:
        saliency: str = field(default="snip", metadata={"help": "saliency of the mask", "choices": SALIENCY_CHOICES})
        final_density: float = field(
            default=0.0, metadata={"help": "overall density of the pruned mask (0: the start density)"}
        )
        synflow_iterations: int = field(default=100, metadata={"help": "pruning rounds of iterative SynFlow"})

    @dataclass
    class State:
        pruned: bool = False
        start_density: float | None = None

    options: Options
    state: State

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        o = self.options
        if o.saliency not in SALIENCY_CHOICES:
            raise ValueError(f"pai saliency must be one of {SALIENCY_CHOICES}, got {o.saliency!r}")
        if not 0.0 <= o.final_density <= 1.0:
            raise ValueError(f"pai final_density must be in [0, 1], got {o.final_density!r}")
        if o.synflow_iterations < 1:
            raise ValueError(f"pai synflow_iterations must be >= 1, got {o.synflow_iterations!r}")

    def prune(self, trainer: Trainer) -> list[Tensor]:
        """The pruned masks (layer order of ``trainer.masking``) for the trainer's current weights."""
        import torch

        o = self.options
        _, layers, start = masked_start(trainer)
        total = sum(m.numel() for m in start)
        start_nnz = sum(int(m.sum()) for m in start)
        keep = start_nnz if o.final_density == 0.0 else int(round(o.final_density * total))
        if not 0 < keep <= start_nnz:
            raise ValueError(f"pai final_density {o.final_density!r} must keep between 1 and the start mask's "
                             f"{start_nnz} weights (of {total})")
        data = trainer.data
        if data.is_graph:
            raise ValueError(f"pai needs a model of one input; the graph data {data.name!r} takes two")
        if o.saliency == "snip":
            n = int(data.x_train.shape[0])
            pick = torch.randperm(n, generator=trainer.generator)[: trainer.config.batch_size]
            pick = pick.to(data.x_train.device)
            scores = snip_scores(trainer.model, data.x_train[pick], data.y_train[pick], layers=layers, masks=start)
            return global_topk_masks(scores, keep / start_nnz, masks=start)
        return iterative_synflow_masks(trainer.model, tuple(data.input_shape), keep / start_nnz,
                                       iterations=o.synflow_iterations, layers=layers, masks=start)

    def start(self, trainer: Trainer) -> None:
        masking = ensure_masking(trainer)
        if self.state.start_density is None:
            self.state.start_density = float(masking.overall_density())
        if not self.state.pruned:
            for name, m in zip(list(masking.masks), self.prune(trainer), strict=True):
                masking.set_mask(name, m)
            masking.apply_()
            self.state.pruned = True

    def train(self, trainer: Trainer) -> None:
        fit_schedule(trainer, self, f"pai {self.options.saliency}")

    def finish(self, trainer: Trainer) -> dict[str, Any]:
        masking = ensure_masking(trainer)
        names = list(masking.masks)
        masks = mask_list(masking)
        return {
            "saliency": self.options.saliency,
            "start_density": self.state.start_density,
            "final_density": float(masking.overall_density()),
            "layer_densities": {n: float(m.sum()) / m.numel() for n, m in zip(names, masks, strict=True)},
            "layer_order": names,
        }
