"""Kernels of sparse training: the three products of a linear layer whose weight is a CSR pattern.

A layer ``y = x W^T`` with ``W`` (``out x in``) kept only at the positions of a fixed pattern needs,
per training step, three products and never a dense ``W`` or a dense ``dW``:

* forward ``y^T = W x^T``: for every row ``o`` of ``W``, ``y^T[o] = sum_k v_k x^T[c_k]``;
* input gradient ``dx^T = W^T dy^T``: for every column ``i``, ``dx^T[i] = sum_k v_k dy^T[r_k]`` over the
  kept entries of column ``i`` (a copy of the pattern sorted by column, the CSC order);
* weight gradient at the kept positions only: ``dv_k = <dy^T[r_k], x^T[c_k]>`` (a sampled product).

Activations are batch-major rows (``x^T``: ``in x batch``, contiguous), so every inner loop is a
contiguous vector operation over the batch.  Two implementations share that contract:

* ``numba``: compiled loops (:mod:`numba`, the ``[fast]`` extra), parallel over output rows /
  input columns with ``numba``'s threads;
* ``torch``: torch's sparse CSR products (``torch.sparse.mm``) and ``torch.sparse.sampled_addmm``.

:data:`KERNELS` lists them; :func:`available_kernels` those that import here; :func:`default_kernel`
is the fastest available (``numba`` when installed).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

#: Kernel names, fastest first.
KERNELS = ("numba", "torch")


class KernelError(ValueError):
    """An unknown or unavailable kernel name."""


def available_kernels() -> tuple[str, ...]:
    """The kernels that can run here (``torch`` always; ``numba`` when the package is installed)."""
    return tuple(k for k in KERNELS if k != "numba" or importlib.util.find_spec("numba") is not None)


def default_kernel() -> str:
    """The fastest available kernel."""
    return available_kernels()[0]


def check_kernel(name: str) -> str:
    """``name`` if it is a kernel that runs here; else :class:`KernelError` naming the valid ones."""
    if name not in KERNELS:
        raise KernelError(f"unknown sparse kernel {name!r}; valid: {', '.join(KERNELS)}")
    if name not in available_kernels():
        raise KernelError(f"sparse kernel {name!r} is not installed (pip install 'ertoolkit[fast]'); "
                          f"available: {', '.join(available_kernels())}")
    return name


@dataclass(frozen=True)
class Pattern:
    """A fixed CSR pattern of an ``out x in`` matrix and its column-sorted (CSC) copy.

    ``indptr``/``cols``: CSR rows; ``rows``: the row of every CSR entry; ``col_ptr``/``col_rows``:
    the entries sorted by column; ``perm``: CSR position of every CSC entry (``values[perm]`` is the CSC
    order).  Indices are int32 (int64 ``indptr``/``col_ptr``).  Built once per mask.
    """

    shape: tuple[int, int]
    indptr: torch.Tensor
    cols: torch.Tensor
    rows: torch.Tensor
    col_ptr: torch.Tensor
    col_rows: torch.Tensor
    perm: torch.Tensor

    @property
    def nnz(self) -> int:
        return int(self.cols.numel())

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> Pattern:
        """The pattern of a 2-d bool ``mask`` (row-major order of its kept entries)."""
        if mask.dim() != 2:
            raise ValueError(f"a pattern needs a 2-d mask, got shape {tuple(mask.shape)}")
        mask = mask.detach().to("cpu", torch.bool)
        rows, cols = mask.nonzero(as_tuple=True)
        out_f, in_f = (int(s) for s in mask.shape)
        indptr = torch.zeros(out_f + 1, dtype=torch.int64)
        indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=out_f), 0)
        perm = torch.argsort(cols * out_f + rows)  # column-major order of the kept entries
        col_ptr = torch.zeros(in_f + 1, dtype=torch.int64)
        col_ptr[1:] = torch.cumsum(torch.bincount(cols, minlength=in_f), 0)
        return cls((out_f, in_f), indptr, cols.to(torch.int32), rows.to(torch.int32), col_ptr,
                   rows[perm].to(torch.int32), perm.to(torch.int64))

    def to_mask(self) -> torch.Tensor:
        """The dense bool mask (for reports and checkpoints; training never needs it)."""
        out = torch.zeros(self.shape, dtype=torch.bool)
        out[self.rows.long(), self.cols.long()] = True
        return out

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.indptr, self.cols, self.rows, self.col_ptr,
                                                         self.col_rows, self.perm))


# ------------------------------------------------------------------------------------------------
# numba


def _numba_kernels() -> dict[str, Callable[..., Any]]:
    """Compile (once, cached on disk) the three numba kernels."""
    import numba

    opts: dict[str, Any] = {"parallel": True, "fastmath": True, "cache": True, "nogil": True}

    @numba.njit(**opts)
    def forward(indptr: Any, cols: Any, values: Any, xt: Any, yt: Any) -> None:  # pragma: no cover - compiled
        n_out, batch = yt.shape
        for o in numba.prange(n_out):
            acc = yt[o]
            for j in range(batch):
                acc[j] = 0.0
            for k in range(indptr[o], indptr[o + 1]):
                v = values[k]
                src = xt[cols[k]]
                for j in range(batch):
                    acc[j] += v * src[j]

    @numba.njit(**opts)
    def input_grad(col_ptr: Any, col_rows: Any, perm: Any, values: Any, gyt: Any, gxt: Any
                   ) -> None:  # pragma: no cover - compiled
        n_in, batch = gxt.shape
        for i in numba.prange(n_in):
            acc = gxt[i]
            for j in range(batch):
                acc[j] = 0.0
            for k in range(col_ptr[i], col_ptr[i + 1]):
                v = values[perm[k]]
                src = gyt[col_rows[k]]
                for j in range(batch):
                    acc[j] += v * src[j]

    @numba.njit(**opts)
    def weight_grad(indptr: Any, cols: Any, gyt: Any, xt: Any, gv: Any) -> None:  # pragma: no cover - compiled
        n_out, batch = gyt.shape
        for o in numba.prange(n_out):
            g = gyt[o]
            for k in range(indptr[o], indptr[o + 1]):
                src = xt[cols[k]]
                s = 0.0
                for j in range(batch):
                    s += g[j] * src[j]
                gv[k] = s

    return {"forward": forward, "input_grad": input_grad, "weight_grad": weight_grad}


_COMPILED: dict[str, Callable[..., Any]] = {}


def _nb() -> dict[str, Callable[..., Any]]:
    if not _COMPILED:
        _COMPILED.update(_numba_kernels())
    return _COMPILED


def _np(t: torch.Tensor) -> Any:
    return t.detach().numpy()


def _run_numba(fn: Callable[..., Any], *args: Any) -> None:
    """Run a kernel with torch's thread count (numba's pool is sized once, at its first use)."""
    import numba

    numba.set_num_threads(min(torch.get_num_threads(), int(numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    fn(*args)


class NumbaKernel:
    """The compiled kernels (see the module docstring); float32 and float64 on the CPU."""

    name = "numba"

    @staticmethod
    def forward(p: Pattern, values: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        yt = torch.empty(p.shape[0], xt.shape[1], dtype=xt.dtype)
        _run_numba(_nb()["forward"], _np(p.indptr), _np(p.cols), _np(values), _np(xt), _np(yt))
        return yt

    @staticmethod
    def input_grad(p: Pattern, values: torch.Tensor, gyt: torch.Tensor) -> torch.Tensor:
        gxt = torch.empty(p.shape[1], gyt.shape[1], dtype=gyt.dtype)
        _run_numba(_nb()["input_grad"], _np(p.col_ptr), _np(p.col_rows), _np(p.perm), _np(values), _np(gyt),
                   _np(gxt))
        return gxt

    @staticmethod
    def weight_grad(p: Pattern, gyt: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        gv = torch.empty(p.nnz, dtype=gyt.dtype)
        _run_numba(_nb()["weight_grad"], _np(p.indptr), _np(p.cols), _np(gyt), _np(xt), _np(gv))
        return gv


# ------------------------------------------------------------------------------------------------
# torch


def _csr(indptr: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(indptr, cols.long(), values, shape, device=values.device,
                                       check_invariants=False)


class TorchKernel:
    """torch's sparse CSR products; the weight gradient by ``torch.sparse.sampled_addmm`` at the pattern."""

    name = "torch"

    @staticmethod
    def forward(p: Pattern, values: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        return torch.sparse.mm(_csr(p.indptr, p.cols, values, p.shape), xt)

    @staticmethod
    def input_grad(p: Pattern, values: torch.Tensor, gyt: torch.Tensor) -> torch.Tensor:
        transposed = _csr(p.col_ptr, p.col_rows, values[p.perm], (p.shape[1], p.shape[0]))
        return torch.sparse.mm(transposed, gyt)

    @staticmethod
    def weight_grad(p: Pattern, gyt: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        zeros = _csr(p.indptr, p.cols, torch.zeros(p.nnz, dtype=gyt.dtype), p.shape)
        return torch.sparse.sampled_addmm(zeros, gyt, xt.t()).values()


_KERNEL_CLASSES: dict[str, Any] = {"numba": NumbaKernel, "torch": TorchKernel}


def get_kernel(name: str) -> Any:
    """The kernel object named ``name`` (``forward``, ``input_grad``, ``weight_grad`` on a :class:`Pattern`)."""
    return _KERNEL_CLASSES[check_kernel(name)]


__all__ = ["KERNELS", "KernelError", "NumbaKernel", "Pattern", "TorchKernel", "available_kernels",
           "check_kernel", "default_kernel", "get_kernel"]
