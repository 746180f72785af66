"""Width bounds for Erdos-Renyi (ER) source networks: Theorems 2.1, 2.2 (= A.4), A.5, 2.3, Lemma 2.4, Theorem 2.5.

Gadhikar, Mukherjee & Burkholz, "Why Random Pruning Is All We Need to Start Sparse" (ICML 2023).
Every bound is governed by the *width factor* ``1 / log(1 / (1 - p))`` of a layer with density ``p``
(fraction of weights kept); see :func:`width_factor`.

Conventions shared by the functions of this module:

* ``density`` is given **per layer**: a scalar broadcasts to every layer; an array carries the layers on
  its trailing axis (length 1 or ``L``), and its leading axes broadcast against ``delta`` (and ``m_T``).
  So one call evaluates a bound for a whole grid of densities, e.g. ``density=p[:, None]`` for a sweep
  over a uniform density ``p``.  Layer ``l = 1..L`` of the source (the layers that carry the target's
  weights) has density ``p_l``; the density ``p_0`` of the construction layer ``l = 0`` does not enter
  the bounds (the theorems only need that layer to keep the flow from every input).
* Results hold real-valued coverage factors ``q`` (shape ``(..., L + 1)``, ``l = 0..L``, ``q_L = 1``),
  the whole copies ``q_int = ceil(q)`` a source is built from (the ceiling ignores a relative excess of
  ``1e-12``, i.e. floating-point rounding of a bound that is an integer), and the source widths
  ``n_{S,l} = q_int_l * n_{T,l}`` (``n_{S,0} = q_int_0 * d``).
* ``q_l >= 1`` always: a source needs at least one copy of every target neuron.  In the dense case
  ``p = 1`` the width factor is 0 and the bound gives ``q = 1`` (no division by zero).
* Bad input raises ``ValueError`` naming the offending value.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ertheory._validate import (
    MAX_EXACT_INT,
    as_float_array,
    check_density,
    check_open_unit,
    check_positive,
    check_positive_int,
)
from ertheory.jsonio import to_jsonable

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
Recursion = Literal["integer", "real"]

#: Largest coverage factor we turn into an integer number of copies.
_MAX_Q = 2.0**40
#: Largest source width returned: exact in float64 and int64, and sums over layers cannot overflow int64.
MAX_WIDTH = MAX_EXACT_INT
#: Relative slack of the ceiling that turns real bounds into whole copies (far above float rounding of the logs).
_CEIL_RTOL = 1e-12


class _JSONFields:
    """Mixin of the result dataclasses: :meth:`as_dict`."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict: the fields in order, numpy arrays as nested lists.

        A value beyond the float range (Theorem 2.5's ``rho`` for huge targets; its logarithm is recorded
        too) becomes ``None``.
        """
        return {f.name: _finite_or_none(to_jsonable(getattr(self, f.name))) for f in fields(self)}  # type: ignore[arg-type]


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    return obj


@dataclass(frozen=True)
class WidthBound(_JSONFields):
    """Coverage factors and source widths that a theorem asks for.

    ``q`` holds the real-valued factors ``q_l`` (``l = 0..L``, ``q_L = 1``), ``q_int`` the integer copies
    actually used (``ceil(q)``), ``widths`` the source widths ``n_{S,l} = q_int_l * n_{T,l}``; all three have
    shape ``(..., L + 1)``.  ``inputs`` records the arguments (and derived quantities) of the call.
    """

    theorem: str
    q: FloatArray
    q_int: IntArray
    widths: IntArray
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LowerBound(_JSONFields):
    """Theorem 2.3: hidden widths below which a one-hidden-layer ER source fails (see :func:`theorem_2_3`).

    ``paper_bound`` is the stated threshold, ``proof_bound`` the sharper one its proof reaches; the
    ``*_width`` fields are the smallest integer widths the corresponding bound does not exclude.
    """

    paper_bound: FloatArray
    proof_bound: FloatArray
    paper_width: IntArray
    proof_width: IntArray
    inputs: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------------
# helpers


def width_factor(density: ArrayLike) -> FloatArray:
    """The width factor ``1 / log(1 / (1 - p))`` of the paper (Theorems 2.1-2.5); 0 at ``p = 1`` (dense).

    Since ``1 - p`` is the sparsity this equals ``1 / log(1 / sparsity)`` (the abstract's form); it behaves
    like ``1 / p`` as ``p -> 0`` (checked symbolically in ``ertheory.symbolic``).  Computed as
    ``-1 / log1p(-p)``, accurate for tiny ``p``.
    """
    p = check_density(density)
    with np.errstate(divide="ignore", over="ignore"):  # p = 1 gives 0; a denormal p gives inf (refused later)
        out: FloatArray = -1.0 / np.log1p(-p)
    return out


def _proof_width_factor(density: FloatArray) -> FloatArray:
    """``1 / log(1 / (1 - p^2))``: the factor of the sharper bound in the proof of Theorem 2.3."""
    with np.errstate(divide="ignore", over="ignore", under="ignore"):
        out: FloatArray = -1.0 / np.log1p(-np.square(density))
    return out


def _per_layer(value: ArrayLike, n_layers: int, name: str, arr: FloatArray | None = None) -> FloatArray:
    """``value`` (already validated as ``arr``) with a trailing layer axis of length ``n_layers``."""
    a = as_float_array(value, name) if arr is None else arr
    if a.ndim == 0:
        a = a[None]
    if a.shape[-1] not in (1, n_layers):
        shown = np.asarray(value).tolist()
        raise ValueError(f"{name} needs a trailing layer axis of length 1 or {n_layers}, got shape {a.shape}: {shown}")
    return np.broadcast_to(a, a.shape[:-1] + (n_layers,))


def _layer_widths(target_widths: ArrayLike, name: str) -> IntArray:
    n = check_positive_int(target_widths, name)
    if n.ndim != 1 or n.size < 2:
        raise ValueError(f"{name} must list at least two widths (n_0, ..., n_L), got {target_widths!r}")
    return n


def _check_m_T(m_T: ArrayLike | None, dense: FloatArray, name: str = "m_T") -> FloatArray:
    """Non-zero counts of the target layers (default: dense layers); at most the dense count."""
    L = dense.size
    if m_T is None:
        return dense
    m = check_positive_int(m_T, name)
    m_f = _per_layer(m_T, L, name, m.astype(np.float64))
    too_many = m_f > dense
    if too_many.any():
        raise ValueError(f"{name} counts more non-zeros than the dense layer holds, got {m_f[too_many].flat[0]!r}")
    return m_f


def _to_int(q: FloatArray, advice: str) -> IntArray:
    """``ceil(q)``, with a relative tolerance ``_CEIL_RTOL`` so that a bound equal to an integer up to
    floating-point rounding (e.g. ``q_1 = log(2.56e6) / log(40) = 4``) is not bumped to the next integer.

    ``q`` above 2**40 (or NaN) is refused with ``advice`` (what to change)."""
    big = ~(q <= _MAX_Q)  # NaN counts as too large
    if big.any():
        raise ValueError(
            f"the bound gives a coverage factor q = {float(q[big].flat[0]):.6g}, too large for integer widths "
            f"(at most 2**40); {advice}"
        )
    return np.ceil(q * (1.0 - _CEIL_RTOL)).astype(np.int64)


def _source_widths(q_int: IntArray, n_T: IntArray) -> IntArray:
    """``n_{S,l} = q_int_l * n_{T,l}``, exact; refused when a width exceeds :data:`MAX_WIDTH` (never wrapped)."""
    q_b, n_b = np.broadcast_arrays(q_int, n_T)
    over = q_b.astype(np.float64) * n_b.astype(np.float64) > MAX_WIDTH
    if not over.any():
        widths: IntArray = q_b * n_b  # exact: every product is at most 2**53 (up to float rounding)
        over = widths > MAX_WIDTH
        if not over.any():
            return widths
    q_k, n_k = int(q_b[over].flat[0]), int(n_b[over].flat[0])
    raise ValueError(
        f"source width ceil(q_l) * n_T,l = {q_k} * {n_k} = {q_k * n_k} exceeds the largest representable width "
        f"2**53 = {MAX_WIDTH}; use a smaller target or a larger density"
    )


def _backward_recursion(
    factor: FloatArray, log_coeff: FloatArray, delta: FloatArray, recursion: Recursion
) -> tuple[FloatArray, IntArray]:
    """``q_L = 1`` and, for ``l = L-1..0``, ``q_l = max(1, factor_l * log(log_coeff_l * q_{l+1} / delta))``.

    ``factor`` and ``log_coeff`` have shape ``(..., L)`` (entry ``l`` belongs to source layer ``l + 1``);
    ``delta`` broadcasts against their leading axes.  ``recursion`` says which ``q_{l+1}`` is fed back.
    """
    if recursion not in ("integer", "real"):
        raise ValueError(f"recursion must be 'integer' or 'real', got {recursion!r}")
    L = factor.shape[-1]
    batch = np.broadcast_shapes(factor.shape[:-1], log_coeff.shape[:-1], delta.shape)
    factor = np.broadcast_to(factor, batch + (L,))
    log_coeff = np.broadcast_to(log_coeff, batch + (L,))
    delta = np.broadcast_to(delta, batch)
    q = np.ones(batch + (L + 1,), dtype=np.float64)
    q_int = np.ones(batch + (L + 1,), dtype=np.int64)
    for l in range(L - 1, -1, -1):
        feed = q_int[..., l + 1] if recursion == "integer" else q[..., l + 1]
        log_arg = np.log(log_coeff[..., l]) + np.log(feed) - np.log(delta)  # no overflow for tiny delta
        with np.errstate(over="ignore", invalid="ignore"):
            q[..., l] = np.maximum(1.0, factor[..., l] * log_arg)
        q_int[..., l] = _to_int(q[..., l], "use a larger density or delta")
    return q, q_int


def _depth_bound(
    theorem: str,
    n_T: IntArray,
    dense_m: FloatArray,
    density: ArrayLike,
    delta: ArrayLike,
    m_T: ArrayLike | None,
    recursion: Recursion,
    inputs: dict[str, Any],
) -> WidthBound:
    L = n_T.size - 1
    p = _per_layer(density, L, "density", check_density(density))
    dlt = check_open_unit(delta, "delta")
    m = _check_m_T(m_T, dense_m)
    factor = width_factor(p)
    q, q_int = _backward_recursion(factor, L * m, dlt, recursion)
    widths = _source_widths(q_int, n_T)
    m_record = m.astype(np.int64) if np.all(m <= MAX_EXACT_INT) else m  # counts beyond 2**53 stay floats
    record = dict(inputs, density=p, delta=dlt, m_T=m_record, recursion=recursion)
    return WidthBound(theorem, q, q_int, widths, record)


def _fc_depth_bound(
    theorem: str, n_T: IntArray, density: ArrayLike, delta: ArrayLike, m_T: ArrayLike | None, recursion: Recursion
) -> WidthBound:
    """:func:`_depth_bound` for a fully-connected target of widths ``n_T`` (dense counts ``n_{T,l} n_{T,l-1}``)."""
    n_f = n_T.astype(np.float64)  # products of widths up to 2**53 overflow int64
    dense_m = n_f[1:] * n_f[:-1]
    return _depth_bound(theorem, n_T, dense_m, density, delta, m_T, recursion, {"target_widths": n_T})


# ----------------------------------------------------------------------------------------------------------------
# exact representation: Theorems 2.1, 2.2 (= A.4), A.5


def theorem_2_2(
    target_widths: ArrayLike,
    density: ArrayLike,
    delta: ArrayLike,
    m_T: ArrayLike | None = None,
    *,
    recursion: Recursion = "integer",
) -> WidthBound:
    """Theorem 2.2 (= A.4): an ER source of depth ``L + 1`` that contains a depth-``L`` fully-connected target.

    ``target_widths = (d = n_{T,0}, n_{T,1}, ..., n_{T,L})``.  With probability at least ``1 - delta`` the
    source with widths ``n_{S,0} = q_0 d``, ``n_{S,l} = q_l n_{T,l}`` contains a subnetwork equal to the target if

        q_l >= log(L * m_{T,l+1} * q_{l+1} / delta) / log(1 / (1 - p_{l+1})),   l = 0..L-1,   q_L = 1,

    where ``m_{T,l}`` counts the non-zero target weights of layer ``l`` (default: dense, ``n_{T,l} n_{T,l-1}``).
    The proof asks every layer to be realisable with probability ``(1 - delta)^(1/L)``; layer ``l`` is
    realisable with probability ``(1 - (1 - p_l)^{q_{l-1}})^{m_{T,l} q_l}``.

    The recursion runs backwards from ``q_L = 1``.  With ``recursion="integer"`` (default) the whole number
    of copies ``ceil(q_{l+1})`` that the source really has is fed into ``q_l``: then the integer widths are
    guaranteed, because layer ``l + 1`` of the built source has ``m_{T,l+1} * ceil(q_{l+1})`` target edges to
    cover, which is the count the bound for ``q_l`` was computed with.  ``recursion="real"`` feeds the real
    ``q_{l+1}``: the theorem read literally over the reals (its ``q`` never exceeds the integer recursion's).
    Every ``q_l`` is at least 1 (one copy per target neuron); at ``p = 1`` the bound gives ``q = 1``.
    """
    n_T = _layer_widths(target_widths, "target_widths")
    return _fc_depth_bound("2.2", n_T, density, delta, m_T, recursion)


def theorem_2_1(
    d: int,
    n_hidden: int,
    n_out: int,
    density: ArrayLike,
    delta: ArrayLike,
    m_T: ArrayLike | None = None,
    *,
    recursion: Recursion = "integer",
) -> WidthBound:
    """Theorem 2.1 (= A.3): a one-hidden-layer target ``W2 relu(W1 x + b1) + b2`` inside a 2+1-layer ER source.

    Source widths ``n_{S,0} = q_0 d``, ``n_{S,1} = q_1 n_{T,1}``, ``n_{S,2} = q_2 n_{T,2}`` with

        q_0 >= log(2 m_{T,1} q_1 / delta) / log(1 / (1 - p_1)),
        q_1 >= log(2 m_{T,2} / delta) / log(1 / (1 - p_2)),       q_2 = 1,

    suffice with probability at least ``1 - delta``.  This is Theorem 2.2 with ``L = 2`` (its constant
    ``L m q / delta`` is ``2 m q / delta``); ``recursion`` is as there (for ``q_0`` the integer ``ceil(q_1)``
    is fed in by default).  ``density`` is ``(p_1, p_2)`` or a scalar; ``m_T = (m_{T,1}, m_{T,2})`` defaults to
    the dense counts ``(n_hidden * d, n_out * n_hidden)``.
    """
    n_T = _layer_widths([d, n_hidden, n_out], "(d, n_hidden, n_out)")
    return _fc_depth_bound("2.1", n_T, density, delta, m_T, recursion)


def theorem_a5(
    channels: ArrayLike,
    kernel_areas: ArrayLike,
    density: ArrayLike,
    delta: ArrayLike,
    m_T: ArrayLike | None = None,
    *,
    recursion: Recursion = "integer",
) -> WidthBound:
    """Theorem A.5: an ER source of depth ``L + 1`` that contains a depth-``L`` convolutional target.

    ``channels = (c_0, ..., c_L)`` (``c_0``: input channels), ``kernel_areas = (k_1, ..., k_L)`` with
    ``k_l = k'_{1,l} k'_{2,l}``.  The condition is that of Theorem 2.2,
    ``q_l >= log(L m_{T,l+1} q_{l+1} / delta) / log(1 / (1 - p_{l+1}))``, ``q_L = 1``, where ``m_{T,l}`` is the
    number of non-zeros of the ``c_l x c_{l-1} x k_l`` target tensor (default ``c_l c_{l-1} k_l``).  The source
    has ``q_l c_l`` channels in layer ``l``; ``widths`` holds these channel counts.
    """
    c = _layer_widths(channels, "channels")
    k = check_positive_int(kernel_areas, "kernel_areas")
    if k.ndim != 1 or k.size != c.size - 1:
        raise ValueError(f"kernel_areas needs one entry per layer ({c.size - 1}), got {kernel_areas!r}")
    c_f = c.astype(np.float64)
    dense_m = c_f[1:] * c_f[:-1] * k
    return _depth_bound("A.5", c, dense_m, density, delta, m_T, recursion, {"channels": c, "kernel_areas": k})


# ----------------------------------------------------------------------------------------------------------------
# lower bound: Theorem 2.3 (= A.6)


def theorem_2_3(d: ArrayLike, density: ArrayLike, delta: ArrayLike) -> LowerBound:
    """Theorem 2.3 (= A.6): widths a one-hidden-layer ER(p) source needs for some univariate targets.

    There are targets ``relu(w^T x + b)`` on ``d`` inputs that a source with ``n_{S,1}`` hidden neurons cannot
    represent with probability at least ``1 - delta`` if ``n_{S,1}`` is below

    * the stated bound (``paper_bound``): ``log(1 / (1 - (1 - delta)^(1/d))) / log(1 / (1 - p))``;
    * the bound the proof reaches (``proof_bound``): ``log(1 / (1 - (1 - delta)^(1/d))) / log(1 / (1 - p^2))``,
      from paths input -> hidden -> output existing with probability ``p^2``; it is the larger one.

    ``paper_width``/``proof_width`` are the smallest integer widths not excluded, ``max(1, ceil(bound))``.
    ``1 - (1 - delta)^(1/d)`` is computed as ``-expm1(log1p(-delta) / d)``.  All inputs broadcast (uniform
    density ``p``, no layer axis).
    """
    d_arr = check_positive_int(d, "d").astype(np.float64)
    p = check_density(density)
    dlt = check_open_unit(delta, "delta")
    x = np.log1p(-dlt) / d_arr
    tiny = x > -1e-300  # 1 - (1 - delta)^(1/d) ~ delta / d below float range: use the logarithm directly
    with np.errstate(divide="ignore"):
        log_term = np.where(tiny, np.log(d_arr) - np.log(dlt), -np.log(-np.expm1(np.where(tiny, -1.0, x))))
    with np.errstate(over="ignore"):
        paper = width_factor(p) * log_term
        proof = _proof_width_factor(p) * log_term
    return LowerBound(
        paper_bound=paper,
        proof_bound=proof,
        paper_width=np.maximum(1, _to_int(paper, "use a larger density or delta")),
        proof_width=np.maximum(1, _to_int(proof, "use a larger density or delta")),
        inputs={"d": d_arr.astype(np.int64), "density": p, "delta": dlt},
    )


# ----------------------------------------------------------------------------------------------------------------
# strong lottery tickets: Lemma 2.4 (= A.1), equation (3), Theorem 2.5 (= A.2)

LemmaForm = Literal["stated", "uniform"]


def lemma_2_4(
    density: ArrayLike, epsilon: ArrayLike, delta: ArrayLike, C: float = 1.0, form: LemmaForm = "stated"
) -> FloatArray:
    """Lemma 2.4 (= A.1), equation (1): how many ER-masked uniform variables approximate any ``z`` in [-1, 1].

    With ``n`` variables ``X_i ~ U[-1, 1]`` kept independently with probability ``p``, some subset sums to
    within ``epsilon`` of any ``z`` with probability at least ``1 - delta`` provided

        n >= C / log(1 / (1 - p)) * log(1 / min(delta, epsilon))          (form="stated", eq. (1))

    for a generic constant ``C`` (``C_1`` in the paper; default 1).  The last step of the proof is not uniform
    in ``p``: as ``p -> 1`` eq. (1) tends to 0 although a dense set still needs ``Theta(log 1/epsilon)``
    variables.  ``form="uniform"`` returns the safe ``C * max(1, 1 / log(1 / (1 - p))) * log(1 / min(delta,
    epsilon))`` instead.  Returns the real-valued ``n``; see :func:`lemma_2_4_width` for the integer.
    """
    p = check_density(density)
    eps = check_open_unit(epsilon, "epsilon")
    dlt = check_open_unit(delta, "delta")
    c = float(check_positive(C, "C"))
    factor = width_factor(p)
    if form == "uniform":
        factor = np.maximum(1.0, factor)
    elif form != "stated":
        raise ValueError(f"form must be 'stated' or 'uniform', got {form!r}")
    with np.errstate(over="ignore"):
        out: FloatArray = c * factor * -np.log(np.minimum(dlt, eps))
    return out


def lemma_2_4_width(
    density: ArrayLike, epsilon: ArrayLike, delta: ArrayLike, C: float = 1.0, form: LemmaForm = "stated"
) -> IntArray:
    """The integer ``n`` of Lemma 2.4: ``max(1, ceil(lemma_2_4(...)))``."""
    advice = "use a larger density, epsilon or delta, or a smaller C"
    return np.maximum(1, _to_int(lemma_2_4(density, epsilon, delta, C, form), advice))


def epsilon_l(epsilon: ArrayLike, weight_norms: ArrayLike, B: ArrayLike, n_out: int) -> FloatArray:
    """Per-layer tolerances ``epsilon_l`` of equation (3) (after Burkholz 2022b, Lemma 5.1), ``l = 1..L``.

        epsilon_l = epsilon / (n_{T,L} L) * [(1 + B_{l-1}) (1 + epsilon/L)^(L-1)
                                             * prod_{k=l+1..L} (||W_T^(k)||_inf + epsilon/L)]^(-1)

    ``weight_norms = (||W^(1)||_inf, ..., ||W^(L)||_inf)`` (induced max-row-sum norms), ``B = (B_0, ...,
    B_{L-1})`` with ``B_l = sup_{x in D} ||x_T^(l)||_1``, ``n_out = n_{T,L}``.  The printed equation places the
    bracket's inverse inside a denominator, which would make the tolerance *grow* with the downstream weight
    norms; this implements the corrected placement (the inverse bracket multiplies ``epsilon / (n_{T,L} L)``).
    Trailing axes of ``weight_norms``/``B`` are the layers; leading axes broadcast against ``epsilon``.
    """
    eps = check_open_unit(epsilon, "epsilon")
    w = as_float_array(weight_norms, "weight_norms")
    if w.ndim == 0:
        raise ValueError(f"weight_norms needs one entry per layer, got {weight_norms!r}")
    L = w.shape[-1]
    b = _per_layer(B, L, "B")
    for arr, name in ((w, "weight_norms"), (b, "B")):
        neg = arr < 0
        if neg.any():
            raise ValueError(f"{name} must be non-negative, got {arr[neg].flat[0]!r}")
    n = float(check_positive_int(n_out, "n_out"))
    e = eps[..., None] / L
    downstream = np.cumprod((w + e)[..., ::-1], axis=-1)[..., ::-1]  # prod_{k >= l}
    tail = np.concatenate([downstream[..., 1:], np.ones_like(downstream[..., :1])], axis=-1)  # prod_{k > l}
    with np.errstate(over="ignore"):
        bracket = (1.0 + b) * (1.0 + e) ** (L - 1) * tail
    out: FloatArray = eps[..., None] / (n * L) / bracket
    return out


def theorem_2_5(
    target_widths: ArrayLike,
    density: ArrayLike,
    delta: ArrayLike,
    epsilon_l: ArrayLike,
    C: float = 1.0,
    gamma: float = 0.1,
) -> WidthBound:
    """Theorem 2.5 (= A.2): widths of an ER source of depth ``L + 1`` that contains a strong lottery ticket.

    With ``target_widths = (d, n_{T,1}, ..., n_{T,L})``, per-layer tolerances ``epsilon_l = (eps_1..eps_L)``
    (e.g. from :func:`epsilon_l`, eq. (3)) and a generic constant ``C`` (default 1), with probability at least
    ``1 - delta`` some subnetwork approximates the target to ``epsilon`` on every output if

        n_{S,l} >= C n_{T,l} / log(1 / (1 - p_{l+1})) * log(1 / min(eps_{l+1}, delta / rho)),  l = 0..L-1,
        rho = C N_T^(1+gamma) / log(1 / (1 - min_l p_l))^(1+gamma) * log(1 / min(min_l eps_l, delta)),

    with ``N_T = sum_l n_{T,l} n_{T,l-1}`` and ``n_{S,L} = n_{T,L}``.  The printed statement is garbled in
    places; these readings are used:

    (a) ``n_{S,0}`` has the fraction form ``C d / log(1/(1-p_1)) * log(...)`` (not an exponent of ``d``);
    (b) ``N_l = n_{T,l} n_{T,l-1}`` (not ``n_{T,L} n_{T,L-1}``);
    (c) layer ``l`` pairs ``p_{l+1}`` with ``eps_{l+1}``, as the proof does (so ``n_{S,0}`` uses ``eps_1``);
    (d) the exponent ``1 + gamma`` applies to ``log(1/(1 - min p))`` only, and ``gamma > 0``: with
        ``gamma = 0`` the self-consistency condition on ``rho`` fails for large ``N_T``;
    (e) flow from every input through layer 0 is assumed (no correction for disconnected neurons).

    ``rho`` counts subset-sum problems in a union bound, so it is taken to be at least 1; it is recorded in
    ``inputs["rho"]``.  As in Lemma 2.4, ``q_l >= 1`` (at ``p = 1`` the stated bound is 0).
    """
    n_T = _layer_widths(target_widths, "target_widths")
    L = n_T.size - 1
    p = _per_layer(density, L, "density", check_density(density))
    dlt = check_open_unit(delta, "delta")
    eps = _per_layer(epsilon_l, L, "epsilon_l", check_open_unit(epsilon_l, "epsilon_l"))
    c = float(check_positive(C, "C"))
    g = float(check_positive(gamma, "gamma"))
    n_f = n_T.astype(np.float64)
    N_T = float(np.sum(n_f[1:] * n_f[:-1]))
    batch = np.broadcast_shapes(p.shape[:-1], eps.shape[:-1], dlt.shape)
    p = np.broadcast_to(p, batch + (L,))
    eps = np.broadcast_to(eps, batch + (L,))
    dlt = np.broadcast_to(dlt, batch)
    wf_min = width_factor(p.min(axis=-1))
    # rho and 1 / min(eps, delta / rho) in logarithms: rho itself may exceed the float range
    with np.errstate(over="ignore", divide="ignore"):
        log_rho = (np.log(c) + (1.0 + g) * (np.log(N_T) + np.log(wf_min))
                   + np.log(-np.log(np.minimum(eps.min(axis=-1), dlt))))
        log_rho = np.maximum(log_rho, 0.0)
        log_inverse = np.maximum(-np.log(eps), (log_rho - np.log(dlt))[..., None])
        q = np.ones(batch + (L + 1,), dtype=np.float64)
        q[..., :L] = np.maximum(1.0, c * width_factor(p) * log_inverse)
        rho = np.exp(log_rho)
    q_int = _to_int(q, "use a larger density or delta, or a smaller C or gamma")
    widths = _source_widths(q_int, n_T)
    record = {"target_widths": n_T, "density": p, "delta": dlt, "epsilon_l": eps, "C": c, "gamma": g,
              "rho": np.where(np.isfinite(rho), rho, np.nan), "log_rho": log_rho}
    return WidthBound("2.5", q, q_int, widths, record)
