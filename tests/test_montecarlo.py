"""Monte-Carlo samplers (ertheory.montecarlo) agree with the exact probabilities within their intervals."""

from __future__ import annotations

import json
import subprocess
import sys
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


@settings(max_examples=40)
@given(st.integers(1, 10**7), st.floats(0.0, 1.0), st.sampled_from([0.5, 0.9, 0.95, 0.999]))
def test_clopper_pearson_large_trials_matches_beta_quantiles(trials: int, u: float, confidence: float) -> None:
    from scipy.stats import beta

    s = int(round(u * trials))
    low, high = montecarlo.clopper_pearson(s, trials, confidence)
    alpha = 1 - confidence
    want_low = 0.0 if s == 0 else float(beta.ppf(alpha / 2, s, trials - s + 1))
    want_high = 1.0 if s == trials else float(beta.ppf(1 - alpha / 2, s + 1, trials - s))
    assert float(low) == pytest.approx(want_low, rel=1e-9, abs=1e-12)
    assert float(high) == pytest.approx(want_high, rel=1e-9, abs=1e-12)


def test_trials_and_draws_are_capped_before_any_work() -> None:
    with pytest.raises(ValueError, match="cap"):
        montecarlo.count_sample_proof([3, 2, 1], [6, 4], 0.5, montecarlo.MAX_TRIALS + 1, 0, progress=False)
    with pytest.raises(ValueError, match="draws"):
        montecarlo.count_sample_tight(3, 3, 0.5, 0.5, np.full(10**6, 3), np.full(10**6, 2), 10**6, 0, progress=False)
    with pytest.raises(ValueError, match="positive integer"):
        montecarlo.count_sample_lower_bound(3, 4, 0.5, 0, 0, progress=False)
    sup = montecarlo.dense_supports([200, 200, 1])
    with pytest.raises(ValueError, match="memory"):  # one row of 200 x 2000 entries does not fit 1 MiB
        montecarlo.mask_sample(sup, [2000, 2, 1], 0.5, 1, 0, progress=False, max_memory=2**20)
    with pytest.raises(ValueError, match="memory"):
        montecarlo.mask_sample_lower_bound(3000, 3000, 0.5, 1, 0, progress=False, max_memory=2**20)


def test_memory_estimates_bound_the_traced_peak() -> None:
    shapes = [(30, 20, 1), (4, 30, 1)]
    q = [40, 25, 1]
    sup = montecarlo.dense_supports([20, 30, 4])
    estimate = montecarlo.mask_sample_bytes(shapes, q, chunk_bytes=2**16)
    tracemalloc.start()
    montecarlo.mask_sample(sup, q, 0.3, 2, 0, progress=False, chunk_bytes=2**16)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= 2 * estimate
    assert montecarlo.mask_sample_draws(shapes, q) == 30 * 25 * 20 * 40 + 4 * 30 * 25
    est_lb = montecarlo.mask_lower_bound_bytes(50, 80, chunk_bytes=2**18)
    tracemalloc.start()
    montecarlo.mask_sample_lower_bound(50, 80, 0.3, 64, 1, progress=False, chunk_bytes=2**18)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= 2 * est_lb


def test_tight_batches_shrink_only_for_wide_targets() -> None:
    # up to 512 hidden neurons the default batch of 4096 trials is kept: estimates are unchanged bit for bit
    ind, outd = exact.dense_degrees(5, 128, 3)
    a = montecarlo.count_sample_tight(4, 3, 0.4, 0.4, ind, outd, 9000, 3, progress=False)
    b = montecarlo.count_sample_tight(4, 3, 0.4, 0.4, ind, outd, 9000, 3, progress=False, batch=4096)
    assert a == b
    assert montecarlo.count_tight_bytes(128) == 4096 * 128 * 32 + 24 * 128
    assert montecarlo.count_tight_bytes(10**6) <= montecarlo.DEFAULT_CHUNK_BYTES + 24 * 10**6


def _run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ertheory.cli", *argv], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["simulate", "--target", "100000", "100000", "10", "--density", "0.5", "--q", "2", "2", "1", "--sampler",
          "masks", "--trials", "1"], "9.4 GiB"),
        (["simulate", "--target", "784", "128", "10", "--density", "0.5", "--trials", "2000000000"], "cap"),
        (["simulate", "--target", "784", "128", "10", "--density", "0.5", "--trials", "999999999"], "draws"),
        (["simulate", "--target", "784", "128", "10", "--density", "0.5", "--q", "20", "20", "1", "--sampler",
          "masks", "--trials", "10", "--max-memory", "1MiB"], "1.0 MiB"),
        (["lower-bound", "--inputs", "30000", "--density", "0.01", "--trials", "1", "--sampler", "masks"], "memory"),
        (["lower-bound", "--inputs", "100", "--density", "0.05", "--trials", "99999999999"], "cap"),
    ],
)
def test_runaway_requests_are_refused_with_one_line(argv: list[str], needle: str) -> None:
    res = _run_cli(*argv)
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr
    assert needle in res.stderr


def test_max_memory_raises_the_limit() -> None:
    base = ["simulate", "--target", "6", "4", "2", "--density", "0.5", "--q", "4", "3", "1", "--sampler", "masks",
            "--trials", "50", "--json"]
    assert _run_cli(*base, "--max-memory", "1KiB").returncode == 2
    res = _run_cli(*base, "--max-memory", "1GiB")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["trials"] == 50
