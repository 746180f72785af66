"""Tests of ertheory.subsetsum against brute force, grid checks and hand-computed probabilities."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ertheory import cli
from ertheory import subsetsum as ss

finite = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)


def all_sums(x: np.ndarray) -> np.ndarray:
    bits = (np.arange(1 << x.size)[:, None] >> np.arange(x.size)) & 1
    return bits @ x


@settings(max_examples=60)
@given(values=st.lists(finite, min_size=1, max_size=16), targets=st.lists(finite, min_size=1, max_size=4))
def test_best_subset_equals_brute_force(values: list[float], targets: list[float]) -> None:
    x = np.array(values)
    res = ss.best_subset(x, np.array(targets))
    brute = np.abs(all_sums(x)[None, :] - np.array(targets)[:, None]).min(axis=1)
    np.testing.assert_allclose(res.errors, brute, rtol=0, atol=1e-12)
    for k in range(len(targets)):
        idx = res.indices(k)
        assert np.all(np.diff(idx) > 0)
        assert abs(x[idx].sum() - res.sums[k]) < 1e-12
        assert abs(res.sums[k] - targets[k]) == pytest.approx(res.errors[k], abs=1e-15)


@pytest.mark.parametrize("n", [17, 20, 23])
def test_best_subset_large_n_matches_full_enumeration(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.uniform(-1, 1, n)
    z = rng.uniform(-1.5, 1.5, 7)
    res = ss.best_subset(x, z)
    # second algorithm: sums of the two halves combined by broadcasting, fully enumerated
    h = n // 2
    full = (all_sums(x[:h])[:, None] + all_sums(x[h:])[None, :]).ravel()
    full.sort()
    pos = np.clip(np.searchsorted(full, z), 1, full.size - 1)
    best = np.minimum(np.abs(full[pos] - z), np.abs(full[pos - 1] - z))
    np.testing.assert_allclose(res.errors, best, atol=1e-12)


def test_best_subset_er_uses_only_kept_values() -> None:
    rng = np.random.default_rng(3)
    x, present = ss.draw_er_values(14, 0.5, rng)
    res = ss.best_subset_er(x, present, [0.1, -0.7])
    assert not res.masks[:, ~present].any()
    kept = x[present]
    brute = np.abs(all_sums(kept)[None, :] - np.array([[0.1], [-0.7]])).min(axis=1)
    np.testing.assert_allclose(res.errors, brute, atol=1e-12)


@settings(max_examples=40)
@given(values=st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=9), eps=st.floats(0.01, 0.6))
def test_coverage_equals_grid_check(values: list[float], eps: float) -> None:
    x = np.array(values)
    s = np.sort(all_sums(x))
    grid = np.linspace(-1.0, 1.0, 40001)
    pos = np.clip(np.searchsorted(s, grid), 1, s.size - 1)
    dist = np.minimum(np.abs(grid - s[pos]), np.abs(grid - s[pos - 1]))
    dist = np.minimum(dist, np.abs(grid - s[np.clip(pos, 0, s.size - 1)]))
    radius_grid = dist.max()
    cov = ss.coverage(x, eps)
    assert cov.radius is not None and cov.max_gap is not None
    assert cov.radius == pytest.approx(radius_grid, abs=1e-4)  # grid spacing 5e-5
    assert cov.max_gap == pytest.approx(2 * cov.radius)
    if abs(radius_grid - eps) > 1e-4:
        assert cov.covered == (radius_grid <= eps)
    # the uncovered intervals are exactly the grid points farther than eps
    far = dist > eps + 1e-9
    inside = np.zeros_like(far)
    for a, b in cov.uncovered:
        inside |= (grid >= a - 1e-9) & (grid <= b + 1e-9)
    assert not (inside & (dist < eps - 1e-9)).any()
    assert not (far & ~inside & (np.abs(dist - eps) > 1e-7)).any()


@pytest.mark.parametrize("n", [14, 18, 21])
def test_interval_method_agrees_with_direct_radius(n: int) -> None:
    rng = np.random.default_rng(n)
    for _ in range(3):
        x = rng.uniform(-1, 1, n)
        radius = ss.covering_radius(x)
        for eps in (0.5 * radius, 0.999 * radius, 1.001 * radius, 2 * radius):
            starts, ends = ss.covered_set(x, eps)
            covered = starts.size == 1 and starts[0] <= -1 and ends[0] >= 1
            assert covered == (radius <= eps)


def test_coverage_large_n_without_gap() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 60)
    cov = ss.coverage(x, 1e-3)
    assert cov.max_gap is None and cov.covered
    # monotone: a covering prefix keeps covering when values are added
    assert ss.coverage(x[:30], 1e-3, max_direct=0).covered <= cov.covered


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: ss.best_subset([], 0.1), "empty"),
        (lambda: ss.best_subset([0.1, np.nan], 0.1), "finite"),
        (lambda: ss.best_subset(np.ones(49), 0.1), "too large"),
        (lambda: ss.best_subset([0.1], np.inf), "finite"),
        (lambda: ss.coverage([0.1, 0.2], 0.0), "epsilon"),
        (lambda: ss.coverage([0.1, 0.2], -1.0), "epsilon"),
        (lambda: ss.covering_radius(np.ones(30), max_direct=26), "too large"),
        (lambda: ss.draw_er_values(5, 0.5, np.random.default_rng(0), "cauchy"), "uniform"),
    ],
)
def test_bad_input_raises(call: Callable[[], object], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        call()


def test_cover_counts_are_first_covering_prefix() -> None:
    eps, draws, k_max = 0.1, 6, 30
    counts = ss.cover_counts(eps, draws, np.random.default_rng(5), k_max=k_max)
    xs = np.random.default_rng(5).uniform(-1.0, 1.0, size=(draws, k_max))  # the same draws
    for x, k in zip(xs, counts, strict=True):
        assert k <= k_max
        assert ss.coverage(x[:k], eps).covered
        assert k == 1 or not ss.coverage(x[: k - 1], eps).covered


@given(p=st.floats(0.05, 0.95), n=st.integers(1, 30))
@settings(max_examples=30)
def test_coverage_probability_by_hand(p: float, n: int) -> None:
    # K* is 1 or 2 with probability 1/2 each: P(cover) = P(K >= 2) + P(K = 1) / 2 for K ~ Bin(n, p)
    got = ss.coverage_probability([1, 2], n, p)
    expect = stats.binom.sf(1, n, p) + 0.5 * stats.binom.pmf(1, n, p)
    assert got == pytest.approx(expect, abs=1e-12)


def test_required_n_is_smallest() -> None:
    counts = ss.cover_counts(0.05, 200, np.random.default_rng(1), k_max=40)
    for p in (0.1, 0.4, 0.8):
        n = int(ss.required_n(counts, p, 0.05))
        assert 0 < n <= 20000
        assert ss.coverage_probability(counts, n, p) >= 0.95
        assert ss.coverage_probability(counts, n - 1, p) < 0.95


def test_fit_recovers_constant_and_exponent() -> None:
    p = np.array([0.05, 0.1, 0.2, 0.4])
    logm = np.full(4, np.log(20.0))
    x_log = logm / np.log(1 / (1 - p))
    x_inv = logm / p
    st_log = ss._fit_stats(3.0 * x_log, x_log, x_inv, logm, p)
    assert st_log[0] == pytest.approx(3.0) and st_log[1] == pytest.approx(0.0, abs=1e-12)
    st_inv = ss._fit_stats(2.0 * x_inv, x_log, x_inv, logm, p)
    assert st_inv[2] == pytest.approx(2.0) and st_inv[3] == pytest.approx(0.0, abs=1e-12)
    assert st_inv[4] == pytest.approx(1.0)


@pytest.mark.slow
def test_scaling_experiment_small() -> None:
    res = ss.scaling_experiment([0.2, 0.1], 0.1, [0.1, 0.3, 0.6], draws=60, k_max=40, n_boot=20, seed=2)
    assert res.n_required.shape == (2, 3)
    assert np.all(np.diff(res.n_required, axis=1) < 0)  # denser masks need fewer variables
    assert np.all(res.n_required[1] >= res.n_required[0])  # smaller epsilon needs more
    lo, hi = res.fit.ci
    assert lo <= res.fit.c1 <= hi


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_best_subset_and_coverage(capsys: pytest.CaptureFixture[str]) -> None:
    rc, stdout, stderr = _cli(capsys, "subset-sum", "--values", "0.5", "-0.25", "0.125", "--target", "0.3", "--json")
    assert rc == 0, stderr
    out = json.loads(stdout)
    assert out["indices"] == [0, 1] and out["sum"] == pytest.approx(0.25) and out["error"] == pytest.approx(0.05)
    rc, stdout, _ = _cli(capsys, "subset-sum", "--coverage", "--values", "0.5", "-0.25", "0.125", "--epsilon", "0.1",
                         "--max-gap", "--json")
    out = json.loads(stdout)
    # sums {-0.25,-0.125,0,0.125,0.25,0.375,0.5,0.625}: z = -1 is 0.75 from the nearest
    assert out["covered"] is False and out["max_gap"] == pytest.approx(1.5)
    # without --max-gap only the exact decision is made
    rc, stdout, _ = _cli(capsys, "subset-sum", "--coverage", "--values", "0.5", "-0.25", "0.125", "--epsilon", "0.1",
                         "--json")
    out = json.loads(stdout)
    assert rc == 0 and out["covered"] is False and out["max_gap"] is None


@pytest.mark.parametrize(
    "argv",
    [
        ["subset-sum", "--values", "nan", "--target", "0", "--json"],
        ["subset-sum", "--values", "0.1", "--coverage", "--epsilon", "0"],
        ["subset-sum", "--values", "0.1"],
    ],
)
def test_cli_bad_input_one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    rc, stdout, stderr = _cli(capsys, *argv)
    assert rc == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1


# --- the indexed sorted sums, the chunked enumeration, and request sizing ----------------------------------------

magnitudes = st.sampled_from([0.0, 1e-9, 1.0, 1e3, 1e6])


@settings(max_examples=40)
@given(
    values=st.lists(st.tuples(finite, magnitudes, st.booleans()), min_size=1, max_size=14),
    queries=st.lists(st.floats(-3e6, 3e6, allow_nan=False), min_size=1, max_size=30),
)
def test_sorted_sums_nearest_equals_searchsorted(values: list[tuple[float, float, bool]], queries: list[float]) -> None:
    from ertheory._sumsets import SortedSums
    from ertheory._sumsets import all_sums as doubling_sums

    # values of mixed magnitudes, zeros and repeats: crowded grid cells must still give the exact neighbour
    x = np.array([v * m if not rep else 0.5 * m for v, m, rep in values])
    table = SortedSums.build(x)
    full = np.sort(np.add.outer(table.first, table.second).ravel())  # the same rounded sums, sorted directly
    q = np.array(queries + list(full[:: max(1, full.size // 7)]))
    index, dist = table.nearest(q)
    pos = np.clip(np.searchsorted(full, q), 1, full.size - 1) if full.size > 1 else np.zeros(q.size, dtype=int)
    want = np.minimum(np.abs(full[pos] - q), np.abs(full[np.maximum(pos - 1, 0)] - q))
    np.testing.assert_array_equal(dist, want)
    np.testing.assert_array_equal(np.abs(table.sums_at(index) - q), want)
    # the code recovered for a stored sum names a subset that gives exactly that stored sum
    codes = table.codes_of(table.sums_at(index))
    k = table.k
    second_sums = doubling_sums(x[k:])[0]  # in the order SortedSums enumerates them
    np.testing.assert_array_equal(table.first[codes & ((1 << k) - 1)] + second_sums[codes >> k], table.sums_at(index))


@settings(max_examples=40)
@given(
    values=st.lists(st.tuples(finite, st.sampled_from([0.0, 0.5, 1.0]), st.booleans()), min_size=0, max_size=12),
    lo=st.floats(-3, 1), width=st.floats(0.0, 4), chunk=st.integers(1, 64),
)
def test_chunked_sorted_sums_cover_the_window_in_order(
    values: list[tuple[float, float, bool]], lo: float, width: float, chunk: int
) -> None:
    from ertheory._sumsets import all_sums, sorted_sums_in

    x = np.array([v * m if not rep else m for v, m, rep in values])
    hi = lo + width
    chunks = list(sorted_sums_in(x, lo, hi, chunk=chunk))
    got = np.concatenate(chunks) if chunks else np.zeros(0)
    assert np.all(np.diff(got) >= 0)  # increasing across chunk boundaries too
    k = x.size // 2
    every = np.add.outer(np.unique(all_sums(x[:k])[0]), np.unique(all_sums(x[k:])[0])).ravel()
    np.testing.assert_array_equal(np.unique(got), np.unique(every[(every >= lo) & (every <= hi)]))


def _radius_by_enumeration(x: np.ndarray, lo: float, hi: float) -> float:
    s = np.unique(all_sums(x))
    grid_pts = np.concatenate([[lo, hi], s[(s > lo) & (s < hi)], 0.5 * (s[:-1] + s[1:])])
    grid_pts = grid_pts[(grid_pts >= lo) & (grid_pts <= hi)]
    pos = np.clip(np.searchsorted(s, grid_pts), 1, max(1, s.size - 1))
    d = np.minimum(np.abs(s[np.minimum(pos, s.size - 1)] - grid_pts), np.abs(s[pos - 1] - grid_pts))
    return float(d.max())


@settings(max_examples=40)
@given(values=st.lists(finite, min_size=0, max_size=12), lo=st.floats(-3, 2), width=st.floats(0.01, 4))
def test_covering_radius_equals_enumeration(values: list[float], lo: float, width: float) -> None:
    x = np.array(values)
    # the sup of the distance is attained at lo, hi or a midpoint between consecutive sums
    assert ss.covering_radius(x, lo, lo + width) == pytest.approx(_radius_by_enumeration(x, lo, lo + width), abs=1e-12)


def test_runaway_gap_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="at most n=32"):
        ss.covering_radius(np.ones(33), max_direct=40)
    with pytest.raises(ValueError, match="finite sum"):
        ss.best_subset([1e308, 1e308], 0.0)


def _run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ertheory.cli", *argv], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["subset-sum", "--random", "1000000000", "--target", "0.1"], "--random"),
        (["subset-sum", "--random", "5000000", "--target", "0.1", "--max-memory", "64MiB"], "memory"),
        (["subset-sum", "--random", "30", "--coverage", "--epsilon", "0.01", "--max-gap", "--max-direct", "1000"],
         "--max-direct"),
        (["subset-sum", "--random", "30", "--coverage", "--epsilon", "0.01", "--max-gap"], "--max-direct=26"),
        (["subset-sum", "--random", "100000", "--coverage", "--epsilon", "1e-6"], "interval operations"),
        (["subset-sum", "--random", "60", "--target", "0.1"], "at most 48"),
    ],
)
def test_runaway_subset_sum_requests_are_one_line(argv: list[str], needle: str) -> None:
    res = _run_cli(*argv)
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr
    assert needle in res.stderr


def test_negative_values_such_as_minus_1e_3_are_values() -> None:
    res = _run_cli("subset-sum", "--values", "0.5", "-1e-3", "-.25", "--target", "0.249", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["indices"] == [0, 1, 2] and out["error"] == pytest.approx(0.0, abs=1e-15)  # 0.5 - 0.001 - 0.25


def _peak_rss_mib(*argv: str) -> tuple[float, str]:
    # VmHWM: the peak resident set of the child's own memory (ru_maxrss would include pytest's, inherited at fork)
    code = (
        "import sys\nfrom ertheory.cli import main\nrc = main(sys.argv[1:])\n"
        "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM')][0].split()[1]\n"
        "print('RSS', int(hwm) / 1024)\nsys.exit(rc)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return float(res.stdout.split("RSS")[-1]), res.stdout


def test_coverage_with_defaults_at_n26_decides_without_enumerating() -> None:
    rss, out = _peak_rss_mib("subset-sum", "--coverage", "--random", "26", "--epsilon", "0.01")
    assert "covered: True" in out and "not computed" in out
    assert rss < 500


@pytest.mark.slow
def test_max_gap_at_n26_stays_under_500_mib() -> None:
    rss, out = _peak_rss_mib("subset-sum", "--coverage", "--random", "26", "--epsilon", "0.01", "--max-gap", "--json")
    assert rss < 500
    res = json.loads(out.split("RSS")[0])
    assert res["covered"] and res["max_gap"] is not None and res["max_gap"] <= 0.02
