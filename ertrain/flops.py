"""FLOPs of masked training and inference, relative to the dense model.

Counting rule (that of Evci et al. 2020, "Rigging the Lottery", Appendix H). Only the masked
conv/linear layers are counted; biases, normalisation, activations and pooling are ignored (they
are the same for dense and sparse networks and small next to the weight products).

* ``macs_l``: multiply-accumulates of dense layer ``l`` for one example. A linear layer with
  weight ``(n_l, n_{l-1})`` applied at ``r`` positions costs ``n_l n_{l-1} r`` (``r = 1`` for a
  flat input); a conv layer with weight ``(c_l, c_{l-1}, k_h, k_w)`` and output ``H_l x W_l``
  costs ``c_l c_{l-1} k_h k_w H_l W_l``. They are measured with forward hooks on one example.
* Forward pass of a mask with layer densities ``p_l``: ``f_S = sum_l p_l macs_l``; the dense one is
  ``f_D = sum_l macs_l``. **Inference FLOPs ratio** = ``f_S / f_D``.
* One training step (per example) = forward + gradient w.r.t. activations + gradient w.r.t.
  weights, each about one forward pass: ``3 f_D`` dense, ``3 f_S`` for a fixed sparse mask, and
  ``2 f_S + f_D`` on steps that need the *dense* weight gradient (RiGL's growth step, edge-popup's
  score gradient). **Training FLOPs ratio** = ``sum_steps cost_t / (n_steps * 3 f_D)``, the cost of
  the whole run over that of training the dense model for the same number of steps.
* Work done outside training steps (e.g. saliency scoring) is one dense forward+backward pass
  (``3 f_D``) per occurrence, recorded in ``extra_dense_steps``.

The methods apply this per phase: IMP sums each cycle at its density; RiGL/SET count each step
at the densities in force and RiGL's update steps as ``2 f_S + f_D``; STR counts each epoch at the
density it ended with; edge-popup counts every step as ``2 f_S + f_D`` (the scores need the dense
weight gradient) at the level's density.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily (cheap CLI --help)
    from torch import Tensor, nn

    Layers = Sequence[tuple[str, nn.Module]]


def layer_macs(model: nn.Module, example: Tensor | tuple[Tensor, ...], *, layers: Layers | None = None) -> np.ndarray:
    """Dense multiply-accumulates per example of every masked layer (see the module docstring).

    ``example`` is a batch (or a tuple of forward arguments whose first element is the batch);
    the count is divided by its leading dimension.
    """
    import torch

    from ertrain.scores import weight_of

    if layers is None:
        from ertrain.models import maskable_layers

        layers = maskable_layers(model)
    layers = list(layers)
    if not layers:
        raise ValueError("the model has no masked layers")
    args = example if isinstance(example, tuple) else (example,)
    batch = int(args[0].shape[0])
    if batch < 1:
        raise ValueError(f"example must hold at least one row, got shape {tuple(args[0].shape)}")
    macs = np.zeros(len(layers), dtype=np.float64)

    modules = dict(model.named_modules())
    # the module that computes with each layer's weight: its own module, else its parent (nn.MultiheadAttention
    # uses out_proj.weight without calling out_proj); a MaskTarget's owner is named by its full name
    owners = [getattr(layer, "full_name", name + ".").rpartition(".")[0] for name, layer in layers]
    parents = [o.rpartition(".")[0] if "." in o else None for o in owners]
    watched = {p for pair in zip(owners, parents, strict=True) for p in pair if p is not None and p in modules}
    positions: dict[str, float] = {}

    def make_hook(path: str) -> Callable[[nn.Module, object, Tensor | tuple[Tensor, ...]], None]:
        def hook(module: nn.Module, _inputs: object, output: Tensor | tuple[Tensor, ...]) -> None:
            out = output[0] if isinstance(output, tuple) else output  # RNNs and attention return tuples
            if isinstance(module, torch.nn.Linear):
                units = int(module.weight.shape[0])
            elif isinstance(module, torch.nn.modules.conv._ConvNd):
                units = int(out.shape[1])  # channels first
            else:  # features last (attention, recurrent, GPT-2 Conv1D, a parent module)
                units = int(out.shape[-1])
            positions[path] = positions.get(path, 0.0) + out.numel() / (batch * units)

        return hook

    handles = [modules[p].register_forward_hook(make_hook(p)) for p in sorted(watched)]
    was_training = model.training
    try:
        model.eval()
        # with gradients on: in eval mode without them nn.TransformerEncoderLayer takes a fused path that
        # skips its submodules (and so their hooks)
        with torch.enable_grad():
            model(*args)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    for i, ((_, layer), owner, parent) in enumerate(zip(layers, owners, parents, strict=True)):
        called = positions.get(owner, positions.get(parent, 0.0) if parent is not None else 0.0)
        macs[i] = weight_of(layer).numel() * called
    if (macs == 0).any():
        missing = [name for (name, _), v in zip(layers, macs, strict=True) if v == 0]
        raise ValueError(f"layers {missing} were not called in the forward pass")
    return macs


def inference_flops_ratio(macs: Sequence[float] | np.ndarray, densities: Sequence[float] | np.ndarray) -> float:
    """``f_S / f_D = sum_l p_l macs_l / sum_l macs_l``."""
    macs_a = np.asarray(macs, dtype=np.float64)
    dens = np.asarray(densities, dtype=np.float64)
    if macs_a.shape != dens.shape:
        raise ValueError(f"densities has shape {dens.shape}, expected {macs_a.shape} (one per layer)")
    if ((dens < 0) | (dens > 1)).any():
        raise ValueError(f"densities must lie in [0, 1], got {dens.tolist()}")
    return float((macs_a * dens).sum() / macs_a.sum())


@dataclass
class FlopsMeter:
    """Accumulates training FLOPs in units of ``f_D`` (one dense forward pass of one example)."""

    macs: np.ndarray
    steps: int = 0
    cost: float = 0.0
    extra_dense_steps: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)

    def add_steps(self, n: int, densities: Sequence[float] | np.ndarray, *, dense_weight_grad: bool = False) -> None:
        """Record ``n`` training steps with layer densities ``densities``.

        Each costs ``3 f_S`` (or ``2 f_S + f_D`` with ``dense_weight_grad``), in units of ``f_D``.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        f_s = inference_flops_ratio(self.macs, densities)
        per_step = 2.0 * f_s + 1.0 if dense_weight_grad else 3.0 * f_s
        self.steps += n
        self.cost += n * per_step
        self.history.append((n, per_step))

    def add_extra_dense(self, n: int = 1) -> None:
        """Record ``n`` extra dense forward+backward passes (``3 f_D`` each) outside the steps."""
        self.extra_dense_steps += n
        self.cost += 3.0 * n

    @property
    def training_ratio(self) -> float:
        """Training FLOPs relative to ``steps`` dense training steps (``3 f_D`` each)."""
        if self.steps == 0:
            return 0.0
        return self.cost / (3.0 * self.steps)
