"""Training engines: how the masked layers are stored and computed (``--engine masked|sparse|auto``).

* ``masked`` (the default, and the only engine on a GPU): dense layers whose pruned weights
  :class:`~ertrain.masks.Masking` re-zeroes after every step.
* ``sparse``: every masked ``Linear`` / ``Conv2d`` becomes a layer of :mod:`ertrain.sparse_train`
  that stores, computes and updates its kept weights only (CPU).
* ``auto``: per layer, whichever of the two trains a step faster on this machine, measured on the
  layer's own input shape (forward + backward, interleaved repeats, median; cached per process).

An engine is an execution choice: it never enters the run hash, and the weights it trains equal the
``masked`` engine's to float tolerance (the same arithmetic per kept weight, another summation
order).  The sparse engine trains the ``static`` method only: the other methods read or rewrite
dense weights, gradients or masks during training (``auto`` keeps them ``masked``).

:func:`use_engine` swaps the layers at build time (the training loop is the same for all engines) and
returns an :class:`EngineMasking`: the masking the loop and the reports use, with the sparse layers'
masks held as their patterns (dense bool masks are formed only when asked for, e.g. for a checkpoint).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ertrain.config import ENGINES, SPARSE_ENGINE_METHODS
from ertrain.masks import Masking
from ertrain.sparse_train import SparseTrainLayer, sparse_layer_for, trainable_sparse

if TYPE_CHECKING:
    from ertrain.config import TrainConfig
    from ertrain.data import DataBundle


def _module_of(model: nn.Module, name: str) -> tuple[str, nn.Module]:
    """The layer a mask name refers to (a module name, or ``<module>.weight``)."""
    modules = dict(model.named_modules())
    if name in modules:
        return name, modules[name]
    base = name.removesuffix(".weight")
    if base in modules:
        return base, modules[base]
    raise ValueError(f"masked layer {name!r} is not a module of the model")


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


class EngineMasking(Masking):
    """A :class:`Masking` over a model some of whose masked layers are sparse training layers.

    ``dense`` (a plain ``Masking`` over the layers left dense, or None) does the re-zeroing; the sparse
    layers have no pruned weights to zero.  ``engine_layers`` maps every masked layer to ``"sparse"`` or
    ``"masked"``; ``timings`` holds ``auto``'s measurements (layer -> ``{"masked_s", "sparse_s"}``).
    """

    def __init__(self, source: Masking, model: nn.Module, sparse: Mapping[str, SparseTrainLayer],
                 dense: Masking | None, timings: Mapping[str, dict[str, float]] | None = None) -> None:
        # no Masking.__init__: the masks live in ``dense`` and in the sparse layers' patterns
        self.model = model
        self.names = list(source.masks)
        self.sparse = dict(sparse)
        self.dense = dense
        self.engine_layers = {n: "sparse" if n in self.sparse else "masked" for n in self.names}
        self.timings = dict(timings or {})
        for attr in ("requested_densities", "requested_density", "planned_density", "edges_added"):
            setattr(self, attr, getattr(source, attr, None))

    @property
    def layers(self) -> dict[str, nn.Module]:  # type: ignore[override]
        dense = self.dense.layers if self.dense is not None else {}
        return {n: self.sparse[n] if n in self.sparse else dense[n] for n in self.names}

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        dense = self.dense.masks if self.dense is not None else {}
        return {n: self.sparse[n].mask() if n in self.sparse else dense[n] for n in self.names}

    def apply_(self) -> None:
        if self.dense is not None:
            self.dense.apply_()

    def mask_grads_(self) -> None:
        if self.dense is not None:
            self.dense.mask_grads_()

    def mask_optimizer_state_(self, optimizer: torch.optim.Optimizer) -> None:
        if self.dense is not None:
            self.dense.mask_optimizer_state_(optimizer)

    def set_mask(self, name: str, mask: torch.Tensor) -> None:
        if name in self.sparse:
            self.sparse[name].set_mask(mask.detach().cpu().bool())
        elif self.dense is not None and name in self.dense.layers:
            self.dense.set_mask(name, mask)
        else:
            raise ValueError(f"unknown masked layer {name!r}; valid names: {', '.join(self.names)}")

    def _counts(self) -> dict[str, tuple[int, int]]:
        dense = self.dense.masks if self.dense is not None else {}
        return {n: (self.sparse[n].nnz(), torch.Size(self.sparse[n].weight_shape).numel()) if n in self.sparse
                else (int(dense[n].count_nonzero()), dense[n].numel()) for n in self.names}

    def nnz(self) -> int:
        return sum(k for k, _ in self._counts().values())

    def numel(self) -> int:
        return sum(m for _, m in self._counts().values())

    def densities(self) -> dict[str, float]:
        return {n: k / m for n, (k, m) in self._counts().items()}

    def overall_density(self) -> float:
        return self.nnz() / self.numel()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: m.detach().to("cpu", copy=True) for n, m in self.masks.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        missing = [n for n in self.names if n not in state]
        extra = [n for n in state if n not in self.names]
        if missing or extra:
            raise ValueError(f"mask state does not match the masked layers: missing {missing}, unexpected {extra}")
        for name, mask in state.items():
            self.set_mask(name, mask)

    def __repr__(self) -> str:
        picked = sum(v == "sparse" for v in self.engine_layers.values())
        return f"EngineMasking({len(self.names)} layers, {picked} sparse, density={self.overall_density():.6f})"


# ------------------------------------------------------------------------------------------------
# auto: the measured crossover

_TIMINGS: dict[tuple[Any, ...], dict[str, float]] = {}


def _step_seconds(layer: nn.Module, x: torch.Tensor) -> float:
    xx = x.detach().requires_grad_()
    t0 = time.perf_counter()
    out = layer(xx)
    out.backward(torch.ones_like(out))
    return time.perf_counter() - t0


def measure_step(module: nn.Module, mask: torch.Tensor, input_shape: tuple[int, ...], repeats: int = 5
                 ) -> dict[str, float]:
    """Median seconds of one forward + backward of ``module`` masked (dense) and sparse, interleaved repeats.

    Cached per process by layer type, weight shape, kept weights, input shape and thread count.
    """
    key = (type(module).__name__, tuple(mask.shape), int(mask.count_nonzero()), tuple(input_shape),
           torch.get_num_threads(), repr(module))
    if key not in _TIMINGS:
        sparse = sparse_layer_for(module, mask)
        x = torch.randn(input_shape, generator=torch.Generator().manual_seed(0))
        masked_s, sparse_s = [], []
        for i in range(repeats + 1):  # the first round warms up (numba compiles, caches fill)
            a, b = _step_seconds(module, x), _step_seconds(sparse, x)
            if i:
                masked_s.append(a)
                sparse_s.append(b)
        module.zero_grad(set_to_none=True)
        _TIMINGS[key] = {"masked_s": statistics.median(masked_s), "sparse_s": statistics.median(sparse_s)}
    return dict(_TIMINGS[key])


def _input_shapes(model: nn.Module, names: list[str], config: TrainConfig, data: DataBundle | None
                  ) -> dict[str, tuple[int, ...]]:
    """Each named layer's input shape at the training batch size (one no-grad forward of a batch)."""
    modules = dict(model.named_modules())
    if data is None or data.adj is not None:
        return {n: (int(config.batch_size), int(modules[n].in_features)) for n in names
                if isinstance(modules[n], nn.Linear)}
    from ertrain.sparse import _input_shapes as shapes_in_forward

    return shapes_in_forward(model, names, data.x_train[: int(config.batch_size)])


