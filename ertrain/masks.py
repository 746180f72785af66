"""ER masks: sampling, flow repair (paper, Appendix A.1) and ``Masking``, which keeps pruned weights exactly zero.

* :func:`sample_er_masks` draws every entry of layer ``l`` i.i.d. Bernoulli(``p_l``) (the paper's
  ``S_ER``, Sec. 2).  Sampling always runs on the CPU with the given ``torch.Generator`` and the
  masks are then moved to ``device``: the same seed gives the same masks on CPU and CUDA.
* :func:`flow_repair` makes every neuron / filter have at least one incoming and one outgoing edge,
  by random addition or by rejection sampling, and reports the edges added per layer.
* :class:`Masking` registers each mask as a bool buffer on its layer and re-zeroes the pruned
  weights in place (one fused ``_foreach_mul_``) after every optimizer step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from ertrain.density import plan_densities
from ertrain.models import MaskScope, MaskTarget, mask_scope, mask_targets

FLOW_REPAIR_MODES = ("random_add", "rejection", "paper-code")


def _check_generator(generator: torch.Generator | None) -> torch.Generator:
    if generator is None:
        raise ValueError("a torch.Generator is required (randomness is explicit), got None")
    if generator.device.type != "cpu":
        raise ValueError(f"masks are sampled on the CPU; pass a CPU torch.Generator, got one on {generator.device}")
    return generator


def sample_er_masks(
    shapes: Sequence[tuple[int, ...]],
    densities: ArrayLike,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    *,
    exact: bool = False,
) -> list[torch.Tensor]:
    """One bool ER mask per layer: entries i.i.d. Bernoulli(``densities[l]``) (``s_ij ~ Ber(p_l)``, Sec. 2).

    With ``exact=True`` each layer keeps exactly ``round(p_l m_l)`` entries (at least one), chosen
    uniformly at random, so the realised densities equal the requested ones up to rounding.
    Sampling runs on the CPU with ``generator`` (a CPU ``torch.Generator``); masks are then moved to
    ``device``, so a seed gives the same masks whatever the device.
    """
    gen = _check_generator(generator)
    p = np.asarray(densities, dtype=np.float64).ravel()
    if p.size != len(shapes):
        raise ValueError(f"got {p.size} densities for {len(shapes)} layer shapes")
    if not np.all((p > 0) & (p <= 1)):
        raise ValueError(f"densities must be in (0, 1], got {p.tolist()!r}")
    out = []
    for shape, p_l in zip(shapes, p, strict=True):
        size = torch.Size(tuple(int(d) for d in shape))
        if exact:
            n = size.numel()
            keep = min(n, max(1, int(round(p_l * n))))
            flat = torch.zeros(n, dtype=torch.bool)
            flat[torch.randperm(n, generator=gen)[:keep]] = True
            mask = flat.view(size)
        else:
            mask = torch.rand(size, generator=gen) < float(p_l)
        out.append(mask.to(device) if device is not None else mask)
    return out


def _as_3d(mask: torch.Tensor) -> torch.Tensor:
    """View a mask as ``(out, in, k)``: ``k`` = kernel area for convs, 1 for linear layers."""
    if mask.dim() < 2:
        raise ValueError(f"flow repair needs masks of at least 2 dims (out, in, ...), got shape {tuple(mask.shape)}")
    return mask.reshape(mask.shape[0], mask.shape[1], -1)


def _degrees(m3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(in-degree of each output unit, out-degree of each input unit) of a ``(out, in, k)`` mask.

    A pair (filter ``i``, input channel ``j``) is an edge when any of its kernel entries is kept
    (the paper's code: ``clamp(sum(mask, (2, 3)), max=1)``).
    """
    active = m3.any(dim=2)
    return active.sum(dim=1), active.sum(dim=0)


