"""Monte-Carlo checks of the edge-existence events of :mod:`ertheory.exact`, with exact confidence intervals.

Two samplers per event:

* **count samplers** draw only the binomial counts the event depends on (fast: a few binomials per trial);
* **mask samplers** draw the actual ER masks of every layer of the source, ``n_{S,l} x n_{S,l-1}`` (``x k_l``
  for convolutions) Bernoulli(p_l) entries, in row chunks of bounded memory, and check the event on them.

Layout of a source (as in :mod:`ertheory.construct`): layer ``l`` holds ``q_l`` copies of every target neuron
of layer ``l``, in contiguous blocks, so source neuron ``i' = i q_l + c`` (``c = 0..q_l-1``) is a copy of
target neuron ``i`` (the block ``{q_l (i-1)+1, ..., q_l i}`` of the paper, counted from 0).  The construction
layer ``l = 0`` holds ``q_0`` univariate copies of every input.

Every estimate is an :class:`MCEstimate` with a Clopper-Pearson interval; randomness comes from an explicit
``numpy.random.Generator`` (or an int seed).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ertheory import _special
from ertheory._validate import check_density, check_memory, check_open_unit, check_positive_int

BoolArray = NDArray[np.bool_]

#: Default memory budget of one chunk of mask entries (float32 uniforms plus booleans).
DEFAULT_CHUNK_BYTES = 64 * 2**20

#: Most trials one estimate may run (about a minute of the fastest sampler; larger requests are refused).
MAX_TRIALS = 10**9

#: Most random numbers one estimate may draw (trials times the draws of one trial: binomial counts, or mask
#: entries for the mask samplers); about 10-30 minutes on one core.  Larger requests are refused up front.
MAX_DRAWS = 10**11


def check_trials(trials: Any) -> int:
    """``trials`` as a positive integer at most :data:`MAX_TRIALS`, else ``ValueError``."""
    if isinstance(trials, (bool, np.bool_)) or not isinstance(trials, (int, np.integer)) or not 1 <= trials:
        raise ValueError(f"trials must be a positive integer, got {trials!r}")
    if trials > MAX_TRIALS:
        raise ValueError(f"trials={trials} is above the cap of {MAX_TRIALS:.0e} trials per estimate; ask for fewer")
    return int(trials)


def check_draws(trials: int, draws_per_trial: float, what: str) -> float:
    """Refuse a run of ``trials`` trials of ``draws_per_trial`` random numbers each above :data:`MAX_DRAWS`."""
    total = float(check_trials(trials)) * float(draws_per_trial)
    if not total <= MAX_DRAWS:
        raise ValueError(
            f"{what}: {trials} trials x {draws_per_trial:.3g} random draws = {total:.3g} draws, above the cap of "
            f"{MAX_DRAWS:.0e} per run (hours of work); ask for fewer trials or a smaller source"
        )
    return total


@dataclass(frozen=True)
class MCEstimate:
    """``successes`` out of ``trials``, the estimate and its exact (Clopper-Pearson) ``confidence`` interval."""

    successes: int
    trials: int
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the interval."""
        return self.ci_low <= value <= self.ci_high


def clopper_pearson(successes: ArrayLike, trials: ArrayLike, confidence: float = 0.95) -> tuple[Any, Any]:
    """Exact binomial confidence interval ``(low, high)`` (Clopper & Pearson 1934): the beta quantiles
    ``Beta(alpha/2; s, n - s + 1)`` and ``Beta(1 - alpha/2; s + 1, n - s)``, computed in numpy by
    :func:`ertheory._special.clopper_pearson` (no scipy import at start-up)."""
    conf = float(check_open_unit(confidence, "confidence"))
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if (n <= 0).any() or (s < 0).any() or (s > n).any() or (s != np.round(s)).any() or (n != np.round(n)).any():
        raise ValueError(f"need integers 0 <= successes <= trials and trials > 0, got {successes!r}, {trials!r}")
    return _special.clopper_pearson(s, n, conf)


def estimate(successes: int, trials: int, confidence: float = 0.95) -> MCEstimate:
    """An :class:`MCEstimate` from counts."""
    low, high = clopper_pearson(successes, trials, confidence)
    return MCEstimate(int(successes), int(trials), successes / trials, float(low), float(high), confidence)


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("pass a seed (int) or a numpy.random.Generator; randomness is never implicit")
    return np.random.default_rng(seed)


