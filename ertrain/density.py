"""Layer-wise densities of an ER mask (paper, Sec. 2 "Sparsity Ratios") — a registry of pure functions.

A scheme maps the weight shapes of the masked layers and an overall density ``p`` (fraction of
weights kept) to per-layer densities ``p_l`` in (0, 1] whose parameter-weighted mean
``sum_l m_l p_l / sum_l m_l`` equals ``p`` to 1e-9, where ``m_l`` is the number of weights of layer
``l``.  A layer whose density would exceed 1 is made dense and the excess is redistributed over the
other layers (the water-filling step of RigL's ERK code), so the budget is met exactly; a request
that cannot be met raises ``ValueError`` saying why.

Schemes: ``dense``, ``uniform``, ``erk``, ``pyramidal``, ``balanced``, ``from_scores``.  Add one
with ``@register_density_scheme("name")``; it receives ``(shapes, density, **opts)``.

Nothing here touches torch: shapes in, numpy array out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

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


@dataclass(frozen=True)
class ErkOptions:
    """Options of ``erk``: the raw score's ``form`` (``"code"`` or ``"text"``) and RigL's ``power``."""

    form: str = "code"
    power: float = 1.0


@register_density_scheme("erk", options=ErkOptions, help="Erdos-Renyi-Kernel: density proportional to sum/product of dims")
def erk(shapes: Shapes, density: float, form: str = "code", power: float = 1.0) -> NDArray[np.float64]:
    """Erdos-Renyi-Kernel (Evci et al. 2020): ``p_l = epsilon * raw_l ** power``, capped at 1.

    ``raw_l`` from :func:`erk_raw` (``form`` picks the code's or the paper text's formula);
    ``power`` is RigL's ``erk_power_scale`` (1.0 in the paper's experiments).
    """
    if not np.isfinite(power) or power < 0:
        raise ValueError(f"ERK power must be a finite non-negative number, got {power!r}")
    raw = np.array([erk_raw(tuple(s), form) for s in shapes]) ** float(power)
    return capped_proportional(raw, layer_sizes(shapes), density)


@register_density_scheme("balanced", help="the same number of weights in every layer")
def balanced(shapes: Shapes, density: float) -> NDArray[np.float64]:
    """Balanced (the paper's, Sec. 2): every layer keeps the same number of weights ``x``.

    ``p_l = x / m_l`` with ``x = p sum_k m_k / L``.  A layer with ``x >= m_l`` is made dense and,
    unlike the reference code (which drops that excess and misses ``p``), the excess is shared
    equally by the other layers so the overall density is exact.
    """
    m = layer_sizes(shapes)
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


def layer_densities(scheme: str, shapes: Shapes, density: float, **opts: Any) -> NDArray[np.float64]:
    """Per-layer densities of ``scheme`` for weight ``shapes`` at overall ``density``.

    The result lies in (0, 1] and its parameter-weighted mean equals ``density`` to 1e-9
    (checked here for every scheme, registered ones included); otherwise ``ValueError``.
    """
    fn = DENSITY_SCHEMES[scheme]
    p = float(check_density(density))
    m = layer_sizes(shapes)
    try:
        out = np.asarray(fn(shapes, p, **opts), dtype=np.float64)
    except TypeError as exc:
        raise ValueError(f"bad options {sorted(opts)} for density scheme {scheme!r}: {exc}") from exc
    if out.shape != m.shape:
        raise ValueError(f"density scheme {scheme!r} returned {out.size} densities for {m.size} layers")
    if not np.all(np.isfinite(out)) or np.any(out <= 0) or np.any(out > 1):
        raise ValueError(f"density scheme {scheme!r} gave densities outside (0, 1]: {out.tolist()!r}")
    realised = float(np.dot(m, out) / m.sum())
    if abs(realised - p) > DENSITY_TOL:
        raise ValueError(
            f"density scheme {scheme!r} cannot reach density {p!r} for these layers: it gives {realised!r}"
        )
    return out
