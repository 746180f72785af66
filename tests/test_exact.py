"""Exact probabilities (ertheory.exact) against brute-force enumeration, direct sums and high precision."""

from __future__ import annotations

import itertools
import subprocess
import sys

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom

from ertheory import bounds, exact


def _bits(n: int):  # all 0/1 vectors of length n
    return itertools.product((0, 1), repeat=n)


def _weight(bits: tuple[int, ...], p: float) -> float:
    s = sum(bits)
    return p**s * (1 - p) ** (len(bits) - s)


# --- lower bound (Theorem 2.3) -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("d", "n", "p"), [(1, 3, 0.3), (2, 3, 0.5), (3, 2, 0.4), (2, 4, 0.2)])
def test_lower_bound_matches_enumeration(d: int, n: int, p: float) -> None:
    total = 0.0
    for bits in _bits(n * d + n):
        a = np.array(bits[: n * d]).reshape(n, d)
        b = np.array(bits[n * d :])
        if all((a[:, j] & b).any() for j in range(d)):
            total += _weight(bits, p)
    assert exact.lower_bound_success_probability(d, n, p) == pytest.approx(total, rel=1e-12)


@given(st.integers(1, 400), st.floats(0.01, 0.9))
def test_lower_bound_d1_is_the_proof_formula(n: int, p: float) -> None:
    # one input: a path exists iff some hidden unit has both edges, probability 1 - (1 - p^2)^n
    assert exact.lower_bound_success_probability(1, n, p) == pytest.approx(1 - (1 - p * p) ** n, rel=1e-10, abs=1e-300)


@given(st.integers(2, 50), st.integers(1, 300), st.floats(0.02, 0.9))
def test_lower_bound_at_least_independent_heuristic(d: int, n: int, p: float) -> None:
    heuristic = (1 - (1 - p * p) ** n) ** d
    assert exact.lower_bound_success_probability(d, n, p) >= heuristic * (1 - 1e-10)


@settings(max_examples=30)
@given(st.integers(1, 300), st.floats(0.02, 0.6), st.floats(1e-4, 0.3))
def test_lower_bound_min_width_is_minimal(d: int, p: float, delta: float) -> None:
    n = int(exact.lower_bound_min_width(d, p, delta))

    def direct(width: int) -> float:  # plain sum of pmf * success, a second implementation
        k = np.arange(width + 1)
        return float(np.sum(binom.pmf(k, width, p) * (1 - (1 - p) ** k) ** d))

    assert direct(n) >= 1 - delta - 1e-12
    assert direct(n - 1) < 1 - delta + 1e-12
    assert n <= bounds.theorem_2_3(d, p, delta).proof_width  # Jensen: exact needs no more than the proof


@given(st.integers(1, 200), st.integers(1, 3000), st.floats(0.005, 0.7))
def test_lower_bound_monotone_in_width(d: int, n: int, p: float) -> None:
    (s0, s1), (f0, f1) = exact.lower_bound_log_success(d, np.array([n, n + 1]), p)
    assert s1 >= s0 - 1e-12 * abs(s0)
    assert f1 <= f0 + 1e-12 * abs(f0) if np.isfinite(f0) else f1 == -np.inf


def test_binomial_window_matches_full_sum() -> None:
    n, r, a, c = 40_000, 0.013, 0.013, 300
    k = np.arange(n + 1)
    terms = binom.pmf(k, n, r) * (1 - (1 - a) ** k) ** c
    full = np.log(np.sum(terms))
    log_s, log_q = exact.binomial_expectation_log(n, r, a, c)
    assert log_s == pytest.approx(full, rel=1e-10)
    assert np.exp(log_s) + np.exp(log_q) == pytest.approx(1.0, rel=1e-12)


# --- proof event (Theorems 2.1/2.2) and the tighter construction --------------------------------------------------


