"""Real sparse inference: masked layers stored as torch sparse matrices, and compact sparse files.

A masked network trained with :class:`ertrain.masks.Masking` is still a dense network full of
zeros.  :func:`to_sparse` replaces its masked ``nn.Linear`` layers (and ``nn.Conv2d`` layers,
see ``convs``) by :class:`SparseLinear` / :class:`SparseConv2d`, which keep only the kept
weights, in torch's CSR layout (``crow_indices``, ``col_indices``, ``values``; int32 indices by
default) or COO, and compute with ``torch.addmm`` on the sparse matrix.  :func:`to_dense`
converts back.  Both directions are exact: ``to_dense(to_sparse(model))`` has bitwise the same
weights as ``model`` (with the masks folded in: the pruned entries are exactly zero), and the
sparse layers' outputs equal the dense ones up to float summation order.

A layer is converted only where it pays.  By default that is measured: :func:`conversion_plan` times
each eligible layer's dense and sparse forward on its own input shape (from an example input, or the
batch size for linear layers) with the current torch thread count, and :func:`to_sparse` converts
exactly the layers whose sparse forward is faster (timings are cached per layer shape, number of kept
weights, input shape, threads, dtype and device, so a model is measured once per process).  The
crossover depends on all of these: on CPU a 784-2048 layer at density 0.1 wins with CSR at batch 256
and loses at batch 1.  ``max_density=`` keeps the older fixed rule (convert when the density is at
most that).  Convolutions are eligible when ``convs`` allows it (``"1x1"``: only 1x1 convolutions,
which are matrix products over the pixels; ``"all"``: any kernel through ``unfold``; ``"none"``).

The layout of a converted layer's matrix is ``(out_features, in_features)`` for a linear layer
and ``(out_channels, in_channels * kh * kw)`` for a convolution; the activations are multiplied
from the right (``W @ x^T``), which is the fast direction of torch's CPU sparse kernels (MKL).

Files.  :func:`pack_state_dict` encodes each mostly-zero tensor of a state dict compactly, as
the smaller of a bitmask (one bit per entry, ``numpy.packbits`` order) plus the kept values, or
CSR with the narrowest integer indices; :func:`unpack_state_dict` decodes it exactly.
:func:`save_packed` / :func:`load_packed` store the encoding as a safetensors file.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ertheory.fileio import named_os_error

#: A fixed density threshold for ``to_sparse(max_density=...)`` (a rough CPU crossover of CSR vs dense matmul
#: at batch 256; the default rule measures each layer instead, see :func:`conversion_plan`).
DEFAULT_MAX_DENSITY = 0.1

#: Sparse storages of :func:`to_sparse`.
LAYOUTS = ("csr", "coo")

#: Which convolutions :func:`to_sparse` may convert.
CONV_MODES = ("none", "1x1", "all")

#: Buffer name under which :class:`ertrain.masks.Masking` registers a layer's mask.
MASK_BUFFER = "weight_mask"


def _check_choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


def _sparse_matrix(
    weight2d: torch.Tensor, pattern: torch.Tensor, layout: str, index_dtype: torch.dtype
) -> torch.Tensor:
    """``weight2d`` restricted to ``pattern`` (bool, same shape) as a sparse matrix.

    Every entry of ``pattern`` is stored, also where the weight happens to be 0 (a kept weight
    that trained to zero), so the pattern survives a round trip.
    """
    pattern = pattern.to(device=weight2d.device, dtype=torch.bool)
    values = weight2d[pattern].detach().clone()  # row-major order, the order of pattern.nonzero()
    rows_cols = pattern.nonzero()
    if layout == "coo":
        return torch.sparse_coo_tensor(
            rows_cols.t(), values, tuple(weight2d.shape), is_coalesced=True, device=weight2d.device,
            check_invariants=True,
        )
    counts = pattern.sum(dim=1)
    crow = torch.zeros(weight2d.shape[0] + 1, dtype=torch.int64, device=weight2d.device)
    crow[1:] = torch.cumsum(counts, 0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            crow.to(index_dtype), rows_cols[:, 1].to(index_dtype), values, tuple(weight2d.shape),
            device=weight2d.device, check_invariants=True,
        )


def _sparse_matmul(weight: torch.Tensor, bias: torch.Tensor | None, cols: torch.Tensor) -> torch.Tensor:
    """``weight @ cols (+ bias[:, None])`` for a sparse ``weight`` (CSR or COO) and dense ``cols``."""
    if cols.dtype != weight.dtype:
        cols = cols.to(weight.dtype)
    if bias is None:
        return weight @ cols
    return torch.addmm(bias.unsqueeze(1), weight, cols)


def _storage_nbytes(t: torch.Tensor) -> int:
    if t.layout == torch.sparse_csr:
        parts = [t.crow_indices(), t.col_indices(), t.values()]
    elif t.layout == torch.sparse_coo:
        parts = [t._indices(), t._values()]
    else:
        parts = [t]
    return int(sum(p.numel() * p.element_size() for p in parts))


_Layer = TypeVar("_Layer", bound="_SparseLayer")


class _SparseLayer(nn.Module):
    """What the sparse layers share: the 2-d sparse CSR/COO ``weight`` matrix and the dense ``bias`` (or
    ``None``), both buffers, and the copy of them back into an equivalent dense layer."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        if weight.layout not in (torch.sparse_csr, torch.sparse_coo) or weight.dim() != 2:
            raise ValueError(f"weight must be a 2-d sparse CSR or COO tensor, got layout {weight.layout}")
        self.register_buffer("weight", weight)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def _fill_dense(self, dense: nn.Linear | nn.Conv2d) -> None:
        """Copy the weight (pruned entries exactly 0) and the bias into the freshly built ``dense`` layer."""
        with torch.no_grad():
            dense.weight.copy_(self.weight.to_dense().reshape(dense.weight.shape))
            if self.bias is not None:
                assert dense.bias is not None
                dense.bias.copy_(self.bias)

    def nnz(self) -> int:
        return int(self.weight._nnz())

    @classmethod
    def from_dense(
        cls: type[_Layer],
        layer: nn.Module,
        mask: torch.Tensor | None = None,
        *,
        layout: str = "csr",
        index_dtype: torch.dtype = torch.int32,
    ) -> _Layer:
        """Sparse copy of the dense ``layer``; ``mask`` (default: the layer's ``weight_mask`` buffer, else its
        non-zeros)."""
        _check_choice("layout", layout, LAYOUTS)
        cls._check_convertible(layer)
        return cls._from_pattern(layer, _pattern(layer, mask), layout, index_dtype)

    @classmethod
    def _check_convertible(cls, layer: nn.Module) -> None:
        """Raise ``ValueError`` when this class cannot represent ``layer`` (every layer is accepted here)."""

    @classmethod
    def _from_pattern(
        cls: type[_Layer], layer: Any, pattern: torch.Tensor, layout: str, index_dtype: torch.dtype
    ) -> _Layer:
        """The sparse layer of ``layer``'s weights restricted to the boolean ``pattern`` (its shape)."""
        raise NotImplementedError

    def __deepcopy__(self, memo: dict[int, Any]) -> nn.Module:
        """``copy.deepcopy`` for modules holding sparse CSR tensors (whose storage ``deepcopy`` cannot reach)."""
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        state = {k: v for k, v in self.__dict__.items() if k != "_buffers"}
        new.__dict__.update(copy.deepcopy(state, memo))
        new.__dict__["_buffers"] = {k: None if v is None else v.clone() for k, v in self._buffers.items()}
        return new