def _trial_batches(trials: int, batch: int, progress: bool, desc: str) -> Iterator[int]:
    n = check_trials(trials)
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm  # only for a terminal: the import costs start-up time

        bar = tqdm(total=n, desc=desc, file=sys.stderr, leave=False)
    done = 0
    while done < n:
        size = min(batch, n - done)
        yield size
        done += size
        if bar is not None:
            bar.update(size)
    if bar is not None:
        bar.close()


def _estimate_in_batches(
    hits_in: Callable[[int], int], trials: int, batch: int, progress: bool, desc: str, confidence: float
) -> MCEstimate:
    """Run ``trials`` trials in batches of at most ``batch``; ``hits_in(size)`` counts one batch's successes."""
    hits = 0
    for size in _trial_batches(trials, batch, progress, desc):
        hits += hits_in(size)
    return estimate(hits, int(trials), confidence)


def _lower_bound_args(d: int, n: int, density: float) -> tuple[int, int, float]:
    """Validated ``(d, n, density)`` of Theorem 2.3's setting."""
    return int(check_positive_int(d, "d")), int(check_positive_int(n, "n")), float(check_density(density))


#: Bytes per (trial, hidden neuron) of one batch of the tight count sampler: int64 counts, float64 miss
#: probabilities, int64 misses and the comparison.
_TIGHT_BYTES_PER_DRAW = 32