def _conditional_bernoulli(rows: int, length: int, p: float, gen: torch.Generator) -> torch.Tensor:
    """``rows`` bool vectors of ``length`` i.i.d. Ber(p) entries conditioned on at least one being 1.

    Exact and loop-free: the position of the first 1 follows a geometric law truncated to
    ``length`` (inverse-CDF sampling); the entries after it are unconditioned Ber(p).  This is the
    law that "resample until non-empty" (rejection sampling) produces, without its unbounded loop.
    """
    u = torch.rand(rows, generator=gen, dtype=torch.float64)
    if p <= 0.0:
        first = (u * length).long()
    elif p >= 1.0:
        first = torch.zeros(rows, dtype=torch.long)
    else:
        log_q = float(np.log1p(-p))
        tail = -float(np.expm1(length * log_q))  # 1 - (1-p)^length, accurately
        first = torch.floor(torch.log1p(-u * tail) / log_q).long()
    first = first.clamp_(0, length - 1)
    rest = torch.rand(rows, length, generator=gen) < p
    pos = torch.arange(length)
    out = rest & (pos > first[:, None])
    out[torch.arange(rows), first] = True
    return out


def _add_random(m3: torch.Tensor, gen: torch.Generator, *, rows: bool) -> None:
    """Random addition: give every empty row (``rows``) / column one edge at a random place."""
    indeg, outdeg = _degrees(m3)
    empty = torch.nonzero((indeg if rows else outdeg) == 0).flatten()
    if empty.numel() == 0:
        return
    other = torch.randint(m3.shape[1] if rows else m3.shape[0], (empty.numel(),), generator=gen)
    k = torch.randint(m3.shape[2], (empty.numel(),), generator=gen)
    if rows:
        m3[empty, other, k] = True
    else:
        m3[other, empty, k] = True


def _resample(m3: torch.Tensor, gen: torch.Generator, p: float, *, rows: bool) -> None:
    """Rejection sampling: redraw every empty row / column from Ber(p) conditioned on non-empty."""
    indeg, outdeg = _degrees(m3)
    empty = torch.nonzero((indeg if rows else outdeg) == 0).flatten()
    if empty.numel() == 0:
        return
    if rows:
        length = m3.shape[1] * m3.shape[2]
        m3[empty] = _conditional_bernoulli(empty.numel(), length, p, gen).view(-1, m3.shape[1], m3.shape[2])
    else:
        length = m3.shape[0] * m3.shape[2]
        new = _conditional_bernoulli(empty.numel(), length, p, gen).view(-1, m3.shape[0], m3.shape[2])
        m3[:, empty] = new.transpose(0, 1)


def _add_random_code(m3: torch.Tensor, gen: torch.Generator, *, conv: bool) -> None:
    """The paper's code's random addition, its bug included (``ER_DST/sparselearning/core.py:205-265``).

    Out-degrees are taken *before* the rows are repaired, so an input unit emptied at the start gets an
    edge even if a row repair already gave it one.  For a conv mask the column edge is written into
    ``temp[:, i].contiguous()``: a copy as soon as two or more input channels are empty, so then no
    column is repaired; with exactly one it is repaired.  Linear masks repair every empty column.
    """
    _, outdeg = _degrees(m3)
    empty_cols = torch.nonzero(outdeg == 0).flatten()
    _add_random(m3, gen, rows=True)
    if empty_cols.numel() == 0 or (conv and empty_cols.numel() >= 2):
        return
    other = torch.randint(m3.shape[0], (empty_cols.numel(),), generator=gen)
    k = torch.randint(m3.shape[2], (empty_cols.numel(),), generator=gen)
    m3[other, empty_cols, k] = True


def _remove_spare(m3: torch.Tensor, count: int, gen: torch.Generator) -> int:
    """Remove up to ``count`` random kept entries whose removal leaves every degree >= 1; return how many."""
    removed = 0
    while removed < count:
        active = m3.any(dim=2)
        pair_count = m3.sum(dim=2)
        indeg, outdeg = active.sum(dim=1), active.sum(dim=0)
        # An entry may go if its (i, j) pair keeps another kernel entry, or both degrees stay >= 1.
        safe_pair = (pair_count >= 2) | ((indeg[:, None] >= 2) & (outdeg[None, :] >= 2))
        cand = torch.nonzero(m3 & safe_pair[:, :, None])
        if cand.shape[0] == 0:
            break
        # Taking one entry per row and per column in a round keeps every degree >= 1.
        order = cand[torch.randperm(cand.shape[0], generator=gen)[: 4 * (count - removed) + 64]]
        seen_rows: set[int] = set()
        seen_cols: set[int] = set()
        for i, j, k in order.tolist():
            if removed >= count:
                break
            if i in seen_rows or j in seen_cols:
                continue
            seen_rows.add(i)
            seen_cols.add(j)
            m3[i, j, k] = False
            removed += 1
    return removed


