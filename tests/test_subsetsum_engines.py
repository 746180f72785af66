"""The numba engine of the exact best-subset search against the numpy engine (same results bit for bit) and
against brute force; the engine choice and its errors."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ertheory import _sumsets
from ertheory import subsetsum as ss
from ertheory.cli import main as cli_main

needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed")


def assert_same(a: ss.SubsetSumResult, b: ss.SubsetSumResult) -> None:
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.sums, b.sums)
    np.testing.assert_array_equal(a.errors, b.errors)


def brute_errors(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    sums = ((np.arange(1 << x.size)[:, None] >> np.arange(x.size)) & 1) @ x
    return np.abs(sums[None, :] - z.ravel()[:, None]).min(axis=1).reshape(z.shape)


@needs_numba
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 22),
    t=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
    integer=st.booleans(),
)
def test_numba_engine_equals_numpy_engine(n: int, t: int, seed: int, integer: bool) -> None:
    rng = np.random.default_rng(seed)
    if integer:  # many equal sums and equal errors: the tie rules must agree too
        x = rng.integers(-4, 5, n).astype(np.float64)
        z = rng.integers(-6, 7, t) + rng.choice([0.0, 0.5], t)
    else:
        x = rng.uniform(-1, 1, n)
        z = rng.uniform(-1.5, 1.5, t)
    fast = ss.best_subset(x, z, engine="numba")
    slow = ss.best_subset(x, z, engine="numpy")
    assert (fast.engine, slow.engine) == ("numba", "numpy")
    assert_same(fast, slow)
    if n <= 16:
        np.testing.assert_allclose(fast.errors, brute_errors(x, z), rtol=0, atol=1e-12)


@needs_numba
def test_numba_engine_at_larger_n_and_with_threads() -> None:
    rng = np.random.default_rng(7)
    x = rng.uniform(-1, 1, 30)
    z = rng.uniform(-1, 1, (5, 8))
    slow = ss.best_subset(x, z, engine="numpy")
    assert_same(ss.best_subset(x, z, engine="numba"), slow)
    assert_same(ss.best_subset(x, z, engine="numba", threads=3), slow)
    assert slow.errors.shape == (5, 8)
    # each subset really sums to what is reported
    np.testing.assert_allclose(slow.masks.astype(float) @ x, slow.sums, rtol=0, atol=1e-12)


@needs_numba
def test_sorted_sums_build_and_codes_agree_between_engines() -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(-1, 1, 15)
    a = _sumsets.SortedSums.build(values, "numpy")
    b = _sumsets.SortedSums.build(values, "numba")
    np.testing.assert_array_equal(a.padded, b.padded)
    np.testing.assert_array_equal(a.table, b.table)
    assert a.steps == b.steps
    sums = a.sums_at(rng.integers(0, a.n, 200))
    codes = a.codes_of(sums, "numba")
    np.testing.assert_array_equal(codes, a.codes_of(sums, "numpy"))
    # the codes rebuild the stored sums exactly, as (sum of the first k values) + (sum of the rest)
    k = a.k
    low, _ = _sumsets.all_sums(values[:k])
    high, _ = _sumsets.all_sums(values[k:])
    np.testing.assert_array_equal(low[codes & ((1 << k) - 1)] + high[codes >> k], sums)


def test_auto_engine_without_numba_is_numpy_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real(name, *a))
    res = ss.best_subset([0.5, -0.25, 0.125], [0.3])
    assert res.engine == "numpy"
    np.testing.assert_allclose(res.errors, [0.3 - 0.25], rtol=0, atol=1e-15)


def test_numba_engine_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ertheory._sumsets_numba", None)  # import fails as if numba were absent
    with pytest.raises(ValueError, match=r"engine 'numba' needs the optional package numba.*ertoolkit\[fast\]"):
        ss.best_subset([0.5, -0.25], [0.3], engine="numba")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"engine": "cuda"}, r"unknown engine 'cuda'; valid engines: auto, numpy, numba"),
        ({"engine": "numpy", "threads": 2}, r"threads=2 needs the numba engine"),
        ({"threads": 0}, r"threads must be an integer >= 1, got 0"),
    ],
)
def test_engine_argument_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ss.best_subset([0.5, -0.25], [0.3], **kwargs)  # type: ignore[arg-type]


def test_overflowing_queries_are_refused() -> None:
    with pytest.raises(ValueError, match="overflow float64"):
        ss.best_subset([1e308, -1e308 / 2], [1e308])


def test_cli_reports_the_engine_and_refuses_threads_without_numba(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["subset-sum", "--values", "0.5", "-0.25", "0.125", "--target", "0.3", "--engine", "numpy",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engine"] == "numpy"
    assert out["indices"] == [0, 1]  # 0.5 - 0.25 = 0.25 is the closest sum to 0.3 (0.375 is 0.075 away)
    assert cli_main(["subset-sum", "--values", "0.5", "--target", "0.3", "--engine", "numpy",
                     "--threads", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads 2 needs the numba engine" in err[0]
