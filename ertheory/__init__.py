"""ertheory: the mathematics of random (Erdos-Renyi) sparse networks.

Width bounds, exact probabilities, Monte-Carlo checks, explicit constructions and an exact
subset-sum solver for the theorems of Gadhikar, Mukherjee & Burkholz, "Why Random Pruning Is
All We Need to Start Sparse" (ICML 2023, arXiv 2210.02412).  numpy/scipy/sympy only: this
package never imports torch.
"""

__version__ = "0.1.0"