def flow_repair(
    masks: Sequence[torch.Tensor],
    mode: str = "random_add",
    generator: torch.Generator | None = None,
    *,
    densities: ArrayLike | None = None,
    keep_density: bool = False,
) -> tuple[list[torch.Tensor], list[int]]:
    """Flow preservation (Appendix A.1): every neuron / filter gets in-degree >= 1 and out-degree >= 1.

    Each mask is viewed as a bipartite graph between its input units (columns) and output units
    (rows).  A linear mask ``(out, in)`` is used as is; a conv mask ``(out, in, kh, kw)`` links
    filter ``i`` to input channel ``j`` when any kernel entry of ``(i, j)`` is kept.  Layer by layer
    (as in the paper's code), every output unit without an incoming edge is repaired first, then
    every input unit without an outgoing edge.  Because every layer's rows and columns are repaired,
    a hidden unit ends with an incoming edge (from its own layer) and an outgoing one (from the
    next), also across residual connections.  At a conv -> linear flatten, each flattened feature
    (channel x position) is an input unit of the linear layer, so it is the finest repair.

    Modes:

    * ``"random_add"`` (the paper's Tables 6-7): one edge at a uniformly random place of each empty
      row / column (for a conv: random channel and random kernel position).
    * ``"rejection"``: each empty row / column is redrawn from Ber(``p_l``) conditioned on being
      non-empty (sampled exactly; ``p_l`` from ``densities`` or the mask's realised density).
    * ``"paper-code"``: random addition as the paper's code ran it, bug included
      (:func:`_add_random_code`): a conv layer with two or more input channels without an outgoing
      edge keeps them all empty.

    With ``keep_density=True`` each added edge replaces a random existing one chosen so that no
    degree drops to zero, keeping each layer's count where that is possible (a layer needs at least
    ``max(rows, columns)`` edges; below that the extra edges stay); otherwise the density rises by
    the edges added, which the second return value reports.
    Masks are repaired on the CPU with ``generator`` (a CPU ``torch.Generator``) and returned on their
    original devices.  Returns ``(repaired masks, edges added per layer)``; the inputs are not modified.
    """
    if mode not in FLOW_REPAIR_MODES:
        raise ValueError(f"unknown flow repair mode {mode!r}; valid names: {', '.join(FLOW_REPAIR_MODES)}")
    gen = _check_generator(generator)
    p_given = None if densities is None else np.asarray(densities, dtype=np.float64).ravel()
    if p_given is not None and p_given.size != len(masks):
        raise ValueError(f"got {p_given.size} densities for {len(masks)} masks")
    repaired, added = [], []
    for l, mask in enumerate(masks):
        if mask.dtype != torch.bool:
            raise ValueError(f"mask {l} must be bool, got {mask.dtype}")
        m = mask.detach().to("cpu", copy=True)
        m3 = _as_3d(m)
        before = int(m3.sum())
        if mode == "random_add":
            _add_random(m3, gen, rows=True)
            _add_random(m3, gen, rows=False)
        elif mode == "paper-code":
            _add_random_code(m3, gen, conv=mask.dim() == 4)
        else:
            p_l = float(p_given[l]) if p_given is not None else before / m3.numel()
            _resample(m3, gen, p_l, rows=True)
            _resample(m3, gen, p_l, rows=False)
        n_added = int(m3.sum()) - before
        if keep_density and n_added:
            _remove_spare(m3, n_added, gen)
        added.append(n_added)
        repaired.append(m3.view(mask.shape).to(mask.device))
    return repaired, added


