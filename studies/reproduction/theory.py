"""Claim 2's existence and necessity statements checked by construction and exact computation (no training).

Theorems 2.1-2.2 say that an ER source of density ``p`` whose layers are ``q_l`` times wider than a target
*contains* the target with probability at least ``1 - delta``; they say nothing about whether training finds
those weights.  :func:`existence` builds the proof's weights (:func:`ertheory.construct.construct`) in sampled
ER sources at the theorem's widths and checks that the built network equals the target on random inputs, that
the exact probability of the proof's event (:func:`ertheory.exact.proof_success_probability`) is at least
``1 - delta``, and that the observed share of sources where the construction goes through is not
significantly below ``1 - delta`` (one-sided binomial test at 5%).  Theorem 2.3 says that a one-hidden-layer
source narrower than its bound misses some target with probability more than ``delta``: :func:`necessity`
compares the stated bound with the exact minimal width (:func:`ertheory.exact.lower_bound_min_width`) and
cross-checks that width by simulating the path event just below and at it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from studies.reproduction.stats import FAILS, HOLDS

#: Significance level of the binomial check of the construction's success rate.
ALPHA = 0.05


@dataclass(frozen=True)
class TheoryCheck:
    """One exact check: the statement, what was computed, and ``holds`` / ``fails``."""

    statement: str
    computed: str
    outcome: str


def existence(target: tuple[int, ...], density: float, delta: float, sources: int, seed: int = 0) -> TheoryCheck:
    """Theorem 2.2 by construction for a random dense ReLU target of widths ``target`` (see the module docstring)."""
    from ertheory.bounds import theorem_2_2
    from ertheory.construct import ConstructionError, construct, sample_source_masks, target_forward
    from ertheory.exact import proof_success_probability

    rng = np.random.default_rng(seed)
    weights = [rng.uniform(-1, 1, (b, a)) for a, b in zip(target[:-1], target[1:], strict=True)]
    biases = [rng.uniform(-1, 1, b) for b in target[1:]]
    bound = theorem_2_2(list(target), density, delta)
    q = [int(v) for v in np.asarray(bound.q_int).reshape(-1)]
    m_t = [w.size for w in weights]
    exact = float(proof_success_probability(q, m_t, density))
    x = rng.uniform(0, 1, (64, target[0]))
    built, worst = 0, 0.0
    for _ in range(sources):
        masks = sample_source_masks(weights, q, density, rng)
        try:
            net = construct(weights, biases, masks, q)
        except ConstructionError:
            continue
        built += 1
        worst = max(worst, float(np.max(np.abs(net.forward(x) - target_forward(weights, biases, x)))))
    failures = sources - built
    p_value = float(stats.binom.sf(failures - 1, sources, delta))  # P(X >= failures) if the failure rate is delta
    ok = exact >= 1.0 - delta and worst <= 1e-9 and p_value > ALPHA
    computed = (f"target widths {list(target)}, density {density:g}, delta {delta:g}: Theorem 2.2's copies q = {q}; "
                f"exact probability of the proof's event {exact:.4f}; the construction went through in {built} of "
                f"{sources} sampled sources (binomial p = {p_value:.3f} against a failure rate of delta), largest "
                f"|source - target| on 64 random inputs {worst:.1e}")
    return TheoryCheck("Theorem 2.2: an ER source at the theorem's widths contains the target with probability "
                       "at least 1 - delta", computed, HOLDS if ok else FAILS)


def necessity(d: int, density: float, delta: float, sources: int, seed: int = 0) -> TheoryCheck:
    """Theorem 2.3 against the exact minimal width, cross-checked by simulating the path event."""
    from ertheory.bounds import theorem_2_3
    from ertheory.exact import lower_bound_min_width, lower_bound_success_probability

    stated = int(np.asarray(theorem_2_3(d, density, delta).paper_width))
    n_min = int(np.asarray(lower_bound_min_width(d, density, delta)))
    rng = np.random.default_rng(seed)
    shares = {}
    for n in (n_min - 1, n_min):
        hit = 0
        for _ in range(sources):
            a = rng.random((n, d)) < density
            b = rng.random(n) < density
            hit += bool(a[b].any(axis=0).all())
        shares[n] = hit / sources
    exact = {n: float(lower_bound_success_probability(d, n, density)) for n in shares}
    ok = n_min >= stated and exact[n_min - 1] < 1.0 - delta <= exact[n_min]
    computed = (f"d = {d} inputs, density {density:g}, delta {delta:g}: stated bound {stated}, exact minimal width "
                f"{n_min} (probability that every input has a path: {exact[n_min - 1]:.4f} at {n_min - 1}, "
                f"{exact[n_min]:.4f} at {n_min}; simulated over {sources} sources: {shares[n_min - 1]:.4f}, "
                f"{shares[n_min]:.4f})")
    return TheoryCheck("Theorem 2.3: a one-hidden-layer ER source narrower than the stated bound misses some target "
                       "with probability more than delta (the stated bound is at most the exact minimal width)",
                       computed, HOLDS if ok else FAILS)


__all__ = ["ALPHA", "TheoryCheck", "existence", "necessity"]
