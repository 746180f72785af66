"""Figure 2: width of source layer 1 required by Theorem 2.1 against sparsity (plus depth L = 2, 3, 4).

Writes ``figure2.png``, ``figure2.csv`` (``sparsity,q1,width``) and ``figure2_depth.csv`` into ``--out``
(default ``figures/out``).  The computation and plot live in ``ertheory.figure2`` so that the console
command ``ertheory figure2`` produces the same files.
"""

from __future__ import annotations

import sys

from ertheory.figure2 import main

if __name__ == "__main__":
    sys.exit(main())