_flow_repair = flow_repair


def flow_defects(masks: Sequence[torch.Tensor]) -> list[tuple[int, int]]:
    """Per layer: (output units with in-degree 0, input units with out-degree 0)."""
    out = []
    for mask in masks:
        indeg, outdeg = _degrees(_as_3d(mask))
        out.append((int((indeg == 0).sum()), int((outdeg == 0).sum())))
    return out


LayerSpec = Sequence[tuple[str, Any]] | Sequence[str] | Sequence[MaskTarget]


@dataclass(frozen=True)
class MaskPlan:
    """The one road from a scheme to masks (:func:`plan_masks`): scope, densities, masks, repair.

    ``densities`` are the scheme's per-parameter densities; ``masks`` (bool, CPU, each in its
    parameter's own layout) are the sampled masks after flow repair, which added ``edges_added``.
    """

    scope: MaskScope
    targets: tuple[MaskTarget, ...]
    scheme: str
    requested_density: float
    planned_density: float
    densities: tuple[float, ...]
    masks: tuple[torch.Tensor, ...]
    edges_added: tuple[int, ...]
    flow_repair: str | None = None

    def realised_densities(self) -> list[float]:
        return [int(m.count_nonzero()) / m.numel() for m in self.masks]

    def report(self) -> dict[str, Any]:
        """Per masked parameter (name, shape, fan-in/out, requested / realised density, edges added) and
        the whole model: unmasked weights, realised density over the masked weights and over all parameters."""
        nnz = [int(m.count_nonzero()) for m in self.masks]
        sizes = [m.numel() for m in self.masks]
        masked, total = sum(sizes), self.scope.total_params
        layers = [
            {"name": t.name, "parameter": t.full_name, "rule": t.rule, "shape": list(t.shape),
             "fan_in": t.fan_in, "fan_out": t.fan_out, "params": n, "requested_density": p, "density": k / n,
             "edges_added": a}
            for t, p, k, n, a in zip(self.targets, self.densities, nnz, sizes, self.edges_added, strict=True)
        ]
        scope = self.scope.report()
        unmasked = total - masked
        return {
            "requested_density": self.requested_density, "planned_density": self.planned_density,
            "overall_density": sum(nnz) / masked, "density_all_params": (sum(nnz) + unmasked) / total,
            "edges_added": int(sum(self.edges_added)), "masked_params": masked, "unmasked_params": unmasked,
            "total_params": total, "layers": layers, "excluded": scope["excluded"], "ties": scope["ties"],
        }


def plan_masks(
    model: nn.Module,
    scheme: str,
    density: float,
    generator: torch.Generator,
    flow_repair: str | None = None,
    *,
    layers: LayerSpec | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    tied: str = "dense",
    exclude_first: bool = False,
    exclude_last: bool = False,
    exact: bool = False,
    keep_density: bool = False,
    **opts: Any,
) -> MaskPlan:
    """Scheme -> per-parameter densities -> sampled ER masks -> flow repair -> realised densities.

    The masked parameters are ``layers`` if given, else :func:`ertrain.models.mask_targets` with the
    name globs ``include`` / ``exclude`` and ``tied`` (see :func:`ertrain.models.mask_scope`).  The
    scheme (``ertrain.density``, options ``opts``) sees each parameter as ``(out, in, *kernel)``;
    masks are sampled in the parameter's own layout with ``generator`` (:func:`sample_er_masks`,
    ``exact``) and repaired on the ``(out, in, *kernel)`` view (:func:`flow_repair`, ``keep_density``).
    ``ertrain densities``, training (:meth:`Masking.from_scheme`) and export all come through here, so
    the same arguments and seed give the same masks.  Needs only the parameters' shapes (a model built
    on the meta device works).
    """
    scope = mask_scope(model, include=include, exclude=exclude, tied=tied)
    if layers is None:
        targets = mask_targets(model, exclude_first=exclude_first, exclude_last=exclude_last,
                               include_globs=include, exclude_globs=exclude, tied=tied)
    else:
        targets = _targets_of(model, layers)
    shapes = [t.canonical_shape for t in targets]
    plan = plan_densities(scheme, shapes, density, **opts)
    p = plan.layers
    masks = sample_er_masks([t.shape for t in targets], p, generator, exact=exact)
    added = [0] * len(masks)
    if flow_repair is not None:
        views = [t.canonical(m).contiguous() for t, m in zip(targets, masks, strict=True)]
        views, added = _flow_repair(views, flow_repair, generator, densities=p, keep_density=keep_density)
        masks = [t.canonical(v).contiguous() for t, v in zip(targets, views, strict=True)]
    return MaskPlan(scope, tuple(targets), scheme, float(plan.requested), float(plan.realised),
                    tuple(float(x) for x in p), tuple(masks), tuple(int(a) for a in added), flow_repair)