# ------------------------------------------------------------------------------------------------
# the swap


def _choose(config: TrainConfig, model: nn.Module, candidates: dict[str, tuple[str, nn.Module, torch.Tensor]],
            data: DataBundle | None) -> tuple[list[str], dict[str, dict[str, float]]]:
    """The masked layers to train sparse, and ``auto``'s timings."""
    if config.engine == "sparse":
        return list(candidates), {}
    shapes = _input_shapes(model, [path for path, _, _ in candidates.values()], config, data)
    timings = {name: measure_step(module, mask, shapes[path])
               for name, (path, module, mask) in candidates.items() if path in shapes}
    return [n for n, t in timings.items() if t["sparse_s"] < t["masked_s"]], timings


def use_engine(config: TrainConfig, model: nn.Module, masking: Masking | None, device: torch.device,
               data: DataBundle | None = None) -> tuple[nn.Module, Masking | None]:
    """``model`` with the masked layers ``config.engine`` trains sparse swapped in place, and the masking to use.

    ``masked`` (or no masking) returns both unchanged; ``auto`` on a GPU, or for a method the sparse
    engine does not train, keeps every layer masked.  ``sparse`` raises ``ValueError`` for a GPU, a
    method other than the static one, or a masked layer it has no sparse layer for.
    """
    if config.engine not in ENGINES:
        raise ValueError(f"unknown engine {config.engine!r}; valid: {', '.join(ENGINES)}")
    if config.engine == "masked" or masking is None:
        return model, masking
    if config.engine == "sparse" and device.type != "cpu":
        raise ValueError(f"engine 'sparse' runs on the CPU, got device {device}; use --engine masked")
    candidates: dict[str, tuple[str, nn.Module, torch.Tensor]] = {}
    if device.type == "cpu" and config.method in SPARSE_ENGINE_METHODS:
        for name, mask in masking.masks.items():
            path, module = _module_of(model, name)
            if trainable_sparse(module):
                candidates[name] = (path, module, mask)
            elif config.engine == "sparse":
                raise ValueError(f"engine 'sparse' has no sparse layer for {name!r} ({type(module).__name__}); "
                                 f"use --engine masked or auto")
    chosen, timings = _choose(config, model, candidates, data)
    sparse: dict[str, SparseTrainLayer] = {}
    for name in chosen:
        path, module, mask = candidates[name]
        sparse[name] = sparse_layer_for(module, mask)
        sparse[name].train(module.training)
    rest = {n: m for n, m in masking.masks.items() if n not in sparse}
    dense_layers = [_module_of(model, n) for n in rest]
    for name, layer in sparse.items():
        _set_submodule(model, candidates[name][0], layer)
    dense = Masking(model, list(rest.values()), dense_layers) if rest else None
    out = EngineMasking(masking, model, sparse, dense, timings)
    print(f"engine {config.engine}: {describe(out.engine_layers)}", file=sys.stderr)
    return model, out


def describe(engine_layers: Mapping[str, str]) -> str:
    """One line naming the layers of each engine, e.g. ``sparse: fc1, fc2; masked: fc3``."""
    groups: dict[str, list[str]] = {}
    for name, choice in engine_layers.items():
        groups.setdefault(choice, []).append(name)
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(groups.items(), reverse=True)) or "no masked layers"


def engine_layers(masking: Masking | None) -> dict[str, str]:
    """Masked layer -> engine that trains it (``{}`` without masking; every layer ``masked`` for a plain one)."""
    if masking is None:
        return {}
    if isinstance(masking, EngineMasking):
        return dict(masking.engine_layers)
    return {n: "masked" for n in masking.masks}


__all__ = ["ENGINES", "EngineMasking", "describe", "engine_layers", "measure_step", "use_engine"]