class SparseLinear(_SparseLayer):
    """``y = x W^T + b`` with ``W`` (``out_features x in_features``) stored as a sparse matrix."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__(weight, bias)
        self.out_features, self.in_features = (int(s) for s in weight.shape)

    @classmethod
    def _from_pattern(
        cls, layer: nn.Linear, pattern: torch.Tensor, layout: str, index_dtype: torch.dtype
    ) -> SparseLinear:
        return cls(_sparse_matrix(layer.weight.detach(), pattern, layout, index_dtype), layer.bias)

    def to_dense(self) -> nn.Linear:
        """The equivalent ``nn.Linear`` (pruned weights exactly 0)."""
        w = self.weight
        dense = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device=w.device,
                          dtype=w.dtype)
        self._fill_dense(dense)
        return dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        cols = x.reshape(-1, self.in_features).t()
        y = _sparse_matmul(self.weight, self.bias, cols)  # (out, batch): its transpose is a free view
        return y.t().reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        density = self.nnz() / (self.in_features * self.out_features)
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"layout={str(self.weight.layout).removeprefix('torch.sparse_')}, density={density:.4g}")


class SparseConv2d(_SparseLayer):
    """A ``groups=1``, zero-padded 2-d convolution whose weight is stored as a sparse matrix.

    The weight is the ``(out_channels, in_channels * kh * kw)`` matrix of the kernel; the input
    is unfolded into columns (for a 1x1 kernel the pixels themselves, subsampled by the stride)
    and multiplied from the left by the sparse matrix.
    """

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        *,
        in_channels: int,
        kernel_size: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
    ) -> None:
        super().__init__(weight, bias)
        self.out_channels = int(weight.shape[0])
        self.in_channels = int(in_channels)
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        if int(weight.shape[1]) != self.in_channels * kernel_size[0] * kernel_size[1]:
            raise ValueError(f"weight has {weight.shape[1]} columns, expected in_channels*kh*kw = "
                             f"{self.in_channels * kernel_size[0] * kernel_size[1]}")

    @staticmethod
    def supports(conv: nn.Module) -> bool:
        """Whether ``conv`` is a 2-d convolution this class can represent (groups 1, zero padding given as ints)."""
        return (isinstance(conv, nn.Conv2d) and conv.groups == 1 and conv.padding_mode == "zeros"
                and not isinstance(conv.padding, str))

    @classmethod
    def _check_convertible(cls, layer: nn.Module) -> None:
        if not cls.supports(layer):
            raise ValueError(f"cannot convert {layer!r}: only groups=1 convolutions with integer zero padding")

    @classmethod
    def _from_pattern(
        cls, conv: nn.Conv2d, pattern: torch.Tensor, layout: str, index_dtype: torch.dtype
    ) -> SparseConv2d:
        w = conv.weight.detach()
        matrix = _sparse_matrix(w.reshape(w.shape[0], -1), pattern.reshape(w.shape[0], -1), layout, index_dtype)
        return cls(
            matrix, conv.bias, in_channels=conv.in_channels, kernel_size=_pair(conv.kernel_size),
            stride=_pair(conv.stride), padding=_pair(conv.padding), dilation=_pair(conv.dilation),
        )

    def to_dense(self) -> nn.Conv2d:
        """The equivalent ``nn.Conv2d`` (pruned weights exactly 0)."""
        w = self.weight
        dense = nn.Conv2d(
            self.in_channels, self.out_channels, self.kernel_size, stride=self.stride, padding=self.padding,
            dilation=self.dilation, bias=self.bias is not None, device=w.device, dtype=w.dtype,
        )
        self._fill_dense(dense)
        return dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if self.kernel_size == (1, 1) and self.padding == (0, 0):
            if self.stride != (1, 1):
                x = x[:, :, :: self.stride[0], :: self.stride[1]]
            h, w = x.shape[-2:]
            cols = x.transpose(0, 1).reshape(self.in_channels, -1)  # (C, N*H*W)
        else:
            h = (x.shape[-2] + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1) \
                // self.stride[0] + 1
            w = (x.shape[-1] + 2 * self.padding[1] - self.dilation[1] * (self.kernel_size[1] - 1) - 1) \
                // self.stride[1] + 1
            unfolded = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=self.padding,
                                stride=self.stride)  # (N, C*kh*kw, L)
            cols = unfolded.transpose(0, 1).reshape(unfolded.shape[1], -1)  # (C*kh*kw, N*L)
        y = _sparse_matmul(self.weight, self.bias, cols)  # (O, N*H*W)
        return y.reshape(self.out_channels, n, h, w).transpose(0, 1)

    def extra_repr(self) -> str:
        density = self.nnz() / (self.weight.shape[0] * self.weight.shape[1])
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, layout={str(self.weight.layout).removeprefix('torch.sparse_')}, "
                f"density={density:.4g}")


def _pair(v: Any) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


def _pattern(module: nn.Module, mask: torch.Tensor | None) -> torch.Tensor:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    if mask is None:
        buf = getattr(module, MASK_BUFFER, None)
        mask = buf if isinstance(buf, torch.Tensor) else weight.detach() != 0
    if tuple(mask.shape) != tuple(weight.shape):
        raise ValueError(f"mask has shape {tuple(mask.shape)}, weight has {tuple(weight.shape)}")
    return mask.to(torch.bool)


def _layer_density(module: nn.Module, mask: torch.Tensor | None) -> float:
    pattern = _pattern(module, mask)
    return int(pattern.count_nonzero()) / pattern.numel()


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _convertible(module: nn.Module, convs: str) -> bool:
    if type(module) is nn.Linear:
        return True
    if type(module) is nn.Conv2d and SparseConv2d.supports(module) and convs != "none":
        return convs == "all" or _pair(module.kernel_size) == (1, 1)
    return False


@dataclass(frozen=True)
class LayerTiming:
    """Median forward times of one layer, dense and sparse, on its input shape (seconds per call)."""

    dense_s: float
    sparse_s: float
    input_shape: tuple[int, ...]
    threads: int

    @property
    def speedup(self) -> float:
        """``dense_s / sparse_s``: above 1 the sparse layer is faster."""
        return self.dense_s / self.sparse_s if self.sparse_s > 0 else float("inf")

    @property
    def converts(self) -> bool:
        """Whether :func:`to_sparse` converts the layer: its sparse forward is faster."""
        return self.sparse_s < self.dense_s


#: Measured layer timings of this process (see :func:`conversion_plan`), by layer and setting.
_TIMINGS: dict[tuple[Any, ...], LayerTiming] = {}

#: A measurement runs each forward about this long (seconds) per round, repeating it as often as needed.
_ROUND_SECONDS = 2e-3

Measure = Callable[[nn.Module, torch.Tensor, tuple[int, ...], str, torch.dtype, int], LayerTiming]


def clear_timing_cache() -> None:
    """Forget the layer timings measured so far (e.g. after changing the thread count)."""
    _TIMINGS.clear()


def measure_layer(
    module: nn.Module,
    mask: torch.Tensor,
    input_shape: tuple[int, ...],
    layout: str = "csr",
    index_dtype: torch.dtype = torch.int32,
    repeats: int = 5,
    *,
    timer: Callable[[], float] = time.perf_counter,
) -> LayerTiming:
    """Time ``module`` (dense) against its sparse conversion on a random input of ``input_shape``.

    After a warm-up call of each, ``repeats`` rounds alternate the two; a round repeats a forward until
    about 2 ms have passed and records the mean time per call.  The medians over rounds are returned.
    """
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    sparse: nn.Module = (
        SparseLinear.from_dense(module, mask, layout=layout, index_dtype=index_dtype)
        if isinstance(module, nn.Linear)
        else SparseConv2d.from_dense(module, mask, layout=layout, index_dtype=index_dtype)
    )
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(input_shape, generator=gen, dtype=weight.dtype).to(weight.device)
    with torch.no_grad():
        for layer in (module, sparse):  # warm-up, and the number of calls per round
            layer(x)
        calls = []
        for layer in (module, sparse):
            t0 = timer()
            layer(x)
            calls.append(max(1, int(_ROUND_SECONDS / max(timer() - t0, 1e-7))))
        dense_t: list[float] = []
        sparse_t: list[float] = []
        for _ in range(int(repeats)):
            for layer, n_calls, out in ((module, calls[0], dense_t), (sparse, calls[1], sparse_t)):
                _sync(weight.device)
                t0 = timer()
                for _ in range(n_calls):
                    layer(x)
                _sync(weight.device)
                out.append((timer() - t0) / n_calls)
    return LayerTiming(statistics.median(dense_t), statistics.median(sparse_t), tuple(input_shape),
                       torch.get_num_threads())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _input_shapes(model: nn.Module, names: list[str], example_input: Any) -> dict[str, tuple[int, ...]]:
    """The input shape of each named layer in one forward pass of ``example_input`` (a tensor or a tuple)."""
    shapes: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_modules())
    handles = []
    for name in names:
        def hook(_m: nn.Module, args: tuple[Any, ...], name: str = name) -> None:
            if name not in shapes and args and isinstance(args[0], torch.Tensor):
                shapes[name] = tuple(int(s) for s in args[0].shape)
        handles.append(modules[name].register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(*example_input) if isinstance(example_input, tuple) else model(example_input)
    finally:
        for h in handles:
            h.remove()
    return shapes


@torch.no_grad()
def conversion_plan(
    model: nn.Module,
    *,
    masks: Mapping[str, torch.Tensor] | None = None,
    example_input: Any = None,
    batch_size: int | None = None,
    convs: str = "1x1",
    layout: str = "csr",
    index_dtype: torch.dtype = torch.int32,
    repeats: int = 5,
    measure: Measure | None = None,
) -> dict[str, LayerTiming]:
    """Layer name -> :class:`LayerTiming` of every layer :func:`to_sparse` may convert.

    Each layer is timed on its own input shape: from one forward pass of ``example_input`` (a tensor, or a
    tuple of arguments), or, for linear layers, ``(batch_size, in_features)``; convolutions need
    ``example_input`` (their cost depends on the image size).  Timings are cached for the process by layer
    type and geometry, number of kept weights, input shape, layout, index type, dtype, device and
    ``torch.get_num_threads()``; ``measure`` replaces :func:`measure_layer` (its results are not cached).
    """
    _check_choice("layout", layout, LAYOUTS)
    _check_choice("convs", convs, CONV_MODES)
    masks = dict(masks or {})
    modules = dict(model.named_modules())
    unknown = [n for n in masks if n not in modules]
    if unknown:
        raise ValueError(f"masks name layers the model does not have: {unknown}")
    names = [n for n, m in modules.items() if n and _convertible(m, convs)]
    if example_input is not None:
        shapes = _input_shapes(model, names, example_input)
    else:
        if batch_size is None or int(batch_size) < 1:
            raise ValueError(
                f"give example_input or a positive batch_size to measure the layers (or max_density for the fixed "
                f"rule), got batch_size={batch_size!r}"
            )
        convs_found = [n for n in names if isinstance(modules[n], nn.Conv2d)]
        if convs_found:
            raise ValueError(
                f"convolutions {convs_found[:3]}{'...' if len(convs_found) > 3 else ''} need example_input (their "
                f"cost depends on the image size), or use convs='none' or max_density"
            )
        shapes = {n: (int(batch_size), int(modules[n].in_features)) for n in names}
    plan: dict[str, LayerTiming] = {}
    for name in names:
        if name not in shapes:  # not reached by the forward pass: nothing to gain
            continue
        module = modules[name]
        mask = _pattern(module, masks.get(name))
        weight = module.weight
        assert isinstance(weight, torch.Tensor)
        if measure is not None:
            plan[name] = measure(module, mask, shapes[name], layout, index_dtype, repeats)
            continue
        key = (type(module).__name__, tuple(weight.shape), _geometry(module), int(mask.count_nonzero()),
               shapes[name], layout, index_dtype, weight.dtype, str(weight.device), torch.get_num_threads())
        if key not in _TIMINGS:
            _TIMINGS[key] = measure_layer(module, mask, shapes[name], layout, index_dtype, repeats)
        plan[name] = _TIMINGS[key]
    return plan


def _geometry(module: nn.Module) -> tuple[Any, ...]:
    if isinstance(module, nn.Conv2d):
        return (module.kernel_size, module.stride, module.padding, module.dilation)
    return ()


@torch.no_grad()
def to_sparse(
    model: nn.Module,
    *,
    masks: Mapping[str, torch.Tensor] | None = None,
    example_input: Any = None,
    batch_size: int | None = None,
    max_density: float | None = None,
    convs: str = "1x1",
    layout: str = "csr",
    index_dtype: torch.dtype = torch.int32,
    inplace: bool = False,
    repeats: int = 5,
) -> nn.Module:
    """A copy of ``model`` whose linear (and conv, see ``convs``) layers that run faster sparse are stored sparse.

    ``masks`` (layer name -> bool mask, e.g. ``Masking.masks``) gives each layer's pattern; without
    it a layer's ``weight_mask`` buffer is used, else its non-zero weights.  Which layers convert:

    * by default, exactly those whose sparse forward is faster on their input shape, measured by
      :func:`conversion_plan` from ``example_input`` or ``batch_size`` (at the current thread count);
    * with ``max_density``, those whose density is ``<= max_density`` (``max_density=1`` converts every
      eligible layer), without measuring.

    Only exact ``nn.Linear`` / ``nn.Conv2d`` modules are converted (subclasses may change the
    forward).  ``inplace=True`` converts ``model`` itself instead of a deep copy.
    """
    _check_choice("layout", layout, LAYOUTS)
    _check_choice("convs", convs, CONV_MODES)
    if max_density is not None and not 0.0 <= max_density <= 1.0:
        raise ValueError(f"max_density must be in [0, 1], got {max_density!r}")
    if index_dtype not in (torch.int32, torch.int64):
        raise ValueError(f"index_dtype must be torch.int32 or torch.int64, got {index_dtype!r}")
    masks = dict(masks or {})
    modules = dict(model.named_modules())
    unknown = [n for n in masks if n not in modules]
    if unknown:
        raise ValueError(f"masks name layers the model does not have: {unknown}")
    if max_density is None:
        plan = conversion_plan(model, masks=masks, example_input=example_input, batch_size=batch_size, convs=convs,
                               layout=layout, index_dtype=index_dtype, repeats=repeats)
        chosen = {name for name, timing in plan.items() if timing.converts}
    else:
        chosen = {name for name, m in modules.items()
                  if name and _convertible(m, convs) and _layer_density(m, masks.get(name)) <= max_density}
    out = model if inplace else copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if name not in chosen:
            continue
        mask = masks.get(name)
        new: nn.Module
        if isinstance(module, nn.Linear):
            new = SparseLinear.from_dense(module, mask, layout=layout, index_dtype=index_dtype)
        else:
            assert isinstance(module, nn.Conv2d)
            new = SparseConv2d.from_dense(module, mask, layout=layout, index_dtype=index_dtype)
        new.train(module.training)
        _set_submodule(out, name, new)
    return out


@torch.no_grad()
def to_dense(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` whose :class:`SparseLinear` / :class:`SparseConv2d` layers are dense torch layers again."""
    out = model if inplace else copy.deepcopy(model)
    for name, module in list(out.named_modules()):
        if isinstance(module, (SparseLinear, SparseConv2d)):
            new = module.to_dense()
            new.train(module.training)
            _set_submodule(out, name, new)
    return out


