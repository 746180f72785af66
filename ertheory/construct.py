"""Explicit constructions of the proofs of Theorems 2.1, 2.2 (= A.4) and A.5: an ER source equal to a target.

Given a target (ReLU network, fully connected or convolutional; last layer linear), coverage factors
``q = (q_0, ..., q_L)`` with ``q_L = 1``, and sampled masks of a source of widths ``n_{S,0} = q_0 d``,
``n_{S,l} = q_l n_{T,l}``, :func:`construct` builds the source's weights exactly as in the proofs
(DIGEST sections 3-5, with their fixes):

* layer 0 holds ``q_0`` univariate copies of every input: ``w^{(0)}_{S,j'j} = 1`` for ``j'`` in block ``j``
  and bias ``b^{(0)} = -a_1`` if ``a_1 <= 0`` else 0, so that on the input domain ``[a_1, b_1]^d`` the ReLU
  passes ``x_j - min(a_1, 0)`` through unchanged;
* in layer ``l >= 1`` every copy ``i'`` of target neuron ``i`` gets, for every non-zero ``w^{(l)}_{T,ij}``, the
  weight ``w^{(l)}_{T,ij}`` on one unmasked edge from the block of copies of ``j``
  (blocks ``{q(i-1)+1, ..., q i}``, here 0-based and contiguous); all other weights are 0;
* biases: ``b^{(l)}_{S,i'} = b^{(l)}_{T,i}`` for ``l >= 2`` and, compensating layer 0,
  ``b^{(1)}_{S,i'} = b^{(1)}_{T,i} - sum_j w^{(1)}_{T,ij} b^{(0)}`` (the sum over inputs the paper omits).

Conv targets (Theorem A.5): copies of channels instead of neurons; filter element ``(i, j, u, v)`` of copy
``i'`` is placed on one unmasked ``(i', j', u, v)`` with ``j'`` a copy of channel ``j``.  Linearity of the
convolution makes the copies add up to the target's filter.  Layer 0 is a 1x1 convolution.

``mode="proof"`` needs every copy to be complete (the proofs' event) and raises :class:`ConstructionError`
naming the first target edge that has no unmasked edge.  ``mode="tight"`` (beyond the paper) gives incomplete
copies zero outgoing weights and needs only every output to be complete: the event whose exact probability is
:func:`ertheory.exact.tight_log_success`.  The source is plain numpy (a :class:`SourceNetwork`), one dense weight
matrix (already multiplied by its mask), bias vector and mask per layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

from ertheory._validate import as_float_array, check_density, check_positive_int

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Mode = Literal["proof", "tight"]
_MODES = ("proof", "tight")


class ConstructionError(ValueError):
    """The masks do not hold the event: ``layer``, ``target_edge`` and ``source_row`` say where it fails.

    ``target_edge`` is ``(i, j)`` (fully connected) or ``(i, j, u, v)`` (conv) in the target's layer ``layer``
    (``layer = 0`` means a univariate copy of input ``j`` lacks its edge); ``source_row`` is the copy ``i'``.
    """

    def __init__(self, layer: int, target_edge: tuple[int, ...], source_row: int, reason: str) -> None:
        self.layer = layer
        self.target_edge = target_edge
        self.source_row = source_row
        super().__init__(f"layer {layer}: target edge {target_edge} has no {reason} for source row {source_row}")


def _relu(x: FloatArray) -> FloatArray:
    return np.maximum(x, 0.0)


def conv2d(x: FloatArray, weight: FloatArray, bias: FloatArray, padding: int = 0) -> FloatArray:
    """Stride-1 2-D cross-correlation with zero padding: ``x`` (N, C, H, W), ``weight`` (O, C, kh, kw)."""
    kh, kw = weight.shape[2], weight.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
    windows = sliding_window_view(xp, (kh, kw), axis=(2, 3))  # (N, C, H', W', kh, kw)
    out = np.tensordot(windows, weight, axes=([1, 4, 5], [1, 2, 3]))  # (N, H', W', O)
    res: FloatArray = np.moveaxis(out, -1, 1) + bias[None, :, None, None]
    return res


@dataclass(frozen=True)
class SourceNetwork:
    """A source network in plain numpy: per layer ``l = 0..L`` a weight (times its mask), bias and mask.

    Fully connected layers have ``(n_{S,l}, n_{S,l-1})`` weights; conv layers ``(out, in, kh, kw)`` tensors with
    stride 1 and zero padding ``paddings[l]``.  ReLU after every layer except the last.
    """

    weights: tuple[FloatArray, ...]
    biases: tuple[FloatArray, ...]
    masks: tuple[BoolArray, ...]
    paddings: tuple[int, ...] | None = None

    @property
    def is_conv(self) -> bool:
        return self.weights[0].ndim == 4

    def forward(self, x: ArrayLike) -> FloatArray:
        """Outputs for inputs ``x``: (N, d) for fully connected, (N, C, H, W) for conv."""
        h = np.asarray(x, dtype=np.float64)
        last = len(self.weights) - 1
        for l, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if self.is_conv:
                h = conv2d(h, w, b, 0 if self.paddings is None else self.paddings[l])
            else:
                h = h @ w.T + b
            if l < last:
                h = _relu(h)
        return h


def target_forward(
    weights: Sequence[ArrayLike], biases: Sequence[ArrayLike], x: ArrayLike, paddings: Sequence[int] | None = None
) -> FloatArray:
    """The target ``W_L relu(... relu(W_1 x + b_1) ...) + b_L`` (conv when the weights are 4-D)."""
    h = np.asarray(x, dtype=np.float64)
    for l, (w, b) in enumerate(zip(weights, biases, strict=True)):
        wa, ba = np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
        h = conv2d(h, wa, ba, 0 if paddings is None else paddings[l]) if wa.ndim == 4 else h @ wa.T + ba
        if l < len(weights) - 1:
            h = _relu(h)
    return h


def source_mask_shapes(weights: Sequence[ArrayLike], q: Sequence[int]) -> list[tuple[int, ...]]:
    """Mask shapes of the source for target ``weights`` and copies ``q = (q_0..q_L)`` (layer 0 first)."""
    ws = [np.asarray(w) for w in weights]
    d = ws[0].shape[1]
    shapes: list[tuple[int, ...]] = [(q[0] * d, d, 1, 1) if ws[0].ndim == 4 else (q[0] * d, d)]
    for l, w in enumerate(ws, start=1):
        shapes.append((q[l] * w.shape[0], q[l - 1] * w.shape[1]) + tuple(w.shape[2:]))
    return shapes


def sample_source_masks(
    weights: Sequence[ArrayLike],
    q: Sequence[int],
    density: ArrayLike,
    seed: int | np.random.Generator,
    density_0: float = 1.0,
) -> list[BoolArray]:
    """ER masks of the source: layer ``l`` entries i.i.d. Ber(p_l); layer 0 with ``density_0`` (default 1)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    qs = [int(v) for v in check_positive_int(q, "q").reshape(-1)]
    if len(qs) != len(weights) + 1:
        raise ValueError(f"q needs {len(weights) + 1} entries, got {q!r}")
    p = np.broadcast_to(check_density(density), (len(weights),))
    dens = [float(check_density(density_0, "density_0"))] + [float(v) for v in p]
    return [rng.random(s) < dp for s, dp in zip(source_mask_shapes(weights, qs), dens, strict=True)]