def count_tight_bytes(n_hidden: int, batch: int = 2**12) -> float:
    """Estimated peak memory (bytes) of :func:`count_sample_tight` for ``n_hidden`` hidden neurons."""
    eff = min(int(batch), max(1, DEFAULT_CHUNK_BYTES // (_TIGHT_BYTES_PER_DRAW * max(1, int(n_hidden)))))
    return float(eff) * n_hidden * _TIGHT_BYTES_PER_DRAW + 24.0 * n_hidden


def mask_sample_bytes(
    shapes: Sequence[tuple[int, int, int]], q: Sequence[int], chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> float:
    """Estimated peak memory (bytes) of :func:`mask_sample` *including* the target supports it is given.

    ``shapes[l-1] = (n_l, n_{l-1}, k_l)`` are the supports' shapes, ``q = (q_0, ..., q_L)``.  Per layer: the
    supports (one byte per target entry), the validity of every source row of the layer and of the one below,
    and one chunk of rows: 5 bytes per mask entry (float32 uniforms, then booleans) plus the rows' target
    pattern (two copies of ``n_{l-1} k_l`` bytes each) -- at least one row even when a row exceeds
    ``chunk_bytes``.
    """
    total = float(sum(float(a) * b * c for a, b, c in shapes))
    work = 0.0
    for l, (n_out, n_in, k) in enumerate(shapes):
        per_row = float(n_in) * q[l] * k
        chunk = max(1.0, float(chunk_bytes // max(1.0, per_row * 5)))
        rows = float(n_out) * q[l + 1]
        work = max(work, min(chunk, rows) * (per_row * 5 + 2.0 * n_in * k + 8) + rows + float(n_in) * q[l])
    return total + work


def mask_sample_draws(shapes: Sequence[tuple[int, int, int]], q: Sequence[int]) -> float:
    """Mask entries :func:`mask_sample` draws per trial: ``sum_l (q_l n_l) (q_{l-1} n_{l-1} k_l)``."""
    return float(sum(float(n_out) * q[l + 1] * n_in * q[l] * k for l, (n_out, n_in, k) in enumerate(shapes)))


def mask_lower_bound_bytes(d: int, n: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> float:
    """Estimated peak memory (bytes) of :func:`mask_sample_lower_bound`: a batch of trials of ``n (d + 1)``
    entries at 6 bytes each (float32 uniforms, the booleans and their conjunction), at least one trial."""
    per_trial = float(n) * (d + 1) * 5
    batch = max(1.0, float(chunk_bytes // max(1.0, per_trial)))
    return batch * float(n) * (d + 1) * 6


# ----------------------------------------------------------------------------------------------------------------
# count samplers


def count_sample_proof(
    q: ArrayLike,
    m_T: ArrayLike,
    density: ArrayLike,
    trials: int,
    seed: int | np.random.Generator | None,
    *,
    confidence: float = 0.95,
    batch: int = 2**18,
    progress: bool = True,
) -> MCEstimate:
    """The proof event of Theorems 2.1/2.2/A.5 from counts: per layer the number of uncovered (edge, copy) pairs.

    Layer ``l`` has ``m_{T,l} q_l`` (edge, copy) pairs, each uncovered independently with probability
    ``(1 - p_l)^{q_{l-1}}``; the event holds when every layer's count of uncovered pairs ``~ Binomial`` is 0.
    ``q`` is ``(q_0, ..., q_L)``, ``m_T`` and ``density`` have one entry per layer (or a scalar density).
    """
    qa = check_positive_int(q, "q").reshape(-1)
    m = check_positive_int(m_T, "m_T").reshape(-1)
    if qa.size != m.size + 1:
        raise ValueError(f"q needs one more entry than m_T, got q={q!r}, m_T={m_T!r}")
    p = np.broadcast_to(check_density(density), m.shape)
    check_draws(trials, m.size, "count sampler")
    rng = _rng(seed)
    pairs = m * qa[1:]
    miss = np.exp(qa[:-1] * np.log1p(-np.minimum(p, 1.0)))

    def hits_in(size: int) -> int:
        ok = np.ones(size, dtype=bool)
        for layer in range(m.size):
            ok &= rng.binomial(pairs[layer], miss[layer], size=size) == 0
        return int(ok.sum())

    return _estimate_in_batches(hits_in, trials, batch, progress, "count sampler", confidence)


def count_sample_tight(
    q0: int,
    q1: int,
    density_1: float,
    density_2: float,
    in_degree: ArrayLike,
    out_degree: ArrayLike,
    trials: int,
    seed: int | np.random.Generator | None,
    *,
    confidence: float = 0.95,
    batch: int = 2**12,
    progress: bool = True,
    max_memory: float | None = None,
) -> MCEstimate:
    """The tighter construction's event (depth-2 target) from counts.

    Per trial: the number of valid copies ``K_j ~ Binomial(q1, (1 - (1 - p_1)^{q0})^{in_degree[j]})`` of every
    hidden neuron, then the number of its outgoing target edges with no edge from a valid copy,
    ``~ Binomial(out_degree[j], (1 - p_2)^{K_j})``; success when all those are 0.  Trials run in batches of
    at most ``batch`` (fewer when ``batch x n_hidden`` draws would exceed :data:`DEFAULT_CHUNK_BYTES`); a run
    above :data:`MAX_DRAWS` draws or ``max_memory`` bytes (default 4 GiB) is refused before it starts.
    """
    q0i = int(check_positive_int(q0, "q0"))
    q1i = int(check_positive_int(q1, "q1"))
    p1 = float(check_density(density_1, "density_1"))
    p2 = float(check_density(density_2, "density_2"))
    ind = np.asarray(in_degree, dtype=np.int64).reshape(-1)
    outd = np.asarray(out_degree, dtype=np.int64).reshape(-1)
    if ind.shape != outd.shape or (ind < 0).any() or (outd < 0).any():
        raise ValueError(
            f"in_degree and out_degree must be equal-length non-negative, got {in_degree!r}, {out_degree!r}"
        )
    check_draws(trials, 2 * ind.size, "count sampler (tight)")
    # one batch holds a few (batch x n_hidden) arrays: keep them within DEFAULT_CHUNK_BYTES (unchanged for
    # n_hidden <= 512, where the default batch already fits)
    batch = min(int(batch), max(1, DEFAULT_CHUNK_BYTES // (_TIGHT_BYTES_PER_DRAW * max(1, ind.size))))
    check_memory(count_tight_bytes(ind.size, batch), "the tight count sampler", max_memory)
    rng = _rng(seed)
    r = (1.0 - (1.0 - p1) ** q0i) ** ind

    def hits_in(size: int) -> int:
        k = rng.binomial(q1i, np.broadcast_to(r, (size, r.size)))
        missed = rng.binomial(np.broadcast_to(outd, k.shape), (1.0 - p2) ** k)
        return int((missed == 0).all(axis=1).sum())

    return _estimate_in_batches(hits_in, trials, batch, progress, "count sampler (tight)", confidence)


def count_sample_lower_bound(
    d: int,
    n: int,
    density: float,
    trials: int,
    seed: int | np.random.Generator | None,
    *,
    confidence: float = 0.95,
    batch: int = 2**18,
    progress: bool = True,
) -> MCEstimate:
    """Theorem 2.3's event (every input has a path) from counts.

    ``K ~ Bin(n, p)`` hidden units reach the output; the inputs without a path number ``~ Bin(d, (1-p)^K)``.
    """
    dd, nn, p = _lower_bound_args(d, n, density)
    check_draws(trials, 2, "count sampler (lower bound)")
    rng = _rng(seed)

    def hits_in(size: int) -> int:
        k = rng.binomial(nn, p, size=size)
        return int((rng.binomial(dd, (1.0 - p) ** k) == 0).sum())

    return _estimate_in_batches(hits_in, trials, batch, progress, "count sampler (lower bound)", confidence)


# ----------------------------------------------------------------------------------------------------------------
# mask samplers


def dense_supports(target_widths: Sequence[int], kernel_areas: Sequence[int] | None = None) -> list[BoolArray]:
    """Supports (non-zero patterns) of a dense target: per layer a boolean ``(n_l, n_{l-1}, k_l)`` array."""
    n = [int(v) for v in check_positive_int(target_widths, "target_widths").reshape(-1)]
    if kernel_areas is None:
        k = [1] * (len(n) - 1)
    else:
        k = [int(v) for v in check_positive_int(kernel_areas, "kernel_areas").reshape(-1)]
    if len(n) < 2 or len(k) != len(n) - 1:
        raise ValueError(
            f"need widths (d, n_1, ..., n_L) and one kernel area per layer, got {target_widths!r}, {kernel_areas!r}"
        )
    return [np.ones((n[l + 1], n[l], k[l]), dtype=bool) for l in range(len(n) - 1)]


def supports_of(weights: Sequence[ArrayLike]) -> list[BoolArray]:
    """Supports of target weights: dense ``(n_l, n_{l-1})`` matrices or conv ``(c_l, c_{l-1}, kh, kw)`` tensors."""
    out = []
    for w in weights:
        a = np.asarray(w)
        out.append((a != 0).reshape(a.shape[0], a.shape[1], -1))
    return out


@dataclass(frozen=True)
class MaskSample:
    """Paired estimates from the same sampled masks: the proof event and the tighter construction's event."""

    proof: MCEstimate
    tight: MCEstimate

    def as_dict(self) -> dict[str, Any]:
        return {"proof": self.proof.as_dict(), "tight": self.tight.as_dict()}


def _layer_events(
    support: BoolArray,
    q_out: int,
    q_in: int,
    density: float,
    valid_in: BoolArray,
    rng: np.random.Generator,
    chunk_bytes: int,
) -> tuple[bool, BoolArray]:
    """Sample one layer's mask in row chunks; return (every row covered by the proof, valid rows)."""
    n_out, n_in, k = support.shape
    rows = n_out * q_out
    per_row = n_in * q_in * k * 5  # float32 uniform + bool
    chunk = max(1, chunk_bytes // per_row)
    valid = np.empty(rows, dtype=bool)
    proof_ok = True
    valid_blocks = valid_in.reshape(1, n_in, q_in, 1)
    for r0 in range(0, rows, chunk):
        r1 = min(rows, r0 + chunk)
        mask = rng.random((r1 - r0, n_in, q_in, k), dtype=np.float32) < np.float32(density)
        need = ~support[np.arange(r0, r1) // q_out]  # (rows, n_in, k): True where no target edge
        if proof_ok:
            proof_ok = bool((mask.any(axis=2) | need).all())
        mask &= valid_blocks
        valid[r0:r1] = (mask.any(axis=2) | need).all(axis=(1, 2))
    return proof_ok, valid


def mask_sample(
    supports: Sequence[BoolArray],
    q: ArrayLike,
    density: ArrayLike,
    trials: int,
    seed: int | np.random.Generator | None,
    *,
    confidence: float = 0.95,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool = True,
    max_memory: float | None = None,
) -> MaskSample:
    """Sample whole ER masks of the source and check both events on them (any depth, FC or conv).

    ``supports[l-1]`` is the target's non-zero pattern of layer ``l`` as a boolean ``(n_l, n_{l-1}, k_l)``
    array (see :func:`dense_supports`, :func:`supports_of`); ``q = (q_0, ..., q_L)``; ``density`` one entry
    per layer or a scalar.  Layer ``l``'s mask has ``q_l n_l`` rows and ``q_{l-1} n_{l-1} k_l`` entries per row,
    sampled ``chunk_bytes`` at a time, so memory stays bounded whatever the width.
    The proof event: every row has, for every target edge, an edge into the block.  The tight event: a row is
    valid when it has, for every target edge, an edge from a *valid* row of the block below (the univariate
    copies of layer 0 are valid); success when every output row is valid.  A run whose estimated memory
    (:func:`mask_sample_bytes`) exceeds ``max_memory`` (default 4 GiB) or whose draws exceed :data:`MAX_DRAWS`
    is refused before it starts.
    """
    qa = [int(v) for v in check_positive_int(q, "q").reshape(-1)]
    L = len(supports)
    if len(qa) != L + 1:
        raise ValueError(f"q needs {L + 1} entries (q_0..q_L), got {q!r}")
    for l, s in enumerate(supports):
        if s.ndim != 3 or (l > 0 and s.shape[1] != supports[l - 1].shape[0]):
            raise ValueError(f"support of layer {l + 1} has shape {s.shape}, which does not chain")
    p = np.broadcast_to(check_density(density), (L,))
    if int(chunk_bytes) <= 0:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes!r}")
    shapes = [(int(s.shape[0]), int(s.shape[1]), int(s.shape[2])) for s in supports]
    check_draws(trials, mask_sample_draws(shapes, qa), "mask sampler")
    check_memory(mask_sample_bytes(shapes, qa, int(chunk_bytes)), "the mask sampler", max_memory)
    rng = _rng(seed)
    proof_hits = tight_hits = 0
    for size in _trial_batches(trials, 1, progress, "mask sampler"):
        for _ in range(size):
            valid = np.ones(supports[0].shape[1] * qa[0], dtype=bool)
            proof_ok = True
            for l in range(L):
                ok, valid = _layer_events(supports[l], qa[l + 1], qa[l], float(p[l]), valid, rng, int(chunk_bytes))
                proof_ok &= ok
            proof_hits += proof_ok
            tight_hits += bool(valid.all())
    return MaskSample(estimate(proof_hits, int(trials), confidence), estimate(tight_hits, int(trials), confidence))


def mask_sample_lower_bound(
    d: int,
    n: int,
    density: float,
    trials: int,
    seed: int | np.random.Generator | None,
    *,
    confidence: float = 0.95,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: bool = True,
    max_memory: float | None = None,
) -> MCEstimate:
    """Theorem 2.3's event on sampled masks ``A`` (``n x d``) and ``B`` (``n``): every input has a path.

    Trials run in batches of about ``chunk_bytes``; a run whose estimated memory
    (:func:`mask_lower_bound_bytes`) exceeds ``max_memory`` (default 4 GiB) or whose draws exceed
    :data:`MAX_DRAWS` is refused before it starts.
    """
    dd, nn, p = _lower_bound_args(d, n, density)
    check_draws(trials, float(nn) * (dd + 1), "mask sampler (lower bound)")
    check_memory(mask_lower_bound_bytes(dd, nn, int(chunk_bytes)), "the mask sampler (lower bound)", max_memory)
    rng = _rng(seed)
    per_trial = max(1, nn * (dd + 1) * 5)
    batch = max(1, int(chunk_bytes) // per_trial)

    def hits_in(size: int) -> int:
        a = rng.random((size, nn, dd), dtype=np.float32) < np.float32(p)
        b = rng.random((size, nn, 1), dtype=np.float32) < np.float32(p)
        return int(np.all(np.any(a & b, axis=1), axis=1).sum())

    return _estimate_in_batches(hits_in, trials, batch, progress, "mask sampler (lower bound)", confidence)
