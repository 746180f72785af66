"""Tests of ertheory.slt: the constructed strong lottery ticket meets its epsilon, checked by forward passes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ertheory import cli, slt


def dense_forward(
    source: slt.SourceNetwork, wm: tuple[np.ndarray, ...], bm: tuple[np.ndarray, ...], x: np.ndarray
) -> np.ndarray:
    """Plain forward pass of the masked source (no skipping of idle neurons)."""
    h0 = np.maximum(x @ (source.weights[0] * wm[0]).T + source.biases[0] * bm[0], 0.0)
    h1 = np.maximum(h0 @ (source.weights[1] * wm[1]).T + source.biases[1] * bm[1], 0.0)
    out: np.ndarray = h1 @ (source.weights[2] * wm[2]).T + source.biases[2] * bm[2]
    return out


@pytest.mark.parametrize(("density", "q", "widths", "seed"), [(1.0, 60, (2, 3, 1), 0), (0.5, 90, (2, 2, 2), 1)])
def test_construction_meets_epsilon(density: float, q: int, widths: tuple[int, int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    target = slt.random_target(*widths, rng=rng)
    source = slt.random_source(target.widths, 2 * q, q, (1.0, density, density), rng)
    eps = 0.05
    res = slt.construct_slt(target, source, eps, max_values=16)
    assert res.success
    assert res.sup_error <= eps
    # fresh points of the unit ball, an independent forward pass: within the rigorous bound
    x = slt.unit_ball_sample(widths[0], 3000, np.random.default_rng(seed + 100))
    err = np.abs(dense_forward(source, res.weight_masks, res.bias_masks, x) - target(x)).max(axis=0)
    assert np.all(err <= res.bound + 1e-12)
    assert np.all(err <= eps)
    # S_P is a sub-mask of the ER mask
    for mp, mer in zip(res.weight_masks, source.er_masks, strict=True):
        assert not (mp & ~mer).any()
    # layer-0 neurons are univariate (one input) and bias-free, or constants (no input, positive bias)
    m0, b0 = res.weight_masks[0], res.bias_masks[0]
    assert np.all(m0.sum(axis=1) <= 1)
    assert not (m0.any(axis=1) & b0).any()
    assert np.all(source.biases[0][b0] > 0)


def test_too_small_source_fails_honestly() -> None:
    rng = np.random.default_rng(4)
    target = slt.random_target(2, 3, 1, rng=rng)
    source = slt.random_source(target.widths, 4, 2, 0.5, rng)
    res = slt.construct_slt(target, source, 0.01)
    assert not res.success
    assert res.bound.max() > 0.01
    assert res.sup_error <= res.bound.max() + 1e-12


def test_masked_forward_matches_dense() -> None:
    rng = np.random.default_rng(2)
    source = slt.random_source((3, 2, 2), 5, 4, 0.6, rng)
    wm = tuple(m & (rng.random(m.shape) < 0.5) for m in source.er_masks)
    bm = tuple(rng.random(b.shape) < 0.5 for b in source.biases)
    x = rng.uniform(-1, 1, (50, 3))
    np.testing.assert_allclose(slt.masked_forward(source, wm, bm, x), dense_forward(source, wm, bm, x), atol=1e-12)


def test_theorem_widths_grow_as_density_falls() -> None:
    target = slt.random_target(2, 3, 1, rng=np.random.default_rng(0))
    dense = slt.theorem_widths(target, 0.5, 0.1, 0.05)
    sparse = slt.theorem_widths(target, 0.1, 0.1, 0.05)
    assert sparse[0] > dense[0] and sparse[1] > dense[1] and sparse[2] == dense[2] == 1


def test_bad_input() -> None:
    rng = np.random.default_rng(0)
    target = slt.random_target(2, 3, 1, rng=rng)
    with pytest.raises(ValueError, match="epsilon"):
        slt.construct_slt(target, slt.random_source((2, 3, 1), 4, 2, 0.5, rng), 0.0)
    with pytest.raises(ValueError, match="do not fit"):
        slt.construct_slt(target, slt.random_source((2, 4, 1), 4, 2, 0.5, rng), 0.1)
    with pytest.raises(ValueError, match="density"):
        slt.random_source((2, 3, 1), 4, 2, 1.5, rng)


def test_cli_slt_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["slt", "--target", "2", "2", "1", "--density", "1", "--q", "40", "--epsilon", "0.1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["widths"] == [240, 120, 1] and out["sup_error"] <= out["bound"][0] + 1e-12
    assert out["success"] == (out["bound"][0] <= 0.1)
    rc = cli.main(["slt", "--density", "0.5", "--sparsity", "0.5"])
    assert rc == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_sweep_needs_positive_draws() -> None:
    target = slt.random_target(2, 2, 1, rng=np.random.default_rng(0))
    for draws in (0, -3):
        with pytest.raises(ValueError, match=f"draws must be positive integers, got {draws}"):
            slt.width_sweep(target, 0.5, [4], 0.1, draws=draws)


def test_memory_estimate_bounds_the_measured_peak() -> None:
    import tracemalloc

    rng = np.random.default_rng(1)
    target = slt.random_target(2, 2, 1, rng=rng)
    q0, q1 = 400, 200
    tracemalloc.start()
    try:
        source = slt.random_source(target.widths, q0, q1, 0.5, rng)
        slt.construct_slt(target, source, 0.1, max_values=16, rng=rng)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    weights = sum(w.nbytes for w in source.weights)
    estimate = slt.source_memory(target.widths, q0, q1, max_values=16)
    assert weights <= peak <= estimate  # an upper bound of what the construction really allocates


def test_huge_block_sizes_are_refused_before_allocation(capsys: pytest.CaptureFixture[str]) -> None:
    from ertheory._validate import MemoryLimitError

    with pytest.raises(MemoryLimitError, match=r"block sizes q0=200000000, q1=100000000 would need about .* EiB"):
        slt.random_source((2, 3, 1), 2 * 10**8, 10**8, 0.5, np.random.default_rng(0))
    assert cli.main(["slt", "--q", "100000000"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "above the limit of 4.0 GiB" in err[0] and "--max-memory" in err[0]
    # the limit can be raised, and lowered
    assert cli.main(["slt", "--q", "4", "--max-memory", "1KiB"]) == 2
    assert "above the limit of 1.0 KiB" in capsys.readouterr().err
    for argv in (["--sweep", "4", "--draws", "0"], ["--seed", "-1"], ["--max-values", "0"], ["--q", "0"]):
        assert cli.main(["slt", *argv]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "error:" in err[0]
