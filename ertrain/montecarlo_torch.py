"""The proofs' Monte-Carlo count sampler (``ertheory.montecarlo.count_sample_proof``) on a torch device.

Same event and the same binomial counts as the numpy version: per trial and layer ``l`` the number
of uncovered (edge, copy) pairs ``~ Binomial(m_{T,l} q_l, (1 - p_l)^{q_{l-1}})`` (Theorems 2.1/2.2/A.5);
a trial succeeds when every count is 0.  The binomials are drawn with ``torch.binomial`` from an
explicit ``torch.Generator`` on its device (CPU or CUDA), in float64, a batch of trials at a time;
only the number of successes of each batch comes back to the host.  The result is an
``ertheory.montecarlo.MCEstimate`` with its Clopper-Pearson interval.

    import torch
    from ertrain.montecarlo_torch import count_sample_proof_torch
    est = count_sample_proof_torch([229, 141, 1], [784 * 128, 128 * 10], 0.1, 10**6, torch.Generator().manual_seed(0))
    est.estimate, est.ci_low, est.ci_high
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from ertheory._validate import check_density, check_positive_int
from ertheory.montecarlo import MCEstimate, estimate


def count_sample_proof_torch(
    q: ArrayLike,
    m_T: ArrayLike,
    density: ArrayLike,
    trials: int,
    generator: torch.Generator,
    *,
    confidence: float = 0.95,
    batch: int = 2**20,
) -> MCEstimate:
    """Estimate the probability of the proofs' event from binomial counts drawn on ``generator.device``.

    ``q`` is ``(q_0, ..., q_L)``, ``m_T`` and ``density`` have one entry per layer (or a scalar
    density), as in ``ertheory.montecarlo.count_sample_proof``; ``batch`` trials are drawn at once.
    """
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {generator!r}")
    qa = check_positive_int(q, "q").reshape(-1)
    m = check_positive_int(m_T, "m_T").reshape(-1)
    if qa.size != m.size + 1:
        raise ValueError(f"q needs one more entry than m_T, got q={q!r}, m_T={m_T!r}")
    n_trials = int(check_positive_int(trials, "trials"))
    n_batch = int(check_positive_int(batch, "batch"))
    p = np.broadcast_to(check_density(density), m.shape)
    pairs = (m * qa[1:]).astype(np.float64)
    miss = np.exp(qa[:-1] * np.log1p(-np.minimum(p, 1.0)))
    device = generator.device
    hits = torch.zeros((), dtype=torch.int64, device=device)
    done = 0
    while done < n_trials:
        size = min(n_batch, n_trials - done)
        ok = torch.ones(size, dtype=torch.bool, device=device)
        for layer in range(m.size):
            count = torch.full((size,), pairs[layer], dtype=torch.float64, device=device)
            prob = torch.full((size,), miss[layer], dtype=torch.float64, device=device)
            ok &= torch.binomial(count, prob, generator=generator) == 0
        hits += ok.sum()
        done += size
    return estimate(int(hits), n_trials, confidence)


__all__ = ["count_sample_proof_torch"]