@torch.no_grad()
def fold_masks(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None, *, inplace: bool = False
               ) -> nn.Module:
    """A copy of ``model`` whose masked weights are multiplied by their masks and whose mask buffers are gone.

    Masks come from ``masks`` (layer name -> mask) or else from the layers' ``weight_mask`` buffers.
    The result is a plain torch model: the pruned weights are exactly zero.
    """
    out = model if inplace else copy.deepcopy(model)
    modules = dict(out.named_modules())
    given = dict(masks or {})
    params = dict(out.named_parameters())
    unknown = [n for n in given if n not in modules and n not in params]
    if unknown:
        raise ValueError(f"masks name layers the model does not have: {unknown}")
    _fold_parameter_masks(out, {n: m for n, m in given.items() if n not in modules})
    for name, module in modules.items():
        buf = module._buffers.get(MASK_BUFFER)
        mask = given.get(name, buf)
        if mask is None:
            continue
        weight = module.weight
        assert isinstance(weight, torch.Tensor)
        weight.masked_fill_(~_pattern(module, mask).to(weight.device), 0.0)  # +0.0, never -0.0
        if buf is not None:
            del module._buffers[MASK_BUFFER]
    return out


def _fold_parameter_masks(model: nn.Module, given: Mapping[str, torch.Tensor]) -> None:
    """Fold the masks of parameters other than a layer's ``weight`` (``<param>_mask`` buffers, e.g.
    ``in_proj_weight_mask``, or ``given`` by full parameter name) into them, dropping the buffers."""
    for mod_name, module in model.named_modules():
        for bname in [b for b in module._buffers if b.endswith("_mask") and b != MASK_BUFFER]:
            param = module._parameters.get(bname[: -len("_mask")])
            if param is None:
                continue
            full = f"{mod_name}.{bname[: -len('_mask')]}" if mod_name else bname[: -len("_mask")]
            mask = given.get(full, module._buffers[bname])
            assert mask is not None
            with torch.no_grad():
                param.masked_fill_(~mask.to(device=param.device, dtype=torch.bool), 0.0)
            del module._buffers[bname]
    params = dict(model.named_parameters())
    for full, mask in given.items():
        with torch.no_grad():
            params[full].masked_fill_(~mask.to(device=params[full].device, dtype=torch.bool), 0.0)


