"""ertheory: the mathematics of random (Erdos-Renyi) sparse networks.

Width bounds, exact probabilities, Monte-Carlo checks, explicit constructions and an exact
subset-sum solver for the theorems of Gadhikar, Mukherjee & Burkholz, "Why Random Pruning Is
All We Need to Start Sparse" (ICML 2023, arXiv 2210.02412).  numpy/scipy/sympy only: this
package never imports torch.

The public functions are importable from the package (loaded on first use, so ``import ertheory``
stays cheap)::

    from ertheory import theorem_2_1, theorem_2_3, proof_min_q, best_subset
"""

from __future__ import annotations

from ertheory._lazy import lazy_exports

__version__ = "0.1.0"

#: Public name -> module that defines it.
_PUBLIC = {
    # bounds: Theorems 2.1, 2.2/A.4, A.5, 2.3, Lemma 2.4, Theorem 2.5, eq. (3)
    "WidthBound": "bounds", "LowerBound": "bounds", "width_factor": "bounds", "theorem_2_1": "bounds",
    "theorem_2_2": "bounds", "theorem_a5": "bounds", "theorem_2_3": "bounds", "lemma_2_4": "bounds",
    "lemma_2_4_width": "bounds", "theorem_2_5": "bounds", "epsilon_l": "bounds",
    # exact probabilities and minimal widths
    "proof_success_probability": "exact", "proof_failure_probability": "exact", "proof_min_q": "exact",
    "depth2_min_widths": "exact", "lower_bound_success_probability": "exact", "lower_bound_min_width": "exact",
    # subset sums (Lemma 2.4)
    "best_subset": "subsetsum", "best_subset_er": "subsetsum", "coverage": "subsetsum",
    "coverage_probability": "subsetsum", "required_n": "subsetsum", "fit_c1": "subsetsum",
    # the proofs' constructions
    "sample_source_masks": "construct", "SourceNetwork": "construct",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


__getattr__, __dir__ = lazy_exports("ertheory", {k: (v, k) for k, v in _PUBLIC.items()}, globals())