def _enumerate_depth2(d: int, q0: int, q1: int, p: float) -> tuple[float, float]:
    """Brute force over all masks of a dense d-1-1 target: (P(proof event), P(tight event))."""
    n_entries1 = q1 * q0 * d
    proof = tight = 0.0
    for bits1 in _bits(n_entries1):
        m1 = np.array(bits1).reshape(q1, d, q0)
        covered = m1.any(axis=2).all(axis=1)  # each hidden copy reaches every input block
        w1 = _weight(bits1, p)
        for bits2 in _bits(q1):
            w = w1 * _weight(bits2, p)
            m2 = np.array(bits2, dtype=bool)
            if covered.all() and m2.any():
                proof += w
            if (m2 & covered).any():
                tight += w
    return proof, tight


@pytest.mark.parametrize(("d", "q0", "q1", "p"), [(1, 2, 2, 0.5), (2, 2, 2, 0.3), (2, 1, 3, 0.6), (3, 2, 1, 0.7)])
def test_depth2_events_match_enumeration(d: int, q0: int, q1: int, p: float) -> None:
    proof, tight = _enumerate_depth2(d, q0, q1, p)
    assert exact.proof_success_probability([q0, q1, 1], [d, 1], p) == pytest.approx(proof, rel=1e-12)
    ind, outd = exact.dense_degrees(d, 1, 1)
    assert np.exp(exact.tight_log_success(q0, q1, p, p, ind, outd)[0]) == pytest.approx(tight, rel=1e-12)


def test_proof_event_log_space_against_mpmath() -> None:
    mpmath.mp.dps = 60
    cases = [([400, 30, 1], [5000, 40], 0.2), ([3, 2, 1], [10**6, 10**5], 0.1), ([2000, 900, 1], [784, 10], 0.05)]
    for q, m, p in cases:
        want = mpmath.mpf(0)
        for l in range(2):
            want += m[l] * q[l + 1] * mpmath.log(1 - (1 - mpmath.mpf(p)) ** q[l])
        got = exact.proof_log_success(q, m, p)
        assert float(got) == pytest.approx(float(want), rel=1e-9)
        fail = exact.proof_failure_probability(q, m, p)
        assert float(fail) == pytest.approx(float(1 - mpmath.exp(want)), rel=1e-9)


@settings(max_examples=25)
@given(
    st.integers(1, 40),
    st.integers(1, 30),
    st.integers(1, 12),
    st.integers(1, 60),
    st.integers(1, 60),
    st.floats(0.05, 0.95),
)
def test_tight_event_contains_proof_event(d: int, n1: int, n2: int, q0: int, q1: int, p: float) -> None:
    ind, outd = exact.dense_degrees(d, n1, n2)
    tight = exact.tight_log_success(q0, q1, p, p, ind, outd)[0]
    proof = exact.proof_log_success([q0, q1, 1], [d * n1, n1 * n2], p)
    assert tight >= proof - 1e-9


@settings(max_examples=30)
@given(st.lists(st.integers(1, 2000), min_size=1, max_size=4), st.floats(0.01, 0.9), st.floats(1e-6, 0.2))
def test_proof_min_q_is_minimal_per_layer(m: list[int], p: float, delta: float) -> None:
    q = exact.proof_min_q(m, p, delta)
    L = len(m)
    assert q[-1] == 1
    budget = np.log1p(-delta) / L
    for l in range(L, 0, -1):
        lp = m[l - 1] * q[l] * np.log1p(-((1 - p) ** q[l - 1]))
        assert lp >= budget - 1e-12
        if q[l - 1] > 1:
            assert m[l - 1] * q[l] * np.log1p(-((1 - p) ** (q[l - 1] - 1))) < budget + 1e-12
    theorem = bounds.theorem_2_2([2000] * (L + 1), p, delta, m_T=m)  # only m_T matters, not the widths
    assert (q <= theorem.q_int).all()


