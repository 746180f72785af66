"""Theory meets training: ``ertheory`` and ``ertrain`` checked against each other (DESIGN.md, "cross-checks").

Every statistical test here has a stated false-alarm rate.  Counts are compared with their exact law by a
two-sided exact binomial test (``scipy.stats.binomtest``) at level ``ALPHA`` per count; a test function draws a
fixed number of Hypothesis examples (``max_examples`` below), each with at most ``MAX_COUNTS`` counts, so that by
the union bound the probability that a correct implementation fails the whole module is at most
``ALPHA * (total number of counts)`` (printed by :func:`test_false_alarm_budget`).  CI runs the derandomized
Hypothesis profile, so the suite is deterministic there; the bound says how often a *random* seed would fail.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, reject, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from torch import nn

from ertheory import bounds, construct, exact, montecarlo
from ertrain.density import layer_densities, layer_sizes
from ertrain.masks import Masking, flow_defects, sample_er_masks
from ertrain.models import build_model, layer_weight, maskable_layers

#: Level of every two-sided exact binomial test (per count).
ALPHA = 3e-5
#: Most counts one Hypothesis example tests (layers of a drawn network, or rows + columns).
MAX_COUNTS = 4
#: Examples of each statistical test function, and of the Monte-Carlo rate test.
N_COUNT_EXAMPLES = 30
N_DEGREE_EXAMPLES = 30
N_RATE_EXAMPLES = 8
RATE_TRIALS = 300


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _binom_ok(k: int, n: int, p: float) -> bool:
    return bool(binomtest(int(k), int(n), float(p), alternative="two-sided").pvalue >= ALPHA)


def test_false_alarm_budget() -> None:
    """The stated bound on the module's false-alarm probability (union bound over all tests) is below 1 %."""
    counts = MAX_COUNTS * (N_COUNT_EXAMPLES + N_DEGREE_EXAMPLES) + N_RATE_EXAMPLES
    assert ALPHA * counts < 0.01


# ----------------------------------------------------------------------------------------------------------------
# 1. ertrain's ER sampler: per-layer counts ~ Binomial(m_l, p_l); isolated units at ertheory's exact rate

layer_shape = st.one_of(
    st.tuples(st.integers(1, 64), st.integers(1, 64)),  # linear (out, in)
    st.tuples(st.integers(1, 16), st.integers(1, 16), st.sampled_from([1, 3]), st.sampled_from([1, 3])),  # conv
)


@settings(max_examples=N_COUNT_EXAMPLES)
@given(
    shapes=st.lists(layer_shape, min_size=1, max_size=MAX_COUNTS),
    density=st.floats(0.02, 0.98),
    scheme=st.sampled_from(["uniform", "erk", "balanced", "pyramidal"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_layer_counts_are_binomial(shapes: list[tuple[int, ...]], density: float, scheme: str, seed: int) -> None:
    """Non-zeros of layer ``l`` ~ Binomial(m_l, p_l), ``p_l`` from the density scheme (ER masks, Sec. 2)."""
    sizes = layer_sizes(shapes)
    try:
        p = layer_densities(scheme, shapes, density)
    except ValueError:
        reject()  # e.g. pyramidal underflow for a deep, tiny budget
    masks = sample_er_masks(shapes, p, _generator(seed))
    for mask, shape, m_l, p_l in zip(masks, shapes, sizes, p, strict=True):
        assert mask.dtype == torch.bool and tuple(mask.shape) == tuple(shape)
        k = int(mask.sum())
        assert _binom_ok(k, int(m_l), float(p_l)), f"{k} of {int(m_l)} kept in a layer of density {p_l}"


@settings(max_examples=N_DEGREE_EXAMPLES)
@given(
    shape=st.one_of(
        st.tuples(st.integers(50, 400), st.integers(1, 12)),
        st.tuples(st.integers(20, 200), st.integers(1, 4), st.sampled_from([1, 2]), st.sampled_from([1, 2])),
    ),
    density=st.floats(0.05, 0.6),
    seed=st.integers(0, 2**31 - 1),
)
def test_isolated_units_match_exact_rate(shape: tuple[int, ...], density: float, seed: int) -> None:
    """Units with in-degree 0 / out-degree 0 (``ertrain.masks.flow_defects``) vs ``ertheory.exact``.

    An output unit (row) has no input when all its ``n_in k`` entries are 0: probability
    ``1 - exp(log_block_hit(p, n_in k))`` of :func:`ertheory.exact.log_block_hit`; rows are independent, so their
    number is Binomial(n_out, that).  Likewise for input units (columns) with ``n_out k`` entries.
    """
    (mask,) = sample_er_masks([shape], [density], _generator(seed))
    n_out, n_in = shape[0], shape[1]
    k = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    ((no_input, no_output),) = flow_defects([mask])
    p_no_input = float(-np.expm1(exact.log_block_hit(density, n_in * k)))
    p_no_output = float(-np.expm1(exact.log_block_hit(density, n_out * k)))
    assert _binom_ok(no_input, n_out, p_no_input), f"{no_input}/{n_out} rows without input, rate {p_no_input}"
    assert _binom_ok(no_output, n_in, p_no_output), f"{no_output}/{n_in} columns without output, rate {p_no_output}"


# ----------------------------------------------------------------------------------------------------------------
# 2. ertheory's construction inside an ertrain model with ertrain masks computes the target


def _target(rng: np.random.Generator, shapes: list[tuple[int, ...]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    ws = [rng.normal(size=s) / np.sqrt(np.prod(s[1:])) for s in shapes]
    bs = [rng.normal(size=s[0]) * 0.5 for s in shapes]
    return ws, bs


def _ertrain_masks(ws: list[np.ndarray], q: list[int], density: float, seed: int) -> list[torch.Tensor]:
    """Source masks from ``ertrain.masks``: construction layer dense, the layers of the target at ``density``."""
    shapes = construct.source_mask_shapes(ws, q)
    return sample_er_masks(shapes, [1.0] + [density] * len(ws), _generator(seed))


def _load(model: nn.Module, src: construct.SourceNetwork, masks: list[torch.Tensor]) -> Masking:
    layers = maskable_layers(model)
    assert len(layers) == len(src.weights)
    weights = [layer_weight(layer) for _, layer in layers]
    with torch.no_grad():
        for (_, layer), weight, w, b in zip(layers, weights, src.weights, src.biases, strict=True):
            weight.copy_(torch.as_tensor(w.reshape(weight.shape), dtype=torch.float32))
            bias = getattr(layer, "bias", None)
            assert isinstance(bias, torch.Tensor)
            bias.copy_(torch.as_tensor(b, dtype=torch.float32))
    # Masking zeroes every weight its mask prunes: the construction must survive that untouched
    return Masking(model, [m.reshape(w.shape) for w, m in zip(weights, masks, strict=True)])


def _construct_or_none(
    ws: list[np.ndarray], bs: list[np.ndarray], masks: list[torch.Tensor], q: list[int], a1: float, **kw: object
) -> construct.SourceNetwork | None:
    try:
        return construct.construct(ws, bs, [m.numpy() for m in masks], q, input_low=a1, **kw)  # type: ignore[arg-type]
    except construct.ConstructionError:
        return None


@settings(max_examples=20)
@given(
    widths=st.lists(st.integers(1, 4), min_size=2, max_size=4),
    density=st.floats(0.3, 0.9),
    a1=st.sampled_from([-2.0, -0.5, 0.0, 0.5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_fc_construction_in_torch_reproduces_target(widths: list[int], density: float, a1: float, seed: int) -> None:
    """Theorem 2.2's construction (ertheory) in an ertrain ``mlp`` with ertrain ER masks equals the target."""
    rng = np.random.default_rng(seed)
    L = len(widths) - 1
    ws, bs = _target(rng, [(widths[l + 1], widths[l]) for l in range(L)])
    m_T = [w.size for w in ws]
    q = [int(v) for v in exact.proof_min_q(m_T, density, 1e-3)]  # the exact copies for P(event) >= 0.999
    src = None
    for attempt in range(4):
        masks = _ertrain_masks(ws, q, density, seed + attempt)
        src = _construct_or_none(ws, bs, masks, q, a1)
        if src is not None:
            break
    assume(src is not None)
    assert src is not None
    d = widths[0]
    hidden = [q[0] * d] + [q[l] * widths[l] for l in range(1, L)]
    model = build_model("mlp", num_classes=widths[-1], in_features=d, hidden=hidden)
    masking = _load(model, src, masks)
    x = a1 + 3.0 * rng.random((64, d))  # the domain [a1, a1 + 3]^d
    with torch.no_grad():
        got = model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    want = construct.target_forward(ws, bs, x)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)
    # the masks really prune, and the loaded model keeps exactly the masked support
    for (_, layer), mask in zip(maskable_layers(model), masking.masks.values(), strict=True):
        assert not bool((layer_weight(layer)[~mask] != 0).any())


class _ConvNet(nn.Sequential):
    """Stride-1 conv layers with ReLU between them (the targets and sources of Theorem A.5)."""

    def __init__(self, channels: list[int], kernels: list[int], paddings: list[int]) -> None:
        layers: list[nn.Module] = []
        for l, (k, pad) in enumerate(zip(kernels, paddings, strict=True)):
            layers.append(nn.Conv2d(channels[l], channels[l + 1], k, padding=pad))
            if l < len(kernels) - 1:
                layers.append(nn.ReLU())
        super().__init__(*layers)


@settings(max_examples=12)
@given(
    channels=st.lists(st.integers(1, 3), min_size=2, max_size=3),
    kernel=st.sampled_from([1, 3]),
    density=st.floats(0.4, 0.9),
    seed=st.integers(0, 2**31 - 1),
)
def test_conv_construction_in_torch_reproduces_target(
    channels: list[int], kernel: int, density: float, seed: int
) -> None:
    """Theorem A.5's construction (channel copies) in a torch conv net with ertrain masks equals the target."""
    rng = np.random.default_rng(seed)
    L = len(channels) - 1
    ws, bs = _target(rng, [(channels[l + 1], channels[l], kernel, kernel) for l in range(L)])
    pads = [kernel // 2] * L
    m_T = [w.size for w in ws]
    q = [int(v) for v in exact.proof_min_q(m_T, density, 1e-3)]
    src = None
    for attempt in range(4):
        masks = _ertrain_masks(ws, q, density, seed + attempt)
        src = _construct_or_none(ws, bs, masks, q, 0.0, paddings=pads)
        if src is not None:
            break
    assume(src is not None)
    assert src is not None
    src_channels = [channels[0], q[0] * channels[0]] + [q[l] * channels[l] for l in range(1, L + 1)]
    model = _ConvNet(src_channels, [1] + [kernel] * L, [0] + pads)
    _load(model, src, masks)
    x = rng.random((4, channels[0], 6, 6))
    with torch.no_grad():
        got = model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    want = construct.target_forward(ws, bs, x, paddings=pads)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


# ----------------------------------------------------------------------------------------------------------------
# 3. the edge-existence event on ertrain's masks occurs at ertheory's exact rate


@settings(max_examples=N_RATE_EXAMPLES)
@given(
    widths=st.sampled_from([(2, 2, 1), (2, 3, 2), (3, 2, 1), (1, 2, 2, 1)]),
    density=st.floats(0.25, 0.7),
    q_hidden=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_proof_event_rate_on_ertrain_masks(widths: tuple[int, ...], density: float, q_hidden: int, seed: int) -> None:
    """Frequency of the proof event (construction succeeds) on ``ertrain`` masks vs ``exact.proof_success_probability``.

    Chosen settings where the exact probability lies in [0.05, 0.95], so the test has power; the exact value must
    lie in the Clopper-Pearson interval of level ``1 - ALPHA`` of ``RATE_TRIALS`` trials.
    """
    L = len(widths) - 1
    ws = [np.ones((widths[l + 1], widths[l])) for l in range(L)]  # dense target: m_T = n_l n_{l-1}
    bs = [np.zeros(w) for w in widths[1:]]
    m_T = [w.size for w in ws]
    q0 = np.arange(1, 12)
    q_tail = [q_hidden] * (L - 1) + [1]
    probs = exact.proof_success_probability(np.array([[int(a), *q_tail] for a in q0]), m_T, density)
    inside = np.flatnonzero((probs > 0.05) & (probs < 0.95))
    assume(inside.size > 0)
    q = [int(q0[inside[0]]), *q_tail]
    want = float(probs[inside[0]])
    gen = _generator(seed)
    shapes = construct.source_mask_shapes(ws, q)
    hits = 0
    for _ in range(RATE_TRIALS):
        masks = sample_er_masks(shapes, [1.0] + [density] * L, gen)
        hits += _construct_or_none(ws, bs, masks, q, 0.0) is not None
    est = montecarlo.estimate(hits, RATE_TRIALS, confidence=1.0 - ALPHA)
    assert est.contains(want), f"q={q}, p={density}: {hits}/{RATE_TRIALS} vs exact {want:.4f}"


# ----------------------------------------------------------------------------------------------------------------
# 4. ertrain's density schemes fed to ertheory's bounds


def _by_hand_q(m_T: list[int], p: np.ndarray, delta: float) -> list[int]:
    """Theorem 2.2's integer recursion written out: q_L = 1, q_{l-1} = ceil(log(L m_l q_l / delta) / log(1/(1-p_l)))."""
    L = len(m_T)
    q = [1] * (L + 1)
    for l in range(L, 0, -1):
        m_l = m_T[l - 1]
        if p[l - 1] >= 1.0:
            q[l - 1] = 1
            continue
        raw = np.log(L * m_l * q[l] / delta) / np.log(1.0 / (1.0 - p[l - 1]))
        q[l - 1] = max(1, int(np.ceil(raw * (1.0 - 1e-12))))
    return q


@settings(max_examples=40)
@given(
    widths=st.lists(st.integers(1, 300), min_size=2, max_size=6),
    lo_hi=st.tuples(st.floats(0.01, 0.99), st.floats(0.01, 0.99)).map(sorted),
    scheme=st.sampled_from(["uniform", "erk", "balanced", "pyramidal"]),
    delta=st.floats(1e-6, 0.5),
)
def test_scheme_densities_give_finite_monotone_consistent_widths(
    widths: list[int], lo_hi: list[float], scheme: str, delta: float
) -> None:
    """``ertrain.density`` schemes on the target's layers -> ``ertheory.bounds.theorem_2_2``: finite widths that
    shrink as the overall density grows and equal Theorem 2.2's recursion on the per-layer densities."""
    lo, hi = lo_hi
    assume(hi - lo > 1e-6)
    shapes = [(widths[l + 1], widths[l]) for l in range(len(widths) - 1)]
    try:
        p_lo = layer_densities(scheme, shapes, lo)
        p_hi = layer_densities(scheme, shapes, hi)
    except ValueError:
        reject()
    assert np.all(p_hi >= p_lo - 1e-12), "a layer got sparser when the overall density rose"
    b_lo = bounds.theorem_2_2(widths, p_lo, delta)
    b_hi = bounds.theorem_2_2(widths, p_hi, delta)
    for b, p in ((b_lo, p_lo), (b_hi, p_hi)):
        assert np.all(np.isfinite(b.q)) and np.all(b.q_int >= 1)
        assert b.widths.tolist() == (b.q_int * np.asarray(widths)).tolist()
        assert b.q_int.tolist() == _by_hand_q([o * i for o, i in zip(widths[1:], widths[:-1], strict=True)], p, delta)
    assert np.all(b_lo.widths >= b_hi.widths), f"{b_lo.widths} < {b_hi.widths}"


@settings(max_examples=20)
@given(
    channels=st.lists(st.integers(1, 64), min_size=2, max_size=5),
    kernel=st.sampled_from([1, 3, 5]),
    density=st.floats(0.02, 0.9),
    scheme=st.sampled_from(["uniform", "erk", "balanced"]),
)
def test_conv_scheme_densities_feed_theorem_a5(channels: list[int], kernel: int, density: float, scheme: str) -> None:
    """Conv layer densities from a scheme give Theorem A.5's recursion with ``m_{T,l} = c_l c_{l-1} k_l``."""
    L = len(channels) - 1
    shapes = [(channels[l + 1], channels[l], kernel, kernel) for l in range(L)]
    p = layer_densities(scheme, shapes, density)
    a5 = bounds.theorem_a5(channels, [kernel * kernel] * L, p, 0.01)
    assert np.all(np.isfinite(a5.q))
    assert a5.q_int.tolist() == _by_hand_q([int(np.prod(s)) for s in shapes], p, 0.01)
    assert a5.widths.tolist() == (a5.q_int * np.asarray(channels)).tolist()
    # a denser layer never needs more copies below it
    denser = bounds.theorem_a5(channels, [kernel * kernel] * L, np.minimum(1.0, 2 * p), 0.01)
    assert np.all(denser.q_int <= a5.q_int)


@pytest.mark.parametrize("scheme", ["uniform", "erk", "balanced", "pyramidal"])
def test_dense_limit_needs_one_copy(scheme: str) -> None:
    """At overall density 1 every scheme is dense and the theorem asks for the target itself (q = 1)."""
    widths = [20, 32, 16, 4]
    shapes = [(widths[l + 1], widths[l]) for l in range(3)]
    p = layer_densities(scheme, shapes, 1.0)
    assert p.tolist() == [1.0, 1.0, 1.0]
    assert bounds.theorem_2_2(widths, p, 0.01).q_int.tolist() == [1, 1, 1, 1]
