"""Monte-Carlo samplers (ertheory.montecarlo) agree with the exact probabilities within their intervals."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from ertheory import exact, montecarlo

# intervals at 99.9%: with ~100 derandomized checks a false alarm is unlikely, and the suite is deterministic
CONF = 0.999


@given(st.integers(0, 60), st.integers(1, 60))
def test_clopper_pearson_matches_scipy(successes: int, extra: int) -> None:
    trials = successes + extra
    low, high = montecarlo.clopper_pearson(successes, trials, 0.95)
    ci = binomtest(successes, trials).proportion_ci(0.95, method="exact")
    assert low == pytest.approx(ci.low, abs=1e-12)
    assert high == pytest.approx(ci.high, abs=1e-12)


@settings(max_examples=20)
@given(
    st.integers(1, 6),
    st.integers(1, 5),
    st.integers(1, 4),
    st.integers(1, 8),
    st.integers(1, 8),
    st.floats(0.2, 0.9),
    st.integers(0, 2**31),
)
def test_count_samplers_agree_with_exact(d: int, n1: int, n2: int, q0: int, q1: int, p: float, seed: int) -> None:
    m = [d * n1, n1 * n2]
    want = float(exact.proof_success_probability([q0, q1, 1], m, p))
    est = montecarlo.count_sample_proof([q0, q1, 1], m, p, 20_000, seed, confidence=CONF, progress=False)
    assert est.contains(want)
    ind, outd = exact.dense_degrees(d, n1, n2)
    want_t = float(np.exp(exact.tight_log_success(q0, q1, p, p, ind, outd)[0]))
    est_t = montecarlo.count_sample_tight(q0, q1, p, p, ind, outd, 20_000, seed + 1, confidence=CONF, progress=False)
    assert est_t.contains(want_t)


@settings(max_examples=12)
@given(
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(1, 5),
    st.integers(1, 5),
    st.floats(0.3, 0.9),
    st.integers(0, 2**31),
)
def test_mask_sampler_agrees_with_exact(d: int, n1: int, n2: int, q0: int, q1: int, p: float, seed: int) -> None:
    sup = montecarlo.dense_supports([d, n1, n2])
    res = montecarlo.mask_sample(sup, [q0, q1, 1], p, 1500, seed, confidence=CONF, progress=False, chunk_bytes=4096)
    assert res.proof.contains(float(exact.proof_success_probability([q0, q1, 1], [d * n1, n1 * n2], p)))
    ind, outd = exact.dense_degrees(d, n1, n2)
    assert res.tight.contains(float(np.exp(exact.tight_log_success(q0, q1, p, p, ind, outd)[0])))
    assert res.tight.successes >= res.proof.successes  # same masks: the tight event contains the proof event


def test_mask_sampler_sparse_and_conv_targets() -> None:
    rng = np.random.default_rng(5)
    w1 = rng.random((4, 3)) < 0.6
    w2 = rng.random((2, 4)) < 0.6
    w1[0, 0] = w2[0, 0] = True
    q, p = [3, 3, 1], 0.5
    res = montecarlo.mask_sample(montecarlo.supports_of([w1, w2]), q, p, 3000, 6, confidence=CONF, progress=False)
    m = [int(w1.sum()), int(w2.sum())]
    assert res.proof.contains(float(exact.proof_success_probability(q, m, p)))
    want = np.exp(exact.tight_log_success(3, 3, p, p, w1.sum(axis=1), w2.sum(axis=0))[0])
    assert res.tight.contains(float(want))
    conv = montecarlo.dense_supports([2, 3, 2], kernel_areas=[4, 4])
    res_c = montecarlo.mask_sample(conv, [3, 2, 1], 0.6, 2000, 7, confidence=CONF, progress=False)
    assert res_c.proof.contains(float(exact.proof_success_probability([3, 2, 1], [2 * 3 * 4, 3 * 2 * 4], 0.6)))
    want_c = np.exp(exact.tight_log_success(3, 2, 0.6, 0.6, np.full(3, 8), np.full(3, 8))[0])
    assert res_c.tight.contains(float(want_c))


@settings(max_examples=15)
@given(st.integers(1, 30), st.integers(1, 60), st.floats(0.05, 0.8), st.integers(0, 2**31))
def test_lower_bound_samplers_agree_with_exact(d: int, n: int, p: float, seed: int) -> None:
    want = float(exact.lower_bound_success_probability(d, n, p))
    assert montecarlo.count_sample_lower_bound(d, n, p, 20_000, seed, confidence=CONF, progress=False).contains(want)
    est = montecarlo.mask_sample_lower_bound(d, n, p, 2_000, seed + 1, confidence=CONF, progress=False)
    assert est.contains(want)


def test_same_seed_same_estimate_and_no_implicit_randomness() -> None:
    a = montecarlo.count_sample_proof([3, 2, 1], [6, 4], 0.5, 1000, 11, progress=False)
    b = montecarlo.count_sample_proof([3, 2, 1], [6, 4], 0.5, 1000, np.random.default_rng(11), progress=False)
    assert a == b
    with pytest.raises(ValueError, match="seed"):
        montecarlo.count_sample_proof([3, 2, 1], [6, 4], 0.5, 1000, None, progress=False)


@pytest.mark.slow
def test_mask_sampler_memory_bounded_at_width_20000() -> None:
    # a source of width 20,000 in both hidden layers: 4e8 mask entries in layer 1, sampled in chunks
    sup = montecarlo.dense_supports([2, 2, 1])
    tracemalloc.start()
    res = montecarlo.mask_sample(sup, [10_000, 10_000, 1], 0.001, 1, 0, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**30
    assert res.proof.trials == 1