@pytest.mark.parametrize("event", ["proof", "tight"])
def test_depth2_min_widths_feasible_and_minimal_in_q0(event: str) -> None:
    d, n1, n2, p, delta = 30, 8, 3, 0.2, 0.01
    res = exact.depth2_min_widths(d, n1, n2, p, delta, event)
    ind, outd = exact.dense_degrees(d, n1, n2)

    def prob(q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
        if event == "proof":
            return exact.proof_success_probability(np.stack(np.broadcast_arrays(q0, q1, 1), -1), [d * n1, n1 * n2], p)
        return np.exp(exact.tight_log_success(q0, q1, p, p, ind, outd)[0])

    assert prob(np.array(res.q0), np.array(res.q1)) >= 1 - delta
    assert res.q0 == 1 or prob(np.array(res.q0 - 1), np.array(res.q1)) < 1 - delta
    # brute-force the minimum total over a grid
    q0, q1 = np.meshgrid(np.arange(1, 3 * res.q0), np.arange(1, 3 * res.q1), indexing="ij")
    total = np.where(prob(q0, q1) >= 1 - delta, q0 * d + q1 * n1, np.iinfo(np.int64).max)
    assert res.n_S0 + res.n_S1 == total.min()


def test_tight_construction_needs_fewer_neurons_than_proof() -> None:
    proof = exact.depth2_min_widths(50, 16, 4, 0.1, 0.01, "proof")
    tight = exact.depth2_min_widths(50, 16, 4, 0.1, 0.01, "tight")
    assert tight.n_S0 + tight.n_S1 <= proof.n_S0 + proof.n_S1


def test_bad_input_names_value() -> None:
    with pytest.raises(ValueError, match="1.5"):
        exact.lower_bound_min_width(3, 1.5, 0.01)
    with pytest.raises(ValueError, match="event"):
        exact.depth2_min_widths(3, 2, 1, 0.5, 0.01, "nosuch")


def test_lower_bound_command_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from ertheory.cli import main

    assert (
        main(["lower-bound", "--inputs", "10", "--sparsity", "0.8", "--delta", "0.05", "--trials", "2000", "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    n = out["exact_min_width"]
    direct = [
        float(np.sum(binom.pmf(np.arange(w + 1), w, 0.2) * (1 - 0.8 ** np.arange(w + 1)) ** 10)) for w in (n - 1, n)
    ]
    assert direct[1] >= 0.95 > direct[0]
    assert out["exact_success_probability"] == pytest.approx(direct[1], rel=1e-9)
    assert out["mc_ci_low"] <= out["mc_success_probability"] <= out["mc_ci_high"]
    assert out["paper_width"] <= n <= out["proof_width"]
    assert main(["lower-bound", "--inputs", "10", "--density", "0.2", "--sparsity", "0.8"]) == 2


# --- numpy special functions (no scipy at start-up) against scipy and high precision ------------------------------


@settings(max_examples=80)
@given(st.integers(0, 10**7), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_binom_logpmf_matches_high_precision(n: int, u: float, p: float) -> None:
    from ertheory._special import binom_logpmf, binom_logpmf_scalar

    k = int(round(u * n))
    mpmath.mp.dps = 40
    if p in (0.0, 1.0):
        want = 0.0 if (p == 0.0 and k == 0) or (p == 1.0 and k == n) else -np.inf
    else:
        want = float(mpmath.log(mpmath.binomial(n, k)) + k * mpmath.log(p) + (n - k) * mpmath.log1p(-mpmath.mpf(p)))
    got = float(binom_logpmf(k, n, p))
    assert got == binom_logpmf_scalar(k, n, p) or abs(got - binom_logpmf_scalar(k, n, p)) <= 1e-13 * max(1, abs(got))
    if np.isinf(want):
        assert got == want
    else:
        assert abs(got - want) <= 1e-12 * max(1.0, abs(want))
        # the previous implementation (scipy's log-gamma differences) agrees to its own accuracy
        assert got == pytest.approx(float(binom.logpmf(k, n, p)), rel=1e-8, abs=1e-8)


@settings(max_examples=40)
@given(st.lists(st.floats(-700, 700), min_size=1, max_size=30), st.floats(-1.0, 50.0), st.floats(-0.999, 10.0))
def test_logsumexp_and_xlog1py_match_scipy(a: list[float], x: float, y: float) -> None:
    from scipy import special

    from ertheory._special import logsumexp, xlog1py

    arr = np.array(a).reshape(1, -1)
    assert logsumexp(arr, axis=1)[0] == pytest.approx(float(special.logsumexp(arr, axis=1)[0]), rel=1e-14, abs=1e-14)
    assert logsumexp(np.full((2, 3), -np.inf), axis=1).tolist() == [-np.inf, -np.inf]
    assert float(xlog1py(x, y)) == pytest.approx(float(special.xlog1py(x, y)), rel=1e-15, abs=0)
    assert float(xlog1py(0.0, -1.0)) == 0.0


@settings(max_examples=25)
@given(st.integers(1, 50), st.integers(1, 40), st.integers(1, 8), st.integers(1, 80), st.integers(1, 80),
       st.floats(0.02, 0.95))
def test_degree_table_gives_the_per_neuron_result(d: int, n1: int, n2: int, q0: int, q1: int, p: float) -> None:
    ind, outd = exact.dense_degrees(d, n1, n2)
    direct = exact.tight_log_success(q0, q1, p, p, ind, outd)
    table = exact.tight_log_success_from_table(q0, q1, p, p, exact.DegreeTable.dense(d, n1, n2))
    assert direct[0] == table[0] and (direct[1] == table[1] or np.isnan(direct[1]) and np.isnan(table[1]))


@settings(max_examples=12)
@given(st.integers(1, 40), st.integers(1, 20000), st.integers(1, 4), st.floats(0.3, 0.8), st.floats(0.001, 0.2),
       st.sampled_from(["proof", "tight"]))
def test_pruned_joint_search_equals_the_full_grid(d: int, n1: int, n2: int, p: float, delta: float, event: str) -> None:
    # wide hidden layers prune most q1; the result must be the grid minimum over every (q0, q1)
    res = exact.depth2_min_widths(d, n1, n2, p, delta, event)
    table = exact.DegreeTable.dense(d, n1, n2)
    q0, q1 = np.meshgrid(np.arange(1, 3 * res.q0 + 3), np.arange(1, 3 * res.q1 + 3), indexing="ij")
    if event == "proof":
        lp = exact.proof_log_success(np.stack(np.broadcast_arrays(q0, q1, 1), -1), [d * n1, n1 * n2], p)
    else:
        lp = exact.tight_log_success_from_table(q0, q1, p, p, table)[0]
    ok = -np.expm1(lp) <= delta  # the search's criterion: failure probability at most delta
    total = np.where(ok, q0 * d + q1 * n1, np.iinfo(np.int64).max)
    assert res.n_S0 + res.n_S1 == total.min()
    assert ok[res.q0 - 1, res.q1 - 1]


def test_exact_searches_refuse_runaway_sizes() -> None:
    with pytest.raises(ValueError, match="2\\*\\*53"):
        exact.lower_bound_min_width(10, 1e-9, 0.01)
    with pytest.raises(ValueError, match="candidates"):
        exact.depth2_min_widths(784, 128, 10, 1e-9, 0.01)
    with pytest.raises(ValueError, match="binomial terms"):
        exact.depth2_min_widths(784, 128, 10, 1e-3, 0.01)


def _run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ertheory.cli", *argv], capture_output=True, text=True, timeout=300)


def test_lower_bound_inputs_beyond_int64_is_one_line() -> None:
    res = _run_cli("lower-bound", "--inputs", "99999999999999999999", "--density", "0.5")
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr and "Warning" not in res.stderr
    assert "99999999999999999999" in res.stderr and "2**53" in res.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["exact", "--target", "20", "8", "2", "--sparsity", "0.9"],
        ["lower-bound", "--inputs", "10", "--density", "0.5", "--trials", "100"],
        ["simulate", "--target", "6", "4", "2", "--density", "0.5", "--q", "4", "3", "1", "--trials", "500"],
    ],
)
def test_fast_commands_do_not_import_scipy(argv: list[str]) -> None:
    # scipy.stats/special cost 0.3-1 s of start-up; these commands compute everything with numpy alone
    code = (
        "import sys\nfrom ertheory.cli import main\nrc = main(sys.argv[1:])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'tqdm', 'sympy', 'matplotlib'))\n"
        "print('HEAVY', heavy)\nsys.exit(rc)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout
