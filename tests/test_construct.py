"""Explicit constructions (ertheory.construct): the source computes the target exactly, or names the failing edge."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ertheory import construct, exact, montecarlo


def _target(rng: np.random.Generator, widths: list[int], keep: float = 1.0) -> tuple[list, list]:
    ws = [
        rng.normal(size=(widths[l + 1], widths[l])) * (rng.random((widths[l + 1], widths[l])) < keep)
        for l in range(len(widths) - 1)
    ]
    bs = [rng.normal(size=w) for w in widths[1:]]
    return ws, bs


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * max(1.0, float(np.abs(b).max())))


def _edge_really_missing(masks: list, ws: list, q: list[int], err: construct.ConstructionError, valid) -> bool:
    """Check a reported failure independently: the named copy has no usable edge from the named input block."""
    l, (i, j), r = err.layer, err.target_edge[:2], err.source_row
    if l == 0:
        return not masks[0][r, j]
    block = slice(j * q[l - 1], (j + 1) * q[l - 1])
    return ws[l - 1][i, j] != 0 and not (masks[l][r, block] & valid[l - 1][block]).any()


@settings(max_examples=25)
@given(
    st.lists(st.integers(1, 5), min_size=2, max_size=4),
    st.floats(0.3, 0.9),
    st.floats(0.5, 1.0),
    st.integers(0, 2**31),
    st.sampled_from(["proof", "tight"]),
    st.floats(-2.0, 1.0),
)
def test_construction_is_exact_or_names_a_missing_edge(widths, p, keep, seed, mode, a1) -> None:
    rng = np.random.default_rng(seed)
    ws, bs = _target(rng, widths, keep)
    L = len(ws)
    q = [4] * L + [1]
    masks = construct.sample_source_masks(ws, q, p, rng)
    try:
        src = construct.construct(ws, bs, masks, q, input_low=a1, mode=mode)
    except construct.ConstructionError as err:
        # in proof mode every copy counts as valid; in tight mode recompute validity by a plain loop
        valid = [np.ones(q[0] * widths[0], dtype=bool)]
        for l in range(1, L + 1):
            rows = []
            for r in range(q[l] * widths[l]):
                i = r // q[l]
                usable = valid[l - 1] | (mode == "proof")
                ok = all(
                    ws[l - 1][i, j] == 0
                    or (
                        masks[l][r, j * q[l - 1] : (j + 1) * q[l - 1]] & usable[j * q[l - 1] : (j + 1) * q[l - 1]]
                    ).any()
                    for j in range(widths[l - 1])
                )
                rows.append(ok)
            valid.append(np.array(rows) | (mode == "proof"))
        assert _edge_really_missing(masks, ws, q, err, valid)
        return
    x = rng.uniform(a1, a1 + 3.0, size=(64, widths[0]))
    _close(src.forward(x), construct.target_forward(ws, bs, x))
    for w, m in zip(src.weights, src.masks, strict=True):
        assert not np.any(w[~m.reshape(w.shape)])  # every used weight sits on an unmasked edge


def test_failure_names_the_removed_edge() -> None:
    rng = np.random.default_rng(1)
    ws, bs = _target(rng, [3, 4, 2])
    q = [3, 2, 1]
    masks = [np.ones(s, dtype=bool) for s in construct.source_mask_shapes(ws, q)]
    masks[1][5, 2 * 3 : 3 * 3] = False  # copy 5 (= neuron 2, copy 1) loses every edge from input 2's block
    with pytest.raises(construct.ConstructionError) as info:
        construct.construct(ws, bs, masks, q, mode="proof")
    assert (info.value.layer, info.value.target_edge, info.value.source_row) == (1, (2, 2), 5)
    # the tight construction drops that copy and still succeeds: copy 4 of neuron 2 is complete
    src = construct.construct(ws, bs, masks, q, mode="tight")
    x = rng.uniform(0, 1, size=(10, 3))
    _close(src.forward(x), construct.target_forward(ws, bs, x))
    assert not src.weights[2][:, 5].any()


def test_conv_target_exact() -> None:
    rng = np.random.default_rng(2)
    ws = [rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=(2, 4, 1, 1))]
    bs = [rng.normal(size=3), rng.normal(size=4), rng.normal(size=2)]
    q, pads = [10, 10, 10, 1], [1, 1, 0]
    masks = construct.sample_source_masks(ws, q, 0.7, rng)
    src = construct.construct(ws, bs, masks, q, input_low=0.0, paddings=pads)
    x = rng.uniform(0, 1, size=(3, 2, 7, 7))
    _close(src.forward(x), construct.target_forward(ws, bs, x, pads))
    # unpadded first layer: negative inputs are allowed, the bias is compensated
    src2 = construct.construct(ws, bs, masks, q, input_low=-1.0, paddings=[0, 1, 0])
    x2 = rng.uniform(-1, 1, size=(2, 2, 6, 6))
    _close(src2.forward(x2), construct.target_forward(ws, bs, x2, [0, 1, 0]))
    with pytest.raises(ValueError, match="input_low"):
        construct.construct(ws, bs, masks, q, input_low=-1.0, paddings=pads)


@pytest.mark.parametrize(("mode", "q0", "q1", "p"), [("proof", 4, 3, 0.6), ("tight", 3, 4, 0.5)])
def test_success_rate_matches_exact_probability(mode: str, q0: int, q1: int, p: float) -> None:
    rng = np.random.default_rng(3)
    d, n1, n2 = 4, 3, 2
    ws, bs = _target(rng, [d, n1, n2])
    q = [q0, q1, 1]
    trials = 1500
    ok = 0
    for _ in range(trials):
        try:
            construct.construct(ws, bs, construct.sample_source_masks(ws, q, p, rng), q, mode=mode)  # type: ignore[arg-type]
            ok += 1
        except construct.ConstructionError:
            pass
    est = montecarlo.estimate(ok, trials, 0.999)
    if mode == "proof":
        want = exact.proof_success_probability(q, [d * n1, n1 * n2], p)
    else:
        ind, outd = exact.dense_degrees(d, n1, n2)
        want = np.exp(exact.tight_log_success(q0, q1, p, p, ind, outd)[0])
    assert est.contains(float(want))


def test_bad_shapes_raise_value_error() -> None:
    rng = np.random.default_rng(4)
    ws, bs = _target(rng, [2, 3, 1])
    masks = construct.sample_source_masks(ws, [2, 2, 1], 0.5, rng)
    with pytest.raises(ValueError, match="q_L"):
        construct.construct(ws, bs, masks, [2, 2, 2])
    with pytest.raises(ValueError, match="masks\\[1\\]"):
        construct.construct(ws, bs, [masks[0], masks[1][:-1], masks[2]], [2, 2, 1])
    with pytest.raises(ValueError, match="mode"):
        construct.construct(ws, bs, masks, [2, 2, 1], mode="nosuch")  # type: ignore[arg-type]


def test_tight_minimal_widths_verified_by_masks_and_construction() -> None:
    d, n1, n2, p, delta = 12, 6, 3, 0.3, 0.1
    res = exact.depth2_min_widths(d, n1, n2, p, delta, "tight")
    q = [res.q0, res.q1, 1]
    sampled = montecarlo.mask_sample(
        montecarlo.dense_supports([d, n1, n2]), q, p, 1500, 8, confidence=0.999, progress=False
    )
    assert sampled.tight.contains(res.probability)
    rng = np.random.default_rng(9)
    ws, bs = _target(rng, [d, n1, n2])
    trials, ok = 600, 0
    x = rng.uniform(0, 1, size=(8, d))
    for _ in range(trials):
        try:
            src = construct.construct(ws, bs, construct.sample_source_masks(ws, q, p, rng), q, mode="tight")
        except construct.ConstructionError:
            continue
        ok += 1
        _close(src.forward(x), construct.target_forward(ws, bs, x))
    assert montecarlo.estimate(ok, trials, 0.999).contains(res.probability)


@settings(max_examples=15)
@given(
    st.lists(st.integers(1, 3), min_size=3, max_size=4),
    st.lists(st.sampled_from([1, 2, 3]), min_size=3, max_size=3),
    st.lists(st.sampled_from([0, 1]), min_size=3, max_size=3),
    st.floats(0.4, 0.9),
    st.sampled_from(["proof", "tight"]),
    st.integers(0, 2**31),
)
def test_conv_construction_is_exact_or_names_a_missing_element(channels, kernels, pads, p, mode, seed) -> None:
    rng = np.random.default_rng(seed)
    L = len(channels) - 1
    ws = [rng.normal(size=(channels[l + 1], channels[l], kernels[l], kernels[l])) for l in range(L)]
    bs = [rng.normal(size=c) for c in channels[1:]]
    q = [6] * L + [1]
    masks = construct.sample_source_masks(ws, q, p, rng)
    try:
        src = construct.construct(ws, bs, masks, q, input_low=0.0, mode=mode, paddings=pads[:L])
    except construct.ConstructionError as err:
        if mode == "proof":  # the named copy has no unmasked edge at that kernel position from the block
            l, (i, j, u, v), r = err.layer, err.target_edge, err.source_row
            assert r // q[l] == i
            assert not masks[l][r, j * q[l - 1] : (j + 1) * q[l - 1], u, v].any()
        return
    x = rng.uniform(0, 1, size=(2, channels[0], 7, 7))
    _close(src.forward(x), construct.target_forward(ws, bs, x, pads[:L]))
