"""Strong lottery tickets inside ER networks (Theorem 2.5 = A.2), built explicitly for small targets.

Target: a two-layer ReLU network ``f_T(x) = W_2 phi(W_1 x + b_1) + b_2`` on the unit ball of ``R^d``.
Source: an ER network of depth ``L + 1 = 3`` (layers ``l = 0, 1, 2``) with weights and biases i.i.d. ``U[-1, 1]``
and Bernoulli(``p_l``) edge masks (biases are never ER-masked).  The construction picks a sub-mask ``S_P`` of the
ER mask (and a mask on the biases) -- no weight is changed -- following the proof (after Burkholz 2022b):

* **Layer 0** has ``d + 1`` blocks of ``q_0`` neurons.  A neuron ``k`` of block ``j < d`` keeps only its edge to
  input ``j`` (if the ER mask has it) and drops its bias, so it outputs ``phi(w_k x_j)``: ``w_k phi(x_j)`` when
  ``w_k > 0`` and ``|w_k| phi(-x_j)`` when ``w_k < 0``.  Block ``d`` provides constants: all inputs dropped,
  bias kept when positive, output ``b_k``.
* **Layer 1** has ``n_{T,1} + 1`` blocks of ``q_1`` neurons.  A copy ``i'`` of target neuron ``i`` approximates
  ``h_i = W_1[i] x + b_1[i]`` with ``x_j = phi(x_j) - phi(-x_j)``: for every input ``j`` one subset-sum problem
  over the products ``v_{i'k} w_k`` of the positive neurons of block ``j`` (target ``W_1[i, j]``) and one over
  ``v_{i'k} |w_k|`` of the negative ones (target ``-W_1[i, j]``), and one for the bias over ``v_{i'k} b_k`` of
  the constant block plus the copy's own bias (target ``b_1[i]``).  The last block again provides constants.
* **Layer 2** (output, width ``n_{T,2}``): for each output ``o`` and hidden ``i``, a subset of the copies of
  ``i`` whose weights sum to ``W_2[o, i]``, and for the bias a subset of {own bias, ``v_{oc} b_c`` of the
  constant block} summing to ``b_2[o]``.  Only copies chosen here are built in layer 1 (the proof's backward
  order).

Every subset is the exact best subset of :func:`ertheory.subsetsum.best_subset` among ``max_values`` of the
available candidates (see :func:`_solve`).  The construction succeeds when the rigorous a-posteriori bound on
the sup error over the unit ball,

    sum_i |e_{2,oi}| H_i + |e_{2,o}| + sum_i sum_{i' in I_oi} |v_{oi'}| E_{i'},
    H_i = max(0, ||W_1[i]||_2 + b_1[i]),  E_{i'} = ||(max(|e^+_{i'j}|, |e^-_{i'j}|))_j||_2 + |e^b_{i'}|

(``e`` the subset-sum errors; ``phi`` is 1-Lipschitz), is at most ``epsilon`` for every output.  The sup error
measured on a dense sample of the ball is reported beside it.  Widths: ``n_{S,0} = q_0 (d + 1)``,
``n_{S,1} = q_1 (n_{T,1} + 1)``, ``n_{S,2} = n_{T,2}``; compare with Theorem 2.5's widths
(:func:`theorem_widths`, from :func:`ertheory.bounds.theorem_2_5` with eq. (3)'s ``epsilon_l``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ertheory._validate import as_float_array, check_density, check_memory, check_positive, check_positive_int
from ertheory.subsetsum import best_subset

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class TargetMLP:
    """``f_T(x) = W2 phi(W1 x + b1) + b2`` with ``W1: (n1, d)``, ``W2: (n2, n1)``."""

    W1: FloatArray
    b1: FloatArray
    W2: FloatArray
    b2: FloatArray

    def __post_init__(self) -> None:
        n1, d = np.shape(self.W1)
        if np.shape(self.b1) != (n1,) or np.shape(self.W2)[1:] != (n1,) or np.shape(self.b2) != np.shape(self.W2)[:1]:
            raise ValueError(
                f"inconsistent target shapes W1={np.shape(self.W1)}, b1={np.shape(self.b1)}, "
                f"W2={np.shape(self.W2)}, b2={np.shape(self.b2)}"
            )
        for name in ("W1", "b1", "W2", "b2"):
            as_float_array(getattr(self, name), name)

    @property
    def widths(self) -> tuple[int, int, int]:
        """``(d, n_{T,1}, n_{T,2})``."""
        return int(self.W1.shape[1]), int(self.W1.shape[0]), int(self.W2.shape[0])

    def __call__(self, x: ArrayLike) -> FloatArray:
        xx = np.asarray(x, dtype=np.float64)
        out: FloatArray = np.maximum(xx @ self.W1.T + self.b1, 0.0) @ self.W2.T + self.b2
        return out


def random_target(d: int, hidden: int, out: int, rng: np.random.Generator, scale: float = 1.0) -> TargetMLP:
    """A target with entries i.i.d. ``U[-scale, scale]`` (``scale <= 1`` keeps every subset-sum target in [-1, 1])."""
    dd, hh, oo = (int(v) for v in check_positive_int([d, hidden, out], "d, hidden, out"))
    s = float(check_positive(scale, "scale"))

    def u(*shape: int) -> FloatArray:
        return rng.uniform(-s, s, size=shape)

    return TargetMLP(W1=u(hh, dd), b1=u(hh), W2=u(oo, hh), b2=u(oo))


@dataclass(frozen=True)
class SourceNetwork:
    """An ER source of depth 3: ``weights[l]`` of shape ``(n_{S,l}, n_{S,l-1})`` (``n_{S,-1} = d``), ``biases[l]``,
    the ER edge masks ``er_masks[l]`` and the block sizes ``q = (q_0, q_1)``."""

    weights: tuple[FloatArray, FloatArray, FloatArray]
    biases: tuple[FloatArray, FloatArray, FloatArray]
    er_masks: tuple[BoolArray, BoolArray, BoolArray]
    q: tuple[int, int]
    density: tuple[float, float, float]

    @property
    def widths(self) -> tuple[int, int, int]:
        return tuple(int(w.shape[0]) for w in self.weights)  # type: ignore[return-value]


#: Bytes per weight entry of a source over one construction: the float64 weights, the float64 uniforms
#: drawn for the mask, the ER mask and the chosen sub-mask (bool), and two float64 copies in the forward pass.
_BYTES_PER_WEIGHT = 8 + 8 + 1 + 1 + 16
#: Points of the unit ball on which :func:`construct_slt` measures the sup error by default.
SAMPLE_POINTS = 4000


def source_memory(
    target_widths: ArrayLike, q0: int, q1: int, points: int = SAMPLE_POINTS, max_values: int = 40
) -> float:
    """An upper bound (bytes) on the peak memory of :func:`random_source` plus :func:`construct_slt`.

    The weights of the three layers (``_BYTES_PER_WEIGHT`` each) plus three float64 copies of the sample
    activations of the neurons the ticket can use: at most ``max_values`` candidates per subset-sum problem
    decide how many copies of layer 1 (and, per copy, neurons of layer 0) are kept.  Exact Python integers:
    no overflow for huge ``q``.
    """
    d, n1, n2 = (int(v) for v in check_positive_int(target_widths, "target_widths"))
    qq0, qq1 = (int(v) for v in check_positive_int([q0, q1], "q0, q1"))
    w0, w1 = qq0 * (d + 1), qq1 * (n1 + 1)
    entries = w0 * d + w1 * w0 + n2 * w1
    used1 = min(w1, n2 * (n1 + 1) * int(max_values))
    used0 = min(w0, used1 * (2 * d + 1) * int(max_values))
    samples = int(points) + 2 * d + 1 + (41 * 181 if d == 2 else 0)
    return float(_BYTES_PER_WEIGHT * entries + 3 * 8 * samples * max(used0, used1, n2))


def random_source(
    target_widths: tuple[int, int, int],
    q0: int,
    q1: int,
    density: ArrayLike,
    rng: np.random.Generator,
    *,
    max_memory: float | None = None,
) -> SourceNetwork:
    """The ER source for a target of widths ``(d, n_{T,1}, n_{T,2})``: U[-1, 1] weights/biases, ER masks.

    ``density`` is one ``p`` for every layer or ``(p_0, p_1, p_2)``.  A source whose construction would need
    more than ``max_memory`` bytes (default 4 GiB; its weights, see :func:`source_memory`) is refused before
    allocation.
    """
    d, n1, n2 = (int(v) for v in check_positive_int(target_widths, "target_widths"))
    qq0, qq1 = (int(v) for v in check_positive_int([q0, q1], "q0, q1"))
    weights_only = source_memory((d, n1, n2), qq0, qq1, points=0, max_values=0)
    check_memory(weights_only, f"an ER source with block sizes q0={qq0}, q1={qq1}", max_memory)
    p = np.broadcast_to(check_density(density), (3,)) if np.ndim(density) == 0 else check_density(density)
    if p.shape != (3,):
        raise ValueError(f"density must be one value or three (p_0, p_1, p_2), got {density!r}")
    widths = (qq0 * (d + 1), qq1 * (n1 + 1), n2)
    fan_in = (d, widths[0], widths[1])
    weights = tuple(rng.uniform(-1.0, 1.0, size=(w, f)) for w, f in zip(widths, fan_in, strict=True))
    biases = tuple(rng.uniform(-1.0, 1.0, size=w) for w in widths)
    masks = tuple(rng.random((w, f)) < pl for w, f, pl in zip(widths, fan_in, p, strict=True))
    return SourceNetwork(
        weights=weights,  # type: ignore[arg-type]
        biases=biases,  # type: ignore[arg-type]
        er_masks=masks,
        q=(qq0, qq1),
        density=(float(p[0]), float(p[1]), float(p[2])),
    )


def masked_forward(
    source: SourceNetwork, weight_masks: tuple[BoolArray, ...], bias_masks: tuple[BoolArray, ...], x: ArrayLike
) -> FloatArray:
    """The subnetwork ``f_S(x; W * S_P)``: ReLU after layers 0 and 1, linear output layer.

    Neurons whose incoming weights and bias are all masked output ``phi(0) = 0`` and are skipped.
    """
    h = np.asarray(x, dtype=np.float64)
    last = len(source.weights) - 1
    cols = np.arange(h.shape[-1])
    for layer, (w, b, mw, mb) in enumerate(zip(source.weights, source.biases, weight_masks, bias_masks, strict=True)):
        rows = np.arange(w.shape[0]) if layer == last else np.flatnonzero(mw.any(axis=1) | mb)
        wm = (w * mw)[np.ix_(rows, cols)]
        h = h @ wm.T + (b * mb)[rows]
        if layer < last:
            h = np.maximum(h, 0.0)
        cols = rows
    return h


def unit_ball_sample(d: int, n: int, rng: np.random.Generator) -> FloatArray:
    """``n`` points of the closed unit ball of ``R^d``: uniform inside, plus the vertices ``+-e_j`` and, in 2-D, a
    fine polar grid (the ReLU kinks make the sup sit anywhere)."""
    g = rng.standard_normal((n, d))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    pts = [g * rng.random((n, 1)) ** (1.0 / d), g, np.eye(d), -np.eye(d), np.zeros((1, d))]
    if d == 2:
        r, t = np.meshgrid(np.linspace(0.0, 1.0, 41), np.linspace(0.0, 2 * np.pi, 181))
        pts.append(np.stack([(r * np.cos(t)).ravel(), (r * np.sin(t)).ravel()], axis=-1))
    return np.concatenate(pts, axis=0)


@dataclass(frozen=True)
class SLTResult:
    """Outcome of :func:`construct_slt`.

    ``bound`` is the rigorous sup-error bound per output, ``sup_error`` the largest error on ``sample`` points.
    ``weight_masks``/``bias_masks`` are ``S_P`` (sub-masks of the ER masks / bias masks).  ``problems`` counts
    subset-sum problems solved and ``max_problem_error`` their largest error.
    """

    success: bool
    epsilon: float
    bound: FloatArray
    sup_error: float
    widths: tuple[int, int, int]
    q: tuple[int, int]
    weight_masks: tuple[BoolArray, BoolArray, BoolArray] = field(repr=False)
    bias_masks: tuple[BoolArray, BoolArray, BoolArray] = field(repr=False)
    problems: int = 0
    max_problem_error: float = 0.0
    kept_weights: int = 0


def _solve(values: FloatArray, target: float, max_values: int) -> tuple[NDArray[np.int64], float]:
    """Best subset (positions into ``values``) among ``max_values`` candidates; returns the positions and the
    signed error ``sum - target``.

    The candidates are the first ``max_values`` (the values are i.i.d., so these are a random choice); when their
    sums cannot reach the target (it lies outside [sum of negatives, sum of positives]) the candidates of largest
    magnitude are used instead.  Large-magnitude candidates are not the default: they favour subsets of many
    nearly cancelling terms, and each term of layer 2 carries the error of its layer-1 copy.
    """
    if values.size == 0:
        return np.zeros(0, dtype=np.int64), -target
    keep = np.arange(min(values.size, max_values))
    head = values[keep]
    if not head[head < 0].sum() <= target <= head[head > 0].sum():
        keep = np.sort(np.argsort(-np.abs(values), kind="stable")[:max_values])
    res = best_subset(values[keep], target)
    idx = keep[res.indices()]
    return idx, float(res.sums) - target


@dataclass
class _Ticket:
    """The sub-mask ``S_P`` while it is built (weight and bias masks, all False at first) and the errors of the
    subset-sum problems solved so far."""

    weight_masks: tuple[BoolArray, BoolArray, BoolArray]
    bias_masks: tuple[BoolArray, BoolArray, BoolArray]
    errors: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls, source: SourceNetwork) -> _Ticket:
        M0, M1, M2 = (np.zeros_like(e) for e in source.er_masks)
        mb0, mb1, mb2 = (np.zeros(b.shape, dtype=bool) for b in source.biases)
        return cls((M0, M1, M2), (mb0, mb1, mb2))


def _bias_subset(
    own_bias: float,
    w_row: FloatArray,
    er_row: BoolArray,
    prev_bias: FloatArray,
    const: NDArray[np.int64],
    target: float,
    max_values: int,
) -> tuple[bool, NDArray[np.int64], float]:
    """A neuron's bias: the subset of {its own bias, ``v_c b_c`` of the previous layer's constant block ``const``}
    closest to ``target``.  Returns whether the own bias is kept, the constant neurons chosen, and the error."""
    consts = const[er_row[const] & (prev_bias[const] > 0)]
    vals = np.concatenate([[own_bias], w_row[consts] * prev_bias[consts]])
    idx, e = _solve(vals, target, max_values)
    return bool(np.any(idx == 0)), consts[idx[idx > 0] - 1], e


def _output_layer(
    target: TargetMLP, source: SourceNetwork, ticket: _Ticket, max_values: int
) -> tuple[list[list[NDArray[np.int64]]], FloatArray, FloatArray]:
    """Layer 2: for each output ``o`` and hidden ``i`` the copies of ``i`` whose weights sum to ``W_2[o, i]``, and
    the output bias.  Returns the chosen copies ``chosen[o][i]`` and the errors ``e_{2,oi}`` and ``e_{2,o}``."""
    _, n1, n2 = target.widths
    q1 = source.q[1]
    W2s, E2, b1s, b2s = source.weights[2], source.er_masks[2], source.biases[1], source.biases[2]
    M2 = ticket.weight_masks[2]
    _, mb1, mb2 = ticket.bias_masks
    const1 = np.arange(n1 * q1, (n1 + 1) * q1)
    err2 = np.zeros((n2, n1))
    err2b = np.zeros(n2)
    chosen: list[list[NDArray[np.int64]]] = []
    for o in range(n2):
        row = []
        for i in range(n1):
            block = np.arange(i * q1, (i + 1) * q1)
            avail = block[E2[o, block]]
            idx, e = _solve(W2s[o, avail], float(target.W2[o, i]), max_values)
            sel = avail[idx]
            M2[o, sel] = True
            err2[o, i] = e
            row.append(sel)
            ticket.errors.append(abs(e))
        chosen.append(row)
        mb2[o], sel, e = _bias_subset(b2s[o], W2s[o], E2[o], b1s, const1, float(target.b2[o]), max_values)
        M2[o, sel] = True
        mb1[sel] = True  # constant neurons: inputs dropped, positive bias kept
        err2b[o] = e
        ticket.errors.append(abs(e))
    return chosen, err2, err2b


def _hidden_copy(target: TargetMLP, source: SourceNetwork, ticket: _Ticket, i: int, c: int, max_values: int) -> float:
    """Layer 1: copy ``c`` of target neuron ``i`` approximates ``W_1[i] x + b_1[i]`` (two subset sums per input,
    one for the bias); returns its error bound ``E_c``."""
    d = target.widths[0]
    q0 = source.q[0]
    W0, W1s = source.weights[0], source.weights[1]
    E0, E1 = source.er_masks[0], source.er_masks[1]
    b0, b1s = source.biases[0], source.biases[1]
    M0, M1 = ticket.weight_masks[0], ticket.weight_masks[1]
    mb0, mb1 = ticket.bias_masks[0], ticket.bias_masks[1]
    e_pm = np.zeros((d, 2))
    for j in range(d):
        block = np.arange(j * q0, (j + 1) * q0)
        ok = E1[c, block] & E0[block, j]
        groups = ((W0[block, j] > 0, target.W1[i, j]), (W0[block, j] < 0, -target.W1[i, j]))
        for s, (sign_ok, tgt) in enumerate(groups):
            avail = block[ok & sign_ok]
            idx, e = _solve(W1s[c, avail] * np.abs(W0[avail, j]), float(tgt), max_values)
            sel = avail[idx]
            M1[c, sel] = True
            M0[sel, j] = True
            e_pm[j, s] = e
            ticket.errors.append(abs(e))
    const0 = np.arange(d * q0, (d + 1) * q0)
    mb1[c], sel, e = _bias_subset(b1s[c], W1s[c], E1[c], b0, const0, float(target.b1[i]), max_values)
    M1[c, sel] = True
    mb0[sel] = True
    ticket.errors.append(abs(e))
    return float(np.linalg.norm(np.abs(e_pm).max(axis=1))) + abs(e)


def _error_bound(
    target: TargetMLP,
    source: SourceNetwork,
    chosen: list[list[NDArray[np.int64]]],
    err2: FloatArray,
    err2b: FloatArray,
    E_copy: FloatArray,
) -> FloatArray:
    """The rigorous sup-error bound per output (module docstring)."""
    _, n1, n2 = target.widths
    W2s = source.weights[2]
    H = np.maximum(0.0, np.linalg.norm(target.W1, axis=1) + target.b1)
    bound: FloatArray = np.abs(err2) @ H + np.abs(err2b)
    for o in range(n2):
        for i in range(n1):
            sel = chosen[o][i]
            bound[o] += float(np.sum(np.abs(W2s[o, sel]) * E_copy[sel]))
    return bound


def construct_slt(
    target: TargetMLP,
    source: SourceNetwork,
    epsilon: float,
    *,
    max_values: int = 20,
    sample: ArrayLike | None = None,
    rng: np.random.Generator | None = None,
) -> SLTResult:
    """Build the strong lottery ticket of Theorem 2.5 for a two-layer target (see the module docstring).

    ``max_values`` caps the candidates per subset-sum problem (the exact solver's cost is ``2^(max_values/2)``).
    ``sample`` (points of the unit ball) defaults to :func:`unit_ball_sample` with 4000 points.
    """
    eps = float(check_positive(epsilon, "epsilon"))
    if int(max_values) != max_values or not 1 <= max_values <= 40:
        raise ValueError(f"max_values must be an integer in [1, 40], got {max_values!r}")
    d, n1, n2 = target.widths
    q0, q1 = source.q
    if source.widths != (q0 * (d + 1), q1 * (n1 + 1), n2) or source.weights[0].shape[1] != d:
        raise ValueError(f"source widths {source.widths} do not fit target widths {target.widths} with q={source.q}")
    ticket = _Ticket.empty(source)
    chosen, err2, err2b = _output_layer(target, source, ticket, max_values)
    # only the copies chosen in layer 2 are built (the proof's backward order)
    E_copy = np.zeros(source.biases[1].shape)
    for i in range(n1):
        for c in np.unique(np.concatenate([chosen[o][i] for o in range(n2)])):
            E_copy[c] = _hidden_copy(target, source, ticket, i, int(c), max_values)
    bound = _error_bound(target, source, chosen, err2, err2b, E_copy)
    if sample is None:
        sample = unit_ball_sample(d, SAMPLE_POINTS, rng if rng is not None else np.random.default_rng(0))
    pts = np.asarray(sample, dtype=np.float64)
    wm, bm = ticket.weight_masks, ticket.bias_masks
    sup = float(np.max(np.abs(masked_forward(source, wm, bm, pts) - target(pts))))
    errors = ticket.errors
    return SLTResult(
        success=bool(np.all(bound <= eps)),
        epsilon=eps,
        bound=bound,
        sup_error=sup,
        widths=source.widths,
        q=source.q,
        weight_masks=wm,
        bias_masks=bm,
        problems=len(errors),
        max_problem_error=max(errors) if errors else 0.0,
        kept_weights=int(sum(int(m.sum()) for m in wm)),
    )


def theorem_widths(
    target: TargetMLP, density: float, delta: float, epsilon: float, C: float = 1.0
) -> tuple[int, int, int]:
    """Theorem 2.5's source widths ``(n_{S,0}, n_{S,1}, n_{S,2})`` for this target on the unit ball.

    Uses eq. (3) for ``epsilon_l`` with ``||W||_inf`` the max-row-sum norms, ``B_0 = sup ||x||_1 = sqrt(d)`` and
    ``B_1 = sum_i H_i >= sup ||x^(1)||_1``; ``C`` is the theorem's generic constant.  ``epsilon`` (in (0, 1)) is
    checked by :func:`ertheory.bounds.epsilon_l`.
    """
    from ertheory import bounds

    d, n1, n2 = target.widths
    H = np.maximum(0.0, np.linalg.norm(target.W1, axis=1) + target.b1)
    norms = [float(np.abs(target.W1).sum(axis=1).max()), float(np.abs(target.W2).sum(axis=1).max())]
    eps_l = bounds.epsilon_l(epsilon, norms, [float(np.sqrt(d)), float(H.sum())], n2)
    wb = bounds.theorem_2_5([d, n1, n2], density, delta, eps_l, C=C)
    w = np.asarray(wb.widths).ravel()
    return int(w[0]), int(w[1]), int(w[2])


@dataclass(frozen=True)
class WidthSweep:
    """Success rate of :func:`construct_slt` over ``draws`` sources per (density, q) cell."""

    density: FloatArray
    q: NDArray[np.int64]
    success_rate: FloatArray
    widths_1: NDArray[np.int64]
    smallest_q: NDArray[np.int64]
    level: float
    draws: int


def width_sweep(
    target: TargetMLP,
    densities: ArrayLike,
    qs: ArrayLike,
    epsilon: float,
    *,
    disable: bool | None = None,
    draws: int = 10,
    seed: int = 0,
    level: float = 0.9,
    max_values: int = 20,
    max_memory: float | None = None,
    q0_factor: int = 2,
    density0: float = 1.0,
) -> WidthSweep:
    """Success rate against block size ``q`` (``q_1 = q``, ``q_0 = q0_factor * q``) for each density.

    ``densities`` are ``p_1 = p_2``; layer 0 has ``density0`` (default 1: the theorem assumes that every input
    reaches layer 0's blocks, DIGEST reading (e), and its bound for ``n_{S,0}`` involves ``p_1`` only).

    ``smallest_q[k]`` is the smallest ``q`` whose success rate is at least ``level`` (``-1`` if none).
    ``draws`` must be a positive integer; the largest source is checked against ``max_memory`` before any work.
    """
    from tqdm import tqdm

    p = check_density(densities).ravel()
    qq = check_positive_int(qs, "qs").ravel()
    draws = int(check_positive_int(draws, "draws"))
    q0_factor = int(check_positive_int(q0_factor, "q0_factor"))
    level = float(check_density(level, "level"))
    largest = int(qq.max())
    check_memory(source_memory(target.widths, q0_factor * largest, largest, 2000, max_values),
                 f"an ER source with block sizes q0={q0_factor * largest}, q1={largest}", max_memory)
    rng = np.random.default_rng(seed)
    rate = np.zeros((p.size, qq.size))
    total = p.size * qq.size * int(draws)
    sample = unit_ball_sample(target.widths[0], 2000, rng)
    with tqdm(total=total, disable=disable, desc="slt sweep", leave=False) as bar:
        for a, pa in enumerate(p):
            for b, qb in enumerate(qq):
                ok = 0
                for _ in range(int(draws)):
                    dens = (density0, float(pa), float(pa))
                    src = random_source(target.widths, int(q0_factor * qb), int(qb), dens, rng, max_memory=max_memory)
                    ok += construct_slt(target, src, epsilon, max_values=max_values, sample=sample).success
                    bar.update(1)
                rate[a, b] = ok / draws
    smallest = np.array([int(qq[np.argmax(r >= level)]) if np.any(r >= level) else -1 for r in rate], dtype=np.int64)
    return WidthSweep(
        density=p, q=qq, success_rate=rate, widths_1=qq * (target.widths[1] + 1), smallest_q=smallest,
        level=float(level), draws=int(draws),
    )
