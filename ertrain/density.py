"""Layer-wise densities of an ER mask (paper, Sec. 2 "Sparsity Ratios") — a registry of pure functions.

A scheme maps the weight shapes of the masked layers and an overall density ``p`` (fraction of
weights kept) to per-layer densities ``p_l`` in (0, 1] whose parameter-weighted mean
``sum_l m_l p_l / sum_l m_l`` equals ``p`` to 1e-9, where ``m_l`` is the number of weights of layer
``l``.  A layer whose density would exceed 1 is made dense and the excess is redistributed over the
other layers (the water-filling step of RigL's ERK code), so the budget is met exactly; a request
that cannot be met raises ``ValueError`` saying why.

Two options reproduce what the paper's code ran and miss the budget by design (the ``paper-code``
protocol, ``docs/protocol.md``): ``balanced`` with ``redistribute=False`` caps layers at 1 and drops
the excess, and ``erk`` with ``clamp_once=True`` scales the raw scores once and clamps at 1 (the
code path of the paper's STR/IMP experiments).  Both realise an overall density below the request;
:func:`plan_densities` returns the densities with the requested and the realised overall density.

Schemes: ``dense``, ``uniform``, ``erk``, ``pyramidal``, ``balanced``, ``from_scores``.  Add one
with ``@register_density_scheme("name")``; it receives ``(shapes, density, **opts)``.  An options
dataclass whose property ``exact_budget`` is false for some values marks those values as missing the
budget by design; every other result is checked against the budget.

Nothing here touches torch: shapes in, numpy array out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ertheory._validate import as_float_array, check_density
from ertrain.registry import Registry

#: Tolerance on the parameter-weighted mean density (DESIGN.md, "Global density is exact").
DENSITY_TOL = 1e-9

Shapes = Sequence[tuple[int, ...]]
SchemeFn = Callable[..., NDArray[np.float64]]
S = TypeVar("S", bound=SchemeFn)

#: Registered density schemes by name (a :class:`~ertrain.registry.Registry`; the saliency schemes of
#: :mod:`ertrain.scores` are loaded on first use, so importing this module alone gives every name).
DENSITY_SCHEMES: Registry[SchemeFn] = Registry(
    "density_schemes", builtins=("ertrain.density", "ertrain.scores"), label="density scheme"
)


def register_density_scheme(
    name: str, *, options: type | None = None, needs: str = "shapes", help: str = ""
) -> Callable[[S], S]:
    """Decorator registering ``fn(shapes, density, **opts) -> densities`` under ``name``.

    ``options`` is the dataclass of the scheme's JSON options (``--density-options``; fields with
    defaults); ``needs`` says whether it needs only the layer shapes, the ``"model"`` or the ``"data"``.
    """
    reg: Callable[[S], S] = DENSITY_SCHEMES.register(name, options=options, needs=needs, help=help)
    return reg


def layer_sizes(shapes: Shapes) -> NDArray[np.float64]:
    """``m_l``: the number of weights of each layer (product of its shape), as floats."""
    if len(shapes) == 0:
        raise ValueError("shapes must not be empty")
    out = np.empty(len(shapes), dtype=np.float64)
    for i, shape in enumerate(shapes):
        dims = tuple(shape)
        if len(dims) == 0 or any(int(d) != d or d < 1 for d in dims):
            raise ValueError(f"layer {i}: shape must be a tuple of positive integers, got {shape!r}")
        out[i] = float(np.prod(np.asarray(dims, dtype=np.float64)))
    return out


def overall_density(shapes: Shapes, densities: ArrayLike) -> float:
    """Parameter-weighted mean density ``sum_l m_l p_l / sum_l m_l``."""
    m = layer_sizes(shapes)
    p = as_float_array(densities, "densities")
    if p.shape != m.shape:
        raise ValueError(f"got {p.size} densities for {m.size} layers")
    return float(np.dot(m, p) / m.sum())


def capped_proportional(raw: NDArray[np.float64], sizes: NDArray[np.float64], density: float) -> NDArray[np.float64]:
    """Densities ``p_l = min(1, epsilon * raw_l)`` with ``epsilon`` solved so the weighted mean is ``density``.

    Layers that would exceed 1 are made dense and ``epsilon`` is solved again over the rest, until
    no layer exceeds 1 (the loop of RigL's / the paper's ERK code); each round caps at least one more
    layer, so it ends after at most ``L`` rounds.  ``raw`` must be positive.
    """
    if not np.all(np.isfinite(raw)) or np.any(raw <= 0):
        raise ValueError(f"raw layer scores must be positive and finite, got {raw.tolist()!r}")
    budget = density * sizes.sum()
    dense = np.zeros(raw.shape, dtype=bool)
    while True:
        free = ~dense
        remaining = budget - sizes[dense].sum()
        epsilon = remaining / np.dot(sizes[free], raw[free])
        over = free & (epsilon * raw > 1.0)
        if not over.any():
            break
        dense |= over
        if dense.all():
            break
    out = np.where(dense, 1.0, np.minimum(epsilon * raw, 1.0))
    return out


@register_density_scheme("dense", help="every layer dense (density 1 only)")
def dense(shapes: Shapes, density: float) -> NDArray[np.float64]:
    """Every layer dense; only ``density = 1`` is reachable."""
    if density != 1.0:
        raise ValueError(f"scheme 'dense' keeps every weight, so density must be 1, got {density!r}")
    return np.ones(len(shapes))


@register_density_scheme("uniform", help="the same density in every layer (ER(p))")
def uniform(shapes: Shapes, density: float) -> NDArray[np.float64]:
    """``p_l = p`` for every layer (the paper's ER(p))."""
    return np.full(len(shapes), float(density))


def erk_raw(shape: tuple[int, ...], form: str = "code") -> float:
    """ERK's raw score of one layer.

    ``form="code"`` (default): the sum of all weight dimensions over their product,
    ``(c_out + c_in + kh + kw) / (c_out c_in kh kw)``, as in the paper's code and RigL's; this is
    what produced the paper's numbers.  ``form="text"``: the formula printed in the paper (Sec. 2),
    ``(c_l + c_{l-1} + k_l) / (c_l c_{l-1} k_l)`` with ``k_l = kh * kw`` the kernel area.  Both
    agree for linear layers ``(n_out, n_in)``: ``(n_in + n_out) / (n_in n_out)``.
    """
    dims = [float(d) for d in shape]
    if form == "code":
        return sum(dims) / float(np.prod(dims))
    if form == "text":
        collapsed = dims[:2] + ([float(np.prod(dims[2:]))] if len(dims) > 2 else [])
        return sum(collapsed) / float(np.prod(collapsed))
    raise ValueError(f"ERK form must be 'code' or 'text', got {form!r}")


def clamped_proportional(raw: NDArray[np.float64], sizes: NDArray[np.float64], density: float) -> NDArray[np.float64]:
    """Densities ``p_l = min(1, C * raw_l)`` with ``C = density sum_l m_l / sum_l raw_l m_l``, scaled once.

    No layer's excess is handed on, so the overall density is below ``density`` whenever a layer is
    clamped (the ERK of the paper's STR/IMP code path).  ``raw`` must be positive.
    """
    if not np.all(np.isfinite(raw)) or np.any(raw <= 0):
        raise ValueError(f"raw layer scores must be positive and finite, got {raw.tolist()!r}")
    scale = density * sizes.sum() / np.dot(raw, sizes)
    return np.asarray(np.minimum(scale * raw, 1.0), dtype=np.float64)


@dataclass(frozen=True)
class ErkOptions:
    """Options of ``erk``: the raw score's ``form`` (``"code"`` or ``"text"``), RigL's ``power``, and
    ``clamp_once`` (scale once and clamp at 1 without redistributing: the paper's STR/IMP code path)."""

    form: str = "code"
    power: float = 1.0
    clamp_once: bool = False

    @property
    def exact_budget(self) -> bool:
        """Whether the densities meet the requested overall density (not with ``clamp_once``)."""
        return not self.clamp_once


@register_density_scheme(
    "erk", options=ErkOptions, help="Erdos-Renyi-Kernel: density proportional to sum/product of dims"
)
def erk(
    shapes: Shapes, density: float, form: str = "code", power: float = 1.0, clamp_once: bool = False
) -> NDArray[np.float64]:
    """Erdos-Renyi-Kernel (Evci et al. 2020): ``p_l = epsilon * raw_l ** power``, capped at 1.

    ``raw_l`` from :func:`erk_raw` (``form`` picks the code's or the paper text's formula);
    ``power`` is RigL's ``erk_power_scale`` (1.0 in the paper's experiments).  By default capped
    layers' excess is redistributed (the paper's ER_DST code, which produced the ratio tables);
    ``clamp_once=True`` scales once and clamps (:func:`clamped_proportional`, the STR/IMP code path),
    which undershoots ``density`` when a layer is clamped.
    """
    if not np.isfinite(power) or power < 0:
        raise ValueError(f"ERK power must be a finite non-negative number, got {power!r}")
    if not isinstance(clamp_once, bool | np.bool_):
        raise ValueError(f"ERK clamp_once must be true or false, got {clamp_once!r}")
    raw = np.array([erk_raw(tuple(s), form) for s in shapes]) ** float(power)
    if clamp_once:
        return clamped_proportional(raw, layer_sizes(shapes), density)
    return capped_proportional(raw, layer_sizes(shapes), density)


@dataclass(frozen=True)
class BalancedOptions:
    """Options of ``balanced``: ``redistribute`` the excess of capped layers (``False``: the paper's code)."""

    redistribute: bool = True

    @property
    def exact_budget(self) -> bool:
        """Whether the densities meet the requested overall density (not without redistribution)."""
        return bool(self.redistribute)


@register_density_scheme("balanced", options=BalancedOptions, help="the same number of weights in every layer")
def balanced(shapes: Shapes, density: float, redistribute: bool = True) -> NDArray[np.float64]:
    """Balanced (the paper's, Sec. 2): every layer keeps the same number of weights ``x``.

    ``p_l = x / m_l`` with ``x = p sum_k m_k / L``.  A layer with ``x >= m_l`` is made dense; by
    default its excess is shared equally by the other layers so the overall density is exact.
    ``redistribute=False`` is the paper's code (``ER_same_params_per_layer``): ``p_l = min(1, x / m_l)``,
    the excess is dropped and the realised overall density is below ``p``.
    """
    if not isinstance(redistribute, bool | np.bool_):
        raise ValueError(f"balanced redistribute must be true or false, got {redistribute!r}")
    m = layer_sizes(shapes)
    if not redistribute:
        return np.minimum(density * m.sum() / m.size / m, 1.0)
    return capped_proportional(1.0 / m, m, density)


@register_density_scheme("pyramidal", help="p_l = p_1 ** l")
def pyramidal(shapes: Shapes, density: float) -> NDArray[np.float64]:
    """Pyramidal (the paper's, Sec. 2): ``p_l = p_1 ** l`` for ``l = 1..L``, ``p_1`` solving the budget.

    ``sum_l m_l p_1^l = p sum_l m_l`` is increasing in ``p_1`` on (0, 1] and equals ``sum m_l`` at 1,
    so there is exactly one root in (0, 1]; it is found by bracketing (Brent's method) instead of the
    reference code's polynomial root finder, which loses accuracy for deep networks.
    """
    m = layer_sizes(shapes)
    if density == 1.0:
        return np.ones(m.size)
    frac = m / m.sum()
    powers = np.arange(1, m.size + 1, dtype=np.float64)

    def excess(p1: float) -> float:
        return float(np.dot(frac, p1**powers)) - density

    from scipy.optimize import brentq  # imported here: scipy.optimize costs ~1 s of start-up for every command

    p1 = brentq(excess, 0.0, 1.0, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500)
    out = np.asarray(p1**powers, dtype=np.float64)
    if np.any(out <= 0):
        first = int(np.argmax(out <= 0))
        raise ValueError(
            f"pyramidal density {density!r} over {m.size} layers underflows: p_1 = {p1!r} gives density 0 "
            f"from layer {first + 1} on"
        )
    return out


@dataclass(frozen=True)
class FromScoresOptions:
    """Options of ``from_scores``: one positive score per masked layer."""

    scores: tuple[float, ...] | None = None


@register_density_scheme("from_scores", options=FromScoresOptions, help="densities proportional to given scores")
def from_scores(shapes: Shapes, density: float, scores: ArrayLike | None = None) -> NDArray[np.float64]:
    """Layer densities proportional to per-layer ``scores`` (capped at 1, excess redistributed).

    Used for ER-SNIP / ER-SynFlow / ER-IMP: pass as ``scores`` the fraction of each layer that a
    saliency-based (global top-k) mask keeps; the ER mask then gets the same layer-wise ratios,
    rescaled so the overall density is exactly ``density``.  Scores must be positive.
    """
    if scores is None:
        raise ValueError("scheme 'from_scores' needs scores=<one positive number per layer>")
    s = as_float_array(scores, "scores").ravel()
    if s.size != len(shapes):
        raise ValueError(f"from_scores got {s.size} scores for {len(shapes)} layers")
    if np.any(s <= 0):
        bad = int(np.argmax(s <= 0))
        raise ValueError(f"from_scores needs positive scores (an ER layer needs p_l > 0), layer {bad} has {s[bad]!r}")
    return capped_proportional(s, layer_sizes(shapes), density)


@dataclass(frozen=True)
class DensityPlan:
    """Per-layer densities with the requested and the realised overall density.

    ``exact_budget`` is false for variants that miss the request by design (``balanced`` without
    redistribution, ``erk`` with ``clamp_once``); ``realised`` is then their overall density.
    """

    layers: NDArray[np.float64]
    requested: float
    realised: float
    exact_budget: bool

    def differs(self, rel_tol: float = 0.005) -> bool:
        """Whether ``realised`` differs from ``requested`` by more than ``rel_tol`` (relative)."""
        return abs(self.realised - self.requested) > rel_tol * self.requested


def budget_is_exact(scheme: str, opts: dict[str, Any] | None = None) -> bool:
    """Whether ``scheme`` with ``opts`` promises the exact budget (its options' ``exact_budget``; default yes)."""
    cls = DENSITY_SCHEMES.entry(scheme).options
    if cls is None or not isinstance(getattr(cls, "exact_budget", None), property):
        return True
    names = {f.name for f in fields(cls)}
    return bool(cls(**{k: v for k, v in (opts or {}).items() if k in names}).exact_budget)


def plan_densities(scheme: str, shapes: Shapes, density: float, **opts: Any) -> DensityPlan:
    """Per-layer densities of ``scheme`` for weight ``shapes`` at overall ``density``, with the realised density.

    The densities lie in (0, 1].  For an exact variant their parameter-weighted mean equals
    ``density`` to 1e-9 (checked here for every scheme, registered ones included; otherwise
    ``ValueError``); a variant whose options say ``exact_budget = False`` is returned as computed.
    """
    fn = DENSITY_SCHEMES[scheme]
    p = float(check_density(density))
    m = layer_sizes(shapes)
    exact = budget_is_exact(scheme, opts)
    try:
        out = np.asarray(fn(shapes, p, **opts), dtype=np.float64)
    except TypeError as exc:
        raise ValueError(f"bad options {sorted(opts)} for density scheme {scheme!r}: {exc}") from exc
    if out.shape != m.shape:
        raise ValueError(f"density scheme {scheme!r} returned {out.size} densities for {m.size} layers")
    if not np.all(np.isfinite(out)) or np.any(out <= 0) or np.any(out > 1):
        raise ValueError(f"density scheme {scheme!r} gave densities outside (0, 1]: {out.tolist()!r}")
    realised = float(np.dot(m, out) / m.sum())
    if exact and abs(realised - p) > DENSITY_TOL:
        raise ValueError(
            f"density scheme {scheme!r} cannot reach density {p!r} for these layers: it gives {realised!r}"
        )
    return DensityPlan(layers=out, requested=p, realised=realised, exact_budget=exact)


def layer_densities(scheme: str, shapes: Shapes, density: float, **opts: Any) -> NDArray[np.float64]:
    """Per-layer densities of ``scheme`` (:func:`plan_densities` without the overall densities).

    Exact variants meet ``density`` to 1e-9; for the paper-code variants use :func:`plan_densities`
    or :func:`overall_density` to get the realised overall density.
    """
    return plan_densities(scheme, shapes, density, **opts).layers
