"""Sparse training layers: a masked ``Linear`` / ``Conv2d`` that stores, computes and updates its kept weights only.

:class:`SparseTrainLinear` holds a layer's kept weights as one parameter ``values`` (length
``nnz``, row-major order of the mask) and the mask as a fixed :class:`~ertrain.sparse_kernels.Pattern`.
Its forward, input gradient and weight gradient are the three products of
:mod:`ertrain.sparse_kernels`; none forms a dense weight or a dense weight gradient, so an
optimizer over ``values`` updates (and keeps momentum / Adam moments for) the kept weights only and
a pruned weight does not exist.  The arithmetic of each kept weight is that of the masked dense
layer; only the summation order of the products differs (float tolerance).

:class:`SparseTrainConv2d` is a ``groups=1`` zero-padded convolution through ``unfold``: the
``(out, in * kh * kw)`` kernel matrix times the unfolded input columns (1x1 convolutions use the
pixels themselves).

Activations flow batch-major: a layer computes ``y^T`` (``out x batch``) and returns its transposed
view, so the next sparse linear layer reads its input's transpose without a copy.

State dicts stay those of the dense layer (``weight``, pruned entries zero, and ``bias``): a
checkpoint or an export is the same whichever engine trained it; saving forms the dense weight,
loading gathers the kept entries.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ertrain.sparse_kernels import Pattern, default_kernel, get_kernel


class _SparseProduct(torch.autograd.Function):
    """``y^T = W x^T`` for the pattern's ``W`` with kept ``values``; gradients for ``x^T`` and ``values``."""

    @staticmethod
    def forward(ctx: Any, xt: torch.Tensor, values: torch.Tensor, pattern: Pattern, kernel: Any) -> torch.Tensor:
        xt = xt.contiguous()
        ctx.save_for_backward(xt, values)
        ctx.pattern, ctx.kernel = pattern, kernel
        out: torch.Tensor = kernel.forward(pattern, values.detach(), xt)
        return out

    @staticmethod
    def backward(ctx: Any, gyt: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        xt, values = ctx.saved_tensors
        gyt = gyt.contiguous()
        gxt = ctx.kernel.input_grad(ctx.pattern, values.detach(), gyt) if ctx.needs_input_grad[0] else None
        gv = ctx.kernel.weight_grad(ctx.pattern, gyt, xt) if ctx.needs_input_grad[1] else None
        return gxt, gv, None, None


class _SparseTrainLayer(nn.Module):
    """What both layers share: ``values`` + ``bias`` parameters, the pattern, the kernel, dense-layout state dicts."""

    def __init__(self, weight: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor | None, kernel: str) -> None:
        super().__init__()
        if weight.device.type != "cpu":
            raise ValueError(f"the sparse engine runs on the CPU, got a weight on {weight.device}; use --engine masked")
        self.weight_shape = tuple(int(s) for s in weight.shape)
        self.pattern = Pattern.from_mask(mask.reshape(weight.shape[0], -1))
        self.values = nn.Parameter(weight.detach().reshape(weight.shape[0], -1)[self.pattern.to_mask()].clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.kernel_name = kernel
        self.kernel = get_kernel(kernel)

    def product(self, xt: torch.Tensor) -> torch.Tensor:
        """``W x^T`` (``out x columns``) for the ``in x columns`` matrix ``xt``."""
        out: torch.Tensor = _SparseProduct.apply(xt, self.values, self.pattern, self.kernel)
        return out

    def nnz(self) -> int:
        return self.pattern.nnz

    def mask(self) -> torch.Tensor:
        """The dense bool mask (weight shape); built on demand, never used by training."""
        return self.pattern.to_mask().reshape(self.weight_shape)

    @torch.no_grad()
    def dense_weight(self) -> torch.Tensor:
        """The dense weight (pruned entries exactly 0), e.g. for a checkpoint."""
        out = torch.zeros(self.pattern.shape, dtype=self.values.dtype)
        out[self.pattern.rows.long(), self.pattern.cols.long()] = self.values.detach()
        return out.reshape(self.weight_shape)

    @torch.no_grad()
    def set_mask(self, mask: torch.Tensor) -> None:
        """A new pattern: kept weights that stay keep their values, new ones start at 0 (same ``values`` object)."""
        dense = self.dense_weight()
        self.pattern = Pattern.from_mask(mask.reshape(self.pattern.shape))
        self.values.data = dense.reshape(self.pattern.shape)[self.pattern.to_mask()].clone()

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        destination[prefix + "weight"] = self.dense_weight()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()

    def _load_from_state_dict(self, state_dict: Any, prefix: str, local_metadata: Any, strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
        for name in ("weight", "bias") if self.bias is not None else ("weight",):
            if prefix + name not in state_dict:
                missing_keys.append(prefix + name)
        if prefix + "weight" in state_dict:
            weight = state_dict[prefix + "weight"]
            if tuple(weight.shape) != self.weight_shape:
                error_msgs.append(f"{prefix}weight has shape {tuple(weight.shape)}, expected {self.weight_shape}")
            else:
                with torch.no_grad():
                    kept = weight.reshape(self.pattern.shape)[self.pattern.to_mask()]
                    self.values.copy_(kept)
        if self.bias is not None and prefix + "bias" in state_dict:
            with torch.no_grad():
                self.bias.copy_(state_dict[prefix + "bias"])


class SparseTrainLinear(_SparseTrainLayer):
    """``y = x W^T + b`` with ``W`` kept at ``mask`` only (see the module docstring)."""

    def __init__(self, linear: nn.Linear, mask: torch.Tensor, kernel: str | None = None) -> None:
        super().__init__(linear.weight, mask, linear.bias, kernel or default_kernel())
        self.out_features, self.in_features = self.weight_shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        yt = self.product(x.reshape(-1, self.in_features).t())
        y = yt.t() if self.bias is None else yt.t() + self.bias  # keeps y^T's layout: the next layer's x^T is free
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"density={self.nnz() / (self.in_features * self.out_features):.4g}, kernel={self.kernel_name}")


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class SparseTrainConv2d(_SparseTrainLayer):
    """A ``groups=1`` zero-padded ``Conv2d`` with kept weights only, through ``unfold`` (see the module docstring)."""

    def __init__(self, conv: nn.Conv2d, mask: torch.Tensor, kernel: str | None = None) -> None:
        if not supports_conv(conv):
            raise ValueError(f"the sparse engine cannot train {conv!r}: only groups=1, integer zero padding")
        super().__init__(conv.weight, mask, conv.bias, kernel or default_kernel())
        self.out_channels, self.in_channels = self.weight_shape[:2]
        self.kernel_size = _pair(conv.kernel_size)
        self.stride, self.padding, self.dilation = _pair(conv.stride), _pair(conv.padding), _pair(conv.dilation)

    def _columns(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """The ``(in * kh * kw) x (N * H' * W')`` input columns and the output size."""
        if self.kernel_size == (1, 1) and self.padding == (0, 0):
            if self.stride != (1, 1):
                x = x[:, :, :: self.stride[0], :: self.stride[1]]
            h, w = x.shape[-2:]
            return x.transpose(0, 1).reshape(self.in_channels, -1), int(h), int(w)
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        h = (x.shape[-2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        w = (x.shape[-1] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        cols = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)
        return cols.transpose(0, 1).reshape(cols.shape[1], -1), int(h), int(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        cols, h, w = self._columns(x)
        y = self.product(cols).reshape(self.out_channels, n, h, w).transpose(0, 1)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, density={self.nnz() / (self.pattern.shape[0] * self.pattern.shape[1]):.4g}, "
                f"kernel={self.kernel_name}")


def supports_conv(conv: nn.Module) -> bool:
    """Whether :class:`SparseTrainConv2d` can stand in for ``conv``."""
    return (type(conv) is nn.Conv2d and conv.groups == 1 and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str))


def trainable_sparse(module: nn.Module) -> bool:
    """Whether the sparse engine has a layer for ``module`` (an exact ``nn.Linear``, or a supported ``nn.Conv2d``)."""
    return type(module) is nn.Linear or supports_conv(module)


def sparse_layer_for(module: nn.Module, mask: torch.Tensor, kernel: str | None = None) -> _SparseTrainLayer:
    """The sparse training layer equivalent to the dense ``module`` masked by ``mask``."""
    if type(module) is nn.Linear:
        return SparseTrainLinear(module, mask, kernel)
    if isinstance(module, nn.Conv2d):
        return SparseTrainConv2d(module, mask, kernel)
    raise ValueError(f"the sparse engine has no layer for {type(module).__name__}; use --engine masked")


SparseTrainLayer = _SparseTrainLayer

__all__ = ["SparseTrainConv2d", "SparseTrainLayer", "SparseTrainLinear", "sparse_layer_for", "supports_conv",
           "trainable_sparse"]
