"""Saliency scores (SNIP, SynFlow, magnitude) and the layerwise densities they induce.

The paper (Section 3, Table 1) compares its own layerwise ratios with *randomised* ratios of
pruning-at-initialisation methods: a saliency method keeps the globally best-scoring weights at a
target density ``p``; the fraction of each layer that survives, ``p_l``, is then used as the
layerwise density of a random (ER) mask (ER-SNIP, ER-SynFlow; ER-IMP takes ``p_l`` from a finished
IMP run). This module computes

* ``snip_scores``: connection sensitivity ``s = |w * dL/dw|`` on one batch (Lee et al. 2019);
* ``synflow_scores``: synaptic flow ``s = |w * dR/dw|`` with ``R = 1^T (prod_l |W_l|) 1``, the
  network's output summed for an all-ones input after every parameter is replaced by its absolute
  value (Tanaka et al. 2020), and ``iterative_synflow_masks`` (the iterative variant, with the
  exponential density schedule ``p^(t/T)``, t = 1..T);
* ``magnitude_scores``: ``|w|`` (used by IMP);
* ``global_topk_masks``: exactly ``round(p * M)`` kept weights, ``M`` = number of candidates;
* ``layer_ratios``: per-layer densities of the global top-``p * M`` set, with the fractional weight at
  the threshold assigned to the layer that holds it, so the parameter-weighted mean equals ``p``
  to float precision (``sum_l p_l m_l = p sum_l m_l``, the global-density rule of DESIGN.md).

Scores are lists of tensors, one per masked layer (in the order of
``ertrain.models.maskable_layers``), each with its layer's weight shape.

Density schemes registered here (``ertrain.density``): ``snip``, ``synflow`` and ``imp`` turn such
ratios into ER densities (``p_l`` proportional to the ratio, an emptied layer floored at one
weight, rescaled to the requested density exactly). They take ``ratios=[...]`` (JSON, e.g.
``--density-options '{"ratios": [0.3, 0.08, 0.6]}'``), or ``net=<model>`` with ``batch=(x, y)``
(SNIP) / ``input_shape=`` (SynFlow), or ``run=<IMP run directory>`` (ER-IMP).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ertheory._validate import check_density, check_positive_int
from ertrain.density import register_density_scheme

if TYPE_CHECKING:  # torch is imported lazily so that importing this module (CLI --help) stays cheap
    import torch
    from torch import Tensor, nn

    Layers = Sequence[tuple[str, nn.Module]]


def weight_of(module: nn.Module) -> Tensor:
    """The ``.weight`` tensor of a masked layer (``ValueError`` if it has none)."""
    import torch

    w = getattr(module, "weight", None)
    if not isinstance(w, torch.Tensor):
        raise ValueError(f"layer {type(module).__name__} has no weight tensor")
    return w


def _layers(model: nn.Module, layers: Layers | None) -> list[tuple[str, nn.Module]]:
    if layers is not None:
        return list(layers)
    from ertrain.models import maskable_layers

    return list(maskable_layers(model))


def _check_masks(
    masks: Sequence[Tensor] | None, scores_or_layers: Sequence[object], shapes: list[tuple[int, ...]]
) -> None:
    if masks is None:
        return
    if len(masks) != len(scores_or_layers):
        raise ValueError(f"masks has {len(masks)} entries, expected one per layer ({len(scores_or_layers)})")
    for i, (m, shape) in enumerate(zip(masks, shapes, strict=True)):
        if tuple(m.shape) != shape:
            raise ValueError(f"masks[{i}] has shape {tuple(m.shape)}, expected {shape}")


def magnitude_scores(model: nn.Module, *, layers: Layers | None = None) -> list[Tensor]:
    """``|w|`` for every masked layer (the saliency of magnitude pruning)."""
    return [weight_of(module).detach().abs().clone() for _, module in _layers(model, layers)]


def snip_scores(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    layers: Layers | None = None,
    masks: Sequence[Tensor] | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> list[Tensor]:
    """SNIP connection sensitivity ``|w * dL/dw|`` of each weight on the batch ``(x, y)``.

    Lee et al. (2019), eq. (6): the derivative of the loss with respect to a multiplicative gate
    ``c_j`` on weight ``w_j``, at ``c = 1``, is ``w_j dL/dw_j``; its absolute value is the score.
    With ``masks``, the network is evaluated with pruned weights at zero and pruned entries score 0.
    The model's parameters and ``.grad`` fields are left untouched (the computation runs on a copy).
    """
    import torch
    from torch import nn

    net = copy.deepcopy(model)
    net.train()
    net_layers = _named_like(net, _layers(model, layers))
    shapes = [tuple(weight_of(m).shape) for _, m in net_layers]
    _check_masks(masks, net_layers, shapes)
    weights = [weight_of(m) for _, m in net_layers]
    with torch.no_grad():
        if masks is not None:
            for w, m in zip(weights, masks, strict=True):
                w.mul_(m.to(device=w.device, dtype=w.dtype))
    loss_fn = loss_fn or nn.functional.cross_entropy
    loss = loss_fn(net(x), y)
    grads = torch.autograd.grad(loss, weights)
    return [(g * w).detach().abs() for g, w in zip(grads, weights, strict=True)]


def synflow_scores(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    layers: Layers | None = None,
    masks: Sequence[Tensor] | None = None,
) -> list[Tensor]:
    """SynFlow saliency ``|w * dR/dw|`` with ``R = sum(f(1; |theta|))`` (Tanaka et al. 2020, eq. (2)).

    Computed on a float64 copy of the model in eval mode whose every parameter and buffer is
    replaced by its absolute value; the input is one all-ones example of shape ``input_shape``
    (without the batch dimension). For a bias-free ReLU network ``R = 1^T |W_L| ... |W_1| 1`` and
    the score of weight ``(i, j)`` of layer ``l`` is ``|W_l|_ij (1^T |W_L|..|W_{l+1}|)_i (|W_{l-1}|..|W_1| 1)_j``.
    Data-free; ``masks`` zero the pruned weights first (so they score 0).
    """
    import torch

    net = copy.deepcopy(model).double().eval()
    net_layers = _named_like(net, _layers(model, layers))
    shapes = [tuple(weight_of(m).shape) for _, m in net_layers]
    _check_masks(masks, net_layers, shapes)
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
        if masks is not None:
            for (_, module), m in zip(net_layers, masks, strict=True):
                w = weight_of(module)
                w.mul_(m.to(device=w.device, dtype=w.dtype))
    weights = [weight_of(m) for _, m in net_layers]
    device = weights[0].device
    ones = torch.ones((1, *(int(s) for s in input_shape)), dtype=torch.float64, device=device)
    r = net(ones).sum()
    grads = torch.autograd.grad(r, weights)
    return [(g * w).detach().abs().float() for g, w in zip(grads, weights, strict=True)]


def _named_like(net: nn.Module, layers: Layers) -> list[tuple[str, nn.Module]]:
    """The modules of ``net`` (a copy) with the names of ``layers`` (modules of the original)."""
    from ertrain.models import mask_scope

    modules: dict[str, Any] = dict(net.named_modules())
    out = []
    for name, _ in layers:
        if name not in modules:  # a masked parameter other than a layer's weight, e.g. ``attn.in_proj_weight``
            modules.update({t.name: t for t in mask_scope(net).targets if t.name not in modules})
        if name not in modules:
            raise ValueError(f"layer {name!r} not found in the model")
        out.append((name, modules[name]))
    return out


def _flat_candidates(scores: Sequence[Tensor], masks: Sequence[Tensor] | None) -> Tensor:
    import torch

    flat = []
    for i, s in enumerate(scores):
        v = s.detach().reshape(-1).double().cpu()
        if masks is not None:
            v = torch.where(masks[i].reshape(-1).cpu().bool(), v, torch.tensor(-math.inf, dtype=torch.float64))
        flat.append(v)
    return torch.cat(flat)


def global_topk_masks(
    scores: Sequence[Tensor], density: float, *, masks: Sequence[Tensor] | None = None
) -> list[Tensor]:
    """Boolean masks keeping the ``round(density * M)`` highest scores over all layers together.

    ``M`` is the number of candidates: every weight, or the entries that are ``True`` in ``masks``
    (then ``density`` is relative to those candidates and nothing outside them is kept). Ties are
    broken by position (stable), so the count is exact.
    """
    import torch

    density = float(check_density(density, "density"))
    if not scores:
        raise ValueError("scores must not be empty")
    shapes = [tuple(s.shape) for s in scores]
    _check_masks(masks, scores, shapes)
    flat = _flat_candidates(scores, masks)
    n_candidates = int(flat.numel() if masks is None else sum(int(m.sum()) for m in masks))
    k = int(round(density * n_candidates))
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        order = torch.sort(flat, descending=True, stable=True).indices[:k]
        keep[order] = True
    out, start = [], 0
    for s in scores:
        n = s.numel()
        out.append(keep[start : start + n].reshape(s.shape).to(s.device))
        start += n
    return out


def layer_ratios(scores: Sequence[Tensor], density: float) -> np.ndarray:
    """Layerwise densities ``p_l`` of the global top-``density * M`` set of ``scores``.

    Weights are ranked by score over all layers; the first ``floor(density * M)`` are kept and the
    fractional remainder ``density * M - floor(density * M)`` is credited to the layer of the next
    weight in the ranking, so ``sum_l p_l m_l = density * M`` exactly (``m_l`` = weights in layer l).
    A layer can receive density 0 (layer collapse, the failure of SNIP at high sparsity).
    """
    import torch

    density = float(check_density(density, "density"))
    if not scores:
        raise ValueError("scores must not be empty")
    sizes = np.array([s.numel() for s in scores], dtype=np.int64)
    flat = _flat_candidates(scores, None)
    if not torch.isfinite(flat).all():
        raise ValueError("scores must be finite")
    total = int(sizes.sum())
    target = density * total
    k = min(int(math.floor(target)), total)
    order = torch.sort(flat, descending=True, stable=True).indices
    layer_of = np.repeat(np.arange(len(scores)), sizes)
    ranked_layers = layer_of[order.numpy()]
    kept = np.bincount(ranked_layers[:k], minlength=len(scores)).astype(np.float64)
    if k < total:
        kept[ranked_layers[k]] += target - k
    return kept / sizes


def masks_ratios(masks: Sequence[Tensor]) -> np.ndarray:
    """Layerwise densities ``nnz_l / m_l`` of boolean masks (e.g. IMP's final masks for ER-IMP)."""
    if not masks:
        raise ValueError("masks must not be empty")
    return np.array([float(m.sum()) / m.numel() for m in masks], dtype=np.float64)


def iterative_synflow_masks(
    model: nn.Module,
    input_shape: Sequence[int],
    density: float,
    *,
    iterations: int = 100,
    layers: Layers | None = None,
    masks: Sequence[Tensor] | None = None,
) -> list[Tensor]:
    """Iterative SynFlow (Tanaka et al. 2020, Algorithm 1): ``iterations`` rounds of scoring and
    global pruning, round ``t`` keeping ``density^(t/T)`` of the start, ``T = iterations``.

    Starts from ``masks`` (all ones if omitted); ``density`` is relative to the start. The result
    keeps exactly ``round(density * nnz_start)`` weights.
    """
    import torch

    density = float(check_density(density, "density"))
    iterations = int(check_positive_int(iterations, "iterations"))
    net_layers = _layers(model, layers)
    current = (
        [torch.ones_like(weight_of(m), dtype=torch.bool) for _, m in net_layers]
        if masks is None
        else [m.bool().clone() for m in masks]
    )
    start_nnz = sum(int(m.sum()) for m in current)
    for t in range(1, iterations + 1):
        scores = synflow_scores(model, input_shape, layers=net_layers, masks=current)
        keep = int(round(start_nnz * density ** (t / iterations)))
        nnz = sum(int(m.sum()) for m in current)
        current = global_topk_masks(scores, keep / nnz, masks=current)
    return current


def apportion(total: int, weights: Sequence[float] | np.ndarray, caps: Sequence[int] | np.ndarray) -> np.ndarray:
    """Split the integer ``total`` over layers in proportion to ``weights`` (largest remainders).

    Each share is at most ``caps[l]``; the shares sum to ``total`` exactly (Hamilton's method,
    with capped layers' excess passed on to the others). Used to keep a layerwise count exact.
    """
    w = np.asarray(weights, dtype=np.float64)
    cap = np.asarray(caps, dtype=np.int64)
    if w.shape != cap.shape or w.ndim != 1 or w.size == 0:
        raise ValueError(f"weights and caps must be 1-d of equal length, got {w.shape} and {cap.shape}")
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError(f"weights must be finite and >= 0, got {w.tolist()}")
    if not 0 <= total <= int(cap.sum()):
        raise ValueError(f"total must lie in [0, {int(cap.sum())}], got {total}")
    share = np.zeros(w.size, dtype=np.int64)
    free = cap > 0
    remaining = int(total)
    while remaining > 0:
        wf = np.where(free, w, 0.0)
        if wf.sum() <= 0:
            wf = free.astype(np.float64)
        ideal = remaining * wf / wf.sum()
        base = np.minimum(np.floor(ideal).astype(np.int64), cap - share)
        extra = remaining - int(base.sum())
        order = np.argsort(-(ideal - np.floor(ideal)), kind="stable")
        for i in order:
            if extra == 0:
                break
            if free[i] and share[i] + base[i] < cap[i]:
                base[i] += 1
                extra -= 1
        share += base
        remaining -= int(base.sum())
        free = share < cap
    return share


# ------------------------------------------------------------------------------------------------
# density schemes from saliencies: ER-SNIP, ER-SynFlow, ER-IMP

#: The saliency-based density schemes registered here.
SALIENCY_SCHEMES = ("snip", "synflow", "imp")


def _randomised(shapes: Sequence[tuple[int, ...]], density: float, ratios: Sequence[float] | np.ndarray) -> np.ndarray:
    """ER densities with the layerwise shape of ``ratios``, rescaled to ``density`` exactly.

    A layer that the saliency method emptied (ratio 0) is given one weight's worth (``1 / m_l``) so
    that the ER layer keeps ``p_l > 0``; then ``p_l = min(1, c * ratio_l)`` with ``c`` solved so the
    parameter-weighted mean is ``density`` (``ertrain.density.capped_proportional``).
    """
    from ertrain.density import capped_proportional, layer_sizes

    m = layer_sizes(shapes)
    r = np.asarray(ratios, dtype=np.float64).ravel()
    if r.size != m.size:
        raise ValueError(f"got {r.size} ratios for {m.size} layers")
    if not np.isfinite(r).all() or (r < 0).any() or (r > 1).any():
        raise ValueError(f"ratios must lie in [0, 1], got {r.tolist()}")
    r = np.maximum(r, 1.0 / m)
    return capped_proportional(r, m, density)


def _check_model_shapes(model: nn.Module, shapes: Sequence[tuple[int, ...]]) -> list[tuple[str, nn.Module]]:
    from ertrain.models import maskable_layers

    layers = list(maskable_layers(model))
    got = [tuple(weight_of(m).shape) for _, m in layers]
    if got != [tuple(s) for s in shapes]:
        raise ValueError(f"model's masked layers have shapes {got}, the scheme was asked for {list(shapes)}")
    return layers


@dataclass(frozen=True)
class SnipOptions:
    """JSON options of ``snip``: precomputed per-layer ``ratios`` (else the model is scored on a batch)."""

    ratios: tuple[float, ...] | None = None


@dataclass(frozen=True)
class SynflowOptions:
    """JSON options of ``synflow``: precomputed ``ratios``, or the number of SynFlow ``iterations``."""

    ratios: tuple[float, ...] | None = None
    iterations: int = 100


@dataclass(frozen=True)
class ImpOptions:
    """JSON options of ``imp``: precomputed ``ratios``, or ``run``, a finished IMP run directory."""

    ratios: tuple[float, ...] | None = None
    run: str | None = None


@register_density_scheme(
    "snip", options=SnipOptions, needs="data", help="ER-SNIP: SNIP's layerwise ratios, randomised"
)
def snip(
    shapes: Sequence[tuple[int, ...]],
    density: float,
    ratios: Sequence[float] | None = None,
    net: nn.Module | None = None,
    batch: tuple[Tensor, Tensor] | None = None,
) -> np.ndarray:
    """ER-SNIP: the layerwise densities of SNIP's global top-``density`` mask, randomised.

    Give ``ratios`` (one per layer, e.g. from :func:`saliency_ratios`), or ``net`` (the model at
    initialisation) and ``batch = (x, y)`` to score here.
    """
    if ratios is None:
        if net is None or batch is None:
            raise ValueError("scheme 'snip' needs ratios=[...] (one per layer) or net=<model> and batch=(x, y)")
        layers = _check_model_shapes(net, shapes)
        ratios = layer_ratios(snip_scores(net, batch[0], batch[1], layers=layers), density).tolist()
    return _randomised(shapes, density, ratios)

@register_density_scheme(
    "synflow", options=SynflowOptions, needs="model", help="ER-SynFlow: SynFlow's layerwise ratios, randomised"
)
def synflow(
    shapes: Sequence[tuple[int, ...]],
    density: float,
    ratios: Sequence[float] | None = None,
    net: nn.Module | None = None,
    input_shape: Sequence[int] | None = None,
    iterations: int = 100,
) -> np.ndarray:
    """ER-SynFlow: the layerwise densities of iterative SynFlow's mask (``iterations`` rounds), randomised.

    Give ``ratios``, or ``net`` (the model at initialisation) and ``input_shape`` (one example,
    no batch dimension).
    """
    if ratios is None:
        if net is None or input_shape is None:
            raise ValueError("scheme 'synflow' needs ratios=[...] (one per layer) or net=<model> and input_shape=")
        layers = _check_model_shapes(net, shapes)
        masks = iterative_synflow_masks(net, input_shape, density, iterations=iterations, layers=layers)
        ratios = masks_ratios(masks).tolist()
    return _randomised(shapes, density, ratios)

@register_density_scheme(
    "imp", options=ImpOptions, help="ER-IMP: a finished IMP run's layerwise ratios, randomised"
)
def imp(
    shapes: Sequence[tuple[int, ...]], density: float, ratios: Sequence[float] | None = None, run: str | None = None
) -> np.ndarray:
    """ER-IMP: the layerwise densities of a finished IMP run, randomised (and rescaled to ``density``).

    Give ``ratios`` (one per layer), or ``run``: a run directory (or its ``result.json``) of
    ``--method imp``, whose ``layer_densities`` are used.
    """
    if ratios is None:
        if run is None:
            raise ValueError("scheme 'imp' needs ratios=[...] (one per layer) or run=<IMP run directory>")
        ratios = imp_ratios(run)
    return _randomised(shapes, density, ratios)


def imp_ratios(run: str) -> list[float]:
    """The final per-layer densities of a finished IMP run's ``result.json``, in forward layer order."""
    from pathlib import Path

    from ertrain.rundir import RESULT, RunDir

    path = Path(run)
    rd = RunDir(path) if path.is_dir() or path.name != RESULT else RunDir(path.parent)
    result = rd.read_result()
    if result is None:
        raise ValueError(f"no readable IMP result.json in {str(rd.path)!r}")
    if result.get("method") != "imp" or "layer_densities" not in result or "layer_order" not in result:
        raise ValueError(f"{str(path)!r} is not the result of an IMP run (method {result.get('method')!r})")
    densities = result["layer_densities"]
    return [float(densities[name]) for name in result["layer_order"]]


def saliency_ratios(
    scheme: str,
    model: nn.Module,
    density: float,
    *,
    batch: tuple[Tensor, Tensor] | None = None,
    input_shape: Sequence[int] | None = None,
    iterations: int = 100,
) -> list[float]:
    """Per-layer densities of SNIP's (on ``batch``) or iterative SynFlow's (data-free) mask at ``density``.

    JSON-able: pass them as ``--density-options '{"ratios": [...]}'`` with ``--density-scheme snip``
    (or ``synflow``) to train the randomised ER-SNIP / ER-SynFlow network.
    """
    from ertrain.models import maskable_layers

    layers = list(maskable_layers(model))
    if scheme == "snip":
        if batch is None:
            raise ValueError("SNIP ratios need batch=(x, y)")
        return layer_ratios(snip_scores(model, batch[0], batch[1], layers=layers), density).tolist()
    if scheme == "synflow":
        if input_shape is None:
            raise ValueError("SynFlow ratios need input_shape")
        masks = iterative_synflow_masks(model, input_shape, density, iterations=iterations, layers=layers)
        return masks_ratios(masks).tolist()
    raise ValueError(f"saliency must be 'snip' or 'synflow', got {scheme!r}")


def scheme_options(
    scheme: str, options: dict[str, object], model: nn.Module, x_train: Tensor, y_train: Tensor, batch_size: int,
    generator: torch.Generator,
) -> dict[str, object]:
    """Density-scheme options completed for ``snip``/``synflow`` when no ``ratios`` are given.

    For a trainer that builds its mask with ``Masking.from_scheme(model, scheme, ..., **opts)``:
    SNIP gets ``net=model`` and a batch of ``batch_size`` random training examples (drawn with
    ``generator``), SynFlow gets ``net=model`` and the input shape. Other schemes are unchanged.
    """
    import torch

    opts = dict(options)
    if scheme not in ("snip", "synflow") or "ratios" in opts:
        return opts
    opts["net"] = model
    if scheme == "snip":
        idx = torch.randperm(int(x_train.shape[0]), generator=generator)[:batch_size].to(x_train.device)
        opts["batch"] = (x_train[idx], y_train[idx])
    else:
        opts["input_shape"] = tuple(x_train.shape[1:])
    return opts