def storage_nbytes(model: nn.Module) -> int:
    """Bytes held by ``model``'s parameters and buffers, sparse tensors counted by their indices and values."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(_storage_nbytes(t) for t in tensors.values())


def sparse_layers(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Name -> ``{"kind", "shape", "nnz", "density", "layout"}`` of every sparse layer of ``model``."""
    out: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        if isinstance(module, (SparseLinear, SparseConv2d)):
            rows, cols = (int(s) for s in module.weight.shape)
            out[name] = {
                "kind": type(module).__name__, "shape": [rows, cols], "nnz": module.nnz(),
                "density": module.nnz() / (rows * cols), "layout": str(module.weight.layout).removeprefix("torch."),
            }
    return out


# ------------------------------------------------------------------------------------------------
# compact files


#: Encodings of :func:`pack_state_dict`.
ENCODINGS = ("auto", "bitmask", "csr")

_SEP = "::"


def _narrowest_uint(max_value: int) -> np.dtype[Any]:
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.int64)


def _encode(arr: np.ndarray[Any, Any], encoding: str) -> dict[str, np.ndarray[Any, Any]]:
    """One tensor as its compact parts (see :func:`pack_state_dict`)."""
    flat = arr.reshape(-1)
    kept = flat != 0
    values = flat[kept]
    shape = np.asarray(arr.shape, dtype=np.int64)
    bitmask = {"shape": shape, "bitmask": np.packbits(kept), "values": values}
    if arr.ndim == 0:
        return bitmask
    rows = arr.shape[0]
    matrix_kept = kept.reshape(rows, -1)
    crow = np.concatenate([[0], np.cumsum(matrix_kept.sum(axis=1))])
    cols = np.nonzero(matrix_kept)[1]
    csr = {
        "shape": shape,
        "crow": crow.astype(_narrowest_uint(int(crow[-1]))),
        "col": cols.astype(_narrowest_uint(max(matrix_kept.shape[1] - 1, 0))),
        "values": values,
    }
    if encoding == "auto":
        size = {k: sum(p.nbytes for p in v.values()) for k, v in (("bitmask", bitmask), ("csr", csr))}
        encoding = min(size, key=lambda k: size[k])
    return bitmask if encoding == "bitmask" else csr