def construct(
    weights: Sequence[ArrayLike],
    biases: Sequence[ArrayLike],
    masks: Sequence[ArrayLike],
    q: Sequence[int],
    input_low: float = 0.0,
    mode: Mode = "proof",
    paddings: Sequence[int] | None = None,
) -> SourceNetwork:
    """Build the source that computes the target exactly on ``[input_low, inf)^d`` (see the module docstring).

    ``weights[l-1]``/``biases[l-1]``: target layer ``l`` (``(n_l, n_{l-1})`` or ``(c_l, c_{l-1}, kh, kw)``);
    ``masks[l]``: the source's mask of layer ``l = 0..L`` (shapes from :func:`source_mask_shapes`);
    ``q = (q_0, ..., q_L)`` with ``q_L = 1``; ``input_low`` is ``a_1``; ``paddings`` the conv zero paddings of
    the target's layers.  Raises :class:`ConstructionError` where the event fails.
    """
    ws, bs, ms, qs, pads = _checked_inputs(weights, biases, masks, q, mode, paddings)
    L, conv = len(ws), ws[0].ndim == 4
    b0 = max(0.0, -float(input_low))
    if conv and b0 != 0.0 and pads[0] != 0:
        raise ValueError(
            f"a padded first conv layer needs input_low >= 0 (the shifted copies would be padded "
            f"with 0, not with -input_low); got input_low={input_low!r}, padding={pads[0]}"
        )
    w0, b0_vec, valid = _univariate_layer(ms[0], qs[0], ws[0].shape[1], b0, mode)
    out_w: list[FloatArray] = [w0]
    out_b: list[FloatArray] = [b0_vec]
    for l in range(1, L + 1):
        w_l, b_l, valid = _copy_layer(l, ws[l - 1], bs[l - 1], ms[l], qs[l], qs[l - 1], valid, mode, l == L,
                                      b0 if l == 1 else 0.0)
        out_w.append(w_l)
        out_b.append(b_l)
    source_pads = tuple([0] + pads) if conv else None
    return SourceNetwork(tuple(out_w), tuple(out_b), tuple(ms), source_pads)