def _targets_of(model: nn.Module, layers: LayerSpec) -> list[MaskTarget]:
    """Targets from names, ``(name, module)`` pairs (their ``weight``) or targets."""
    known: dict[str, MaskTarget] | None = None
    modules = dict(model.named_modules())
    out: list[MaskTarget] = []
    for item in layers:
        if isinstance(item, MaskTarget):
            out.append(item)
            continue
        if isinstance(item, str):
            if known is None:
                known = {t.name: t for t in mask_scope(model).targets}
            if item in known:
                out.append(known[item])
                continue
            if item not in modules:
                raise ValueError(f"the model has no layer or masked parameter named {item!r}")
            item = (item, modules[item])
        name, layer = item
        out.append(layer if isinstance(layer, MaskTarget) else MaskTarget(name, layer, "weight", "given"))
    if not out:
        raise ValueError("layers must not be empty")
    return out


class Masking:
    """Applies fixed masks to a model's parameters and keeps the pruned weights exactly zero.

    Each mask is registered as a non-persistent bool buffer ``<param>_mask`` (``weight_mask`` for a
    layer's weight) on the module owning the parameter, so it moves with ``model.to(...)`` and stays
    out of ``model.state_dict()`` (masks are saved with :meth:`state_dict`).  Construction zeroes the
    pruned weights at once.  ``targets`` maps each mask's name to its :class:`~ertrain.models.MaskTarget`
    (module, parameter name, fan-in/out); ``layers`` maps it to the owning module for a ``weight``
    (every masked parameter of the registered models), else to the target.

    Call :meth:`apply_` after every optimizer step: it multiplies all masked weights by their masks
    in one fused ``torch._foreach_mul_``, so whatever the optimizer did (momentum, weight decay,
    Adam's moments, a mixed-precision step) the pruned weights are exactly 0 before the next
    forward.  Gradients and optimizer state of pruned weights are left alone (dynamic sparse
    methods read dense gradients); :meth:`mask_grads_` and :meth:`mask_optimizer_state_` zero them
    when wanted, e.g. after a regrowth.  Change masks with :meth:`set_mask` (or in place on the
    buffer; the float copies used by :meth:`apply_` are refreshed when the buffer changes).
    """

    BUFFER = "weight_mask"

    def __init__(
        self,
        model: nn.Module,
        masks: Mapping[str, torch.Tensor] | Sequence[torch.Tensor],
        layers: LayerSpec | None = None,
    ) -> None:
        self.model = model
        named = self._resolve_layers(model, masks, layers)
        if isinstance(masks, Mapping):
            missing = [t.name for t in named if t.name not in masks]
            extra = [n for n in masks if n not in {t.name for t in named}]
            if missing or extra:
                raise ValueError(f"mask names do not match the layers: missing {missing}, unexpected {extra}")
            mask_list = [masks[t.name] for t in named]
        else:
            mask_list = list(masks)
            if len(mask_list) != len(named):
                raise ValueError(f"got {len(mask_list)} masks for {len(named)} layers {[t.name for t in named]}")
        self.targets: dict[str, MaskTarget] = {}
        self.layers: dict[str, Any] = {}
        for target, mask in zip(named, mask_list, strict=True):
            weight = target.weight
            self._check_mask(target.name, weight, mask)
            target.module.register_buffer(
                target.mask_buffer, mask.detach().to(device=weight.device, dtype=torch.bool).clone(), persistent=False
            )
            self.targets[target.name] = target
            self.layers[target.name] = target.layer
        # the hot path reads these lists (no attribute lookups through nn.Module.__getattr__)
        self._owners = [t.module for t in self.targets.values()]
        self._pnames = [t.param_name for t in self.targets.values()]
        self._bnames = [t.mask_buffer for t in self.targets.values()]
        self._cache: list[torch.Tensor] = []
        self._cache_keys: list[tuple[Any, ...]] = []
        self.requested_densities: dict[str, float] = {}
        #: Overall density asked of the scheme and the one its per-layer densities give (None: masks given directly).
        self.requested_density: float | None = None
        self.planned_density: float | None = None
        self.edges_added: dict[str, int] = {}
        #: The plan the masks came from (:meth:`from_plan`; None when masks were given directly).
        self.plan: MaskPlan | None = None
        self.apply_()

    @staticmethod
    def _resolve_layers(
        model: nn.Module, masks: Mapping[str, torch.Tensor] | Sequence[torch.Tensor], layers: LayerSpec | None
    ) -> list[MaskTarget]:
        if layers is None:
            if isinstance(masks, Mapping):
                return mask_targets(model, include=list(masks))
            return mask_targets(model)
        return _targets_of(model, layers)

    @staticmethod
    def _check_mask(name: str, weight: torch.Tensor, mask: torch.Tensor) -> None:
        if not isinstance(mask, torch.Tensor):
            raise ValueError(f"mask for {name!r} must be a tensor, got {type(mask).__name__}")
        if tuple(mask.shape) != tuple(weight.shape):
            raise ValueError(f"mask for {name!r} has shape {tuple(mask.shape)}, weight has {tuple(weight.shape)}")
        if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"mask for {name!r} must be bool or 0/1 valued")

    # ------------------------------------------------------------------ construction from a scheme
    @classmethod
    def from_scheme(
        cls,
        model: nn.Module,
        scheme: str,
        density: float,
        generator: torch.Generator,
        flow_repair: str | None = None,
        **kwargs: Any,
    ) -> Masking:
        """ER masks for ``model`` from :func:`plan_masks` (same arguments: ``layers``, ``include`` /
        ``exclude`` name globs, ``tied``, ``exact``, ``keep_density`` and the scheme's options, e.g.
        ``form="text"`` for ERK, ``scores=...`` for ``from_scores``).

        The requested per-layer densities and the edges added by flow repair are kept in
        ``requested_densities`` and ``edges_added``; the requested overall density and the one the
        per-layer densities give (:func:`ertrain.density.plan_densities`: they differ for the
        paper-code variants, e.g. balanced without redistribution) in ``requested_density`` and
        ``planned_density``; the whole plan (with its report of the model) in ``plan``.
        """
        return cls.from_plan(model, plan_masks(model, scheme, density, generator, flow_repair, **kwargs))

    @classmethod
    def from_plan(cls, model: nn.Module, plan: MaskPlan) -> Masking:
        """Apply the masks of ``plan`` (:func:`plan_masks` on ``model``)."""
        self = cls(model, list(plan.masks), list(plan.targets))
        names = [t.name for t in plan.targets]
        self.requested_densities = dict(zip(names, plan.densities, strict=True))
        self.edges_added = dict(zip(names, plan.edges_added, strict=True))
        self.requested_density, self.planned_density = plan.requested_density, plan.planned_density
        self.plan = plan
        return self

    # ------------------------------------------------------------------ the hot path
    def _weights(self) -> list[torch.Tensor]:
        out = []
        for m, pname in zip(self._owners, self._pnames, strict=True):
            w = m._parameters.get(pname)  # direct dict access: nn.Module.__getattr__ is slow in the hot path
            out.append(w if w is not None else getattr(m, pname))
        return out

    def _buffers(self) -> list[torch.Tensor]:
        out = []
        for m, bname in zip(self._owners, self._bnames, strict=True):
            buf = m._buffers.get(bname)
            if buf is None:
                raise ValueError(f"the mask buffer {bname!r} was removed from a masked layer")
            out.append(buf)
        return out

    def _float_masks(self, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        """Masks in the weights' dtype (on their device), rebuilt only when a buffer or a weight changed.

        The cache key of a layer is the mask buffer's storage and version counter (bumped by every
        in-place edit) and the weight's storage and dtype (a move to another device or dtype gives
        the weight new storage).
        """
        buffers = self._buffers()
        keys = [(b.data_ptr(), b._version, w.data_ptr(), w.dtype) for b, w in zip(buffers, weights, strict=True)]
        if keys != self._cache_keys:
            self._cache = [b.to(dtype=w.dtype) for b, w in zip(buffers, weights, strict=True)]
            self._cache_keys = keys
        return self._cache

    def apply_(self) -> None:
        """Zero the pruned weights in place (one fused multiply over all masked layers)."""
        weights = self._weights()
        with torch.no_grad():
            torch._foreach_mul_(weights, self._float_masks(weights))

    @torch.no_grad()
    def mask_grads_(self) -> None:
        """Zero the gradients of pruned weights in place (layers without a gradient are skipped)."""
        weights = self._weights()
        masks = self._float_masks(weights)
        pairs = [(w.grad, m) for w, m in zip(weights, masks, strict=True) if w.grad is not None]
        if pairs:
            torch._foreach_mul_([g for g, _ in pairs], [m for _, m in pairs])

    @torch.no_grad()
    def mask_optimizer_state_(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero the optimizer state (momentum, Adam moments, ...) of pruned weights in place."""
        weights = self._weights()
        for w, m in zip(weights, self._float_masks(weights), strict=True):
            for value in optimizer.state.get(w, {}).values():
                if isinstance(value, torch.Tensor) and value.shape == w.shape:
                    value.mul_(m.to(value.dtype))

    # ------------------------------------------------------------------ inspection and updates
    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """The live bool mask buffers by layer name."""
        return dict(zip(self.layers, self._buffers(), strict=True))

    @torch.no_grad()
    def set_mask(self, name: str, mask: torch.Tensor) -> None:
        """Replace the mask of layer ``name`` (copied into its buffer) and zero the newly pruned weights."""
        if name not in self.layers:
            raise ValueError(f"unknown masked layer {name!r}; valid names: {', '.join(self.layers)}")
        weight = self.targets[name].weight
        self._check_mask(name, weight, mask)
        buf = self._buffers()[list(self.layers).index(name)]
        buf.copy_(mask.to(device=buf.device, dtype=torch.bool))
        weight.mul_(buf)

    def nnz(self) -> int:
        """Number of kept entries over all masked layers."""
        return int(sum(int(b.count_nonzero()) for b in self._buffers()))

    def numel(self) -> int:
        """Number of weights over all masked layers."""
        return int(sum(b.numel() for b in self._buffers()))

    def densities(self) -> dict[str, float]:
        """Realised density of each masked layer."""
        return {n: int(b.count_nonzero()) / b.numel() for n, b in self.masks.items()}

    def overall_density(self) -> float:
        """Realised parameter-weighted density over all masked layers."""
        return self.nnz() / self.numel()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The masks (bool, on the CPU) by name; loadable with ``torch.load(weights_only=True)``."""
        return {n: b.detach().to("cpu", copy=True) for n, b in self.masks.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load masks saved by :meth:`state_dict` (names and shapes must match) and zero the pruned weights."""
        missing = [n for n in self.layers if n not in state]
        extra = [n for n in state if n not in self.layers]
        if missing or extra:
            raise ValueError(f"mask state does not match the masked layers: missing {missing}, unexpected {extra}")
        for name, mask in state.items():
            self.set_mask(name, mask)

    def __repr__(self) -> str:
        return f"Masking({len(self.layers)} layers, density={self.overall_density():.6f})"