def pack_state_dict(
    state_dict: Mapping[str, torch.Tensor], *, encoding: str = "auto", max_density: float = 0.75
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Compact encoding of the mostly-zero floating tensors of ``state_dict``; exact (see :func:`unpack_state_dict`).

    A floating tensor with at most ``max_density`` non-zeros is stored as ``name::shape`` (int64)
    plus either ``name::bitmask`` (``numpy.packbits`` of ``flatten() != 0``) and ``name::values``
    (the non-zeros in row-major order), or CSR over ``(shape[0], rest)``: ``name::crow``,
    ``name::col`` (the narrowest unsigned integers that hold them) and ``name::values``.
    ``encoding="auto"`` picks the smaller of the two per tensor.  Other tensors are kept under
    their own name.  Returns the tensors and ``{name: encoding}`` of the encoded ones.
    """
    _check_choice("encoding", encoding, ENCODINGS)
    tensors: dict[str, torch.Tensor] = {}
    kinds: dict[str, str] = {}
    for name, t in state_dict.items():
        if _SEP in name:
            raise ValueError(f"state dict key {name!r} contains the separator {_SEP!r}")
        t = t.detach().cpu()
        if t.layout != torch.strided:
            t = t.to_dense()
        if not t.is_floating_point() or t.numel() == 0 or t.dtype == torch.bfloat16 \
                or int(t.count_nonzero()) > max_density * t.numel():
            tensors[name] = t.contiguous()
            continue
        parts = _encode(t.numpy(), encoding)
        kinds[name] = "bitmask" if "bitmask" in parts else "csr"
        for key, value in parts.items():
            tensors[f"{name}{_SEP}{key}"] = torch.from_numpy(np.ascontiguousarray(value))
    return tensors, kinds


def unpack_state_dict(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`pack_state_dict`: the dense tensors, bitwise equal to the packed ones."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    out: dict[str, torch.Tensor] = {}
    for key, t in tensors.items():
        if _SEP in key:
            name, part = key.split(_SEP, 1)
            groups.setdefault(name, {})[part] = t
        else:
            out[key] = t
    for name, parts in groups.items():
        try:
            shape = tuple(int(s) for s in parts["shape"].tolist())
            values = parts["values"].numpy()
            dense = np.zeros(int(np.prod(shape)), dtype=values.dtype)
            if "bitmask" in parts:
                kept = np.unpackbits(parts["bitmask"].numpy(), count=dense.size).astype(bool)
                dense[kept] = values
            else:
                crow = parts["crow"].numpy().astype(np.int64)
                col = parts["col"].numpy().astype(np.int64)
                width = dense.size // shape[0] if shape[0] else 0
                rows = np.repeat(np.arange(shape[0]), np.diff(crow))
                dense[rows * width + col] = values
        except KeyError as exc:
            raise ValueError(f"packed tensor {name!r} lacks its part {exc.args[0]!r}") from exc
        out[name] = torch.from_numpy(dense.reshape(shape))
    return out


def save_packed(path: str | Path, state_dict: Mapping[str, torch.Tensor], *, encoding: str = "auto",
                metadata: Mapping[str, str] | None = None) -> dict[str, str]:
    """Write :func:`pack_state_dict` of ``state_dict`` as a safetensors file (atomically); return the encodings.

    The file's metadata holds ``"ertrain.packed"``: the JSON ``{name: encoding}`` of the encoded tensors.
    """
    from safetensors.torch import save

    tensors, kinds = pack_state_dict(state_dict, encoding=encoding)
    meta = {**(metadata or {}), "ertrain.packed": json.dumps(kinds, sort_keys=True)}
    data = save(tensors, metadata=meta)  # written by Python below: a full disk is an OSError naming the file
    atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))
    return kinds


def load_packed(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a file written by :func:`save_packed` and return the dense state dict."""
    from safetensors.torch import load_file

    return unpack_state_dict(load_file(str(path)))


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o644)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, tmp):  # a full disk: name the file asked for
            raise named_os_error(exc, path) from exc
        raise


__all__ = [
    "CONV_MODES", "DEFAULT_MAX_DENSITY", "ENCODINGS", "LAYOUTS", "MASK_BUFFER", "LayerTiming", "SparseConv2d",
    "SparseLinear", "atomic_write", "clear_timing_cache", "conversion_plan", "fold_masks", "load_packed",
    "measure_layer", "pack_state_dict", "save_packed", "sparse_layers", "storage_nbytes", "to_dense", "to_sparse",
    "unpack_state_dict",
]