def _checked_inputs(
    weights: Sequence[ArrayLike], biases: Sequence[ArrayLike], masks: Sequence[ArrayLike], q: Sequence[int],
    mode: str, paddings: Sequence[int] | None,
) -> tuple[list[FloatArray], list[FloatArray], list[BoolArray], list[int], list[int]]:
    """The inputs of :func:`construct` as arrays, with every count and shape checked."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    ws = [as_float_array(w, f"weights[{l}]") for l, w in enumerate(weights)]
    bs = [as_float_array(b, f"biases[{l}]").reshape(-1) for l, b in enumerate(biases)]
    L = len(ws)
    qs = [int(v) for v in check_positive_int(q, "q").reshape(-1)]
    if L == 0 or len(bs) != L or len(masks) != L + 1 or len(qs) != L + 1:
        raise ValueError(
            f"need L >= 1 target layers, L biases, L + 1 masks and q_0..q_L; got {L}, {len(bs)}, {len(masks)}, {q!r}"
        )
    if qs[-1] != 1:
        raise ValueError(f"q_L must be 1 (one copy of every output), got q={q!r}")
    pads = [0] * L if paddings is None else [int(v) for v in paddings]
    if len(pads) != L:
        raise ValueError(f"paddings needs {L} entries, got {paddings!r}")
    ms = [np.asarray(m, dtype=bool) for m in masks]
    for l, (m, s) in enumerate(zip(ms, source_mask_shapes(ws, qs), strict=True)):
        if m.shape != s:
            raise ValueError(f"masks[{l}] must have shape {s}, got {m.shape}")
    return ws, bs, ms, qs, pads


def _univariate_layer(
    mask: BoolArray, q0: int, d: int, b0: float, mode: str
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Layer 0: ``q_0`` univariate copies of every input (weight 1, bias ``b_0``); which copies are valid."""
    m0 = mask.reshape(q0 * d, d)
    rows0 = np.arange(q0 * d)
    own = m0[rows0, rows0 // q0]
    if mode == "proof" and not own.all():
        r = int(np.flatnonzero(~own)[0])
        raise ConstructionError(0, (r // q0, r // q0), r, "unmasked univariate edge from its input")
    w0 = np.zeros((q0 * d, d))
    w0[rows0, rows0 // q0] = own.astype(np.float64)
    return w0.reshape(mask.shape), np.where(own, b0, 0.0), own


def _copy_layer(
    l: int, wt: FloatArray, bt: FloatArray, mask_l: BoolArray, q_l: int, q_prev: int, valid: BoolArray, mode: str,
    last: bool, b0: float,
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Layer ``l >= 1``: each of the ``q_l`` copies of a target neuron takes every target edge from one valid,
    connected copy of its input (the first); bias compensation ``- b_0 sum_j w_ij`` on layer 1."""
    n_out, n_in = wt.shape[0], wt.shape[1]
    k_shape = wt.shape[2:]
    wt3 = wt.reshape(n_out, n_in, -1)
    k = wt3.shape[2]
    rows = q_l * n_out
    mask = mask_l.reshape(rows, n_in, q_prev, k) & valid.reshape(1, n_in, q_prev, 1)
    has: BoolArray = np.asarray(mask.any(axis=2))
    first = mask.argmax(axis=2)
    tgt = wt3[np.arange(rows) // q_l]
    need: BoolArray = np.asarray(tgt != 0)
    row_ok: BoolArray = np.asarray((has | ~need).all(axis=(1, 2)))
    if not row_ok.all() and (mode == "proof" or last):
        r = int(np.flatnonzero(~row_ok)[0])
        j, e = np.argwhere(need[r] & ~has[r])[0]
        edge = (r // q_l, int(j)) + tuple(int(v) for v in np.unravel_index(int(e), k_shape))
        what = "unmasked edge from a copy" if mode == "proof" else "unmasked edge from a valid copy"
        raise ConstructionError(l, edge, r, what)
    ri, ji, ei = np.nonzero(need & has & row_ok[:, None, None])
    ws_l = np.zeros((rows, n_in, q_prev, k))
    ws_l[ri, ji, first[ri, ji, ei], ei] = tgt[ri, ji, ei]
    bias = bt[np.arange(rows) // q_l].copy() - b0 * tgt.sum(axis=(1, 2))
    return ws_l.reshape(mask_l.shape), np.asarray(np.where(row_ok, bias, 0.0), dtype=np.float64), row_ok
