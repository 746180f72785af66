"""The convergence criterion every run of the study is checked against (``docs/study_design.md``).

A run has *converged* when its validation accuracy stopped improving before the end of training: over the
last ``K = max(2, ceil(window * E))`` epochs of its final fit (``E`` epochs; the final cycle of IMP), the best
validation accuracy exceeds the best one of the earlier epochs of that fit by at most ``tolerance``
percentage points.  A run whose epoch records hold no validation accuracy, or whose final fit is shorter
than ``K + 1`` epochs, cannot be checked and is reported as *unchecked*; nothing is assumed about it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The per-epoch record key the criterion reads (a fraction in [0, 1]).
VAL_KEY = "val_accuracy"


@dataclass(frozen=True)
class Criterion:
    """``window``: fraction of the final fit's epochs examined at its end; ``tolerance``: percentage points."""

    window: float = 0.25
    tolerance: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.window < 1.0:
            raise ValueError(f"convergence window must be in (0, 1), got {self.window!r}")
        if not self.tolerance >= 0.0:
            raise ValueError(f"convergence tolerance must be >= 0 percentage points, got {self.tolerance!r}")

    def last_epochs(self, epochs: int) -> int:
        """``K``, the number of final epochs examined."""
        return max(2, math.ceil(self.window * epochs))

    def check(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``{"status": "converged" | "not converged" | "unchecked", "gain": pts or None, "why": text}``."""
        final = final_fit(records)
        values = [r.get(VAL_KEY) for r in final]
        if not final or any(v is None for v in values):
            return {"status": "unchecked", "gain": None, "why": "no validation accuracy in the epoch records"}
        k = self.last_epochs(len(final))
        if len(final) < k + 1:
            return {"status": "unchecked", "gain": None, "why": f"final fit has {len(final)} epochs, needs {k + 1}"}
        acc = [100.0 * float(v) for v in values if v is not None]
        gain = max(acc[-k:]) - max(acc[:-k])
        status = "converged" if gain <= self.tolerance else "not converged"
        return {"status": status, "gain": gain, "why": f"best of last {k} epochs minus best before: {gain:+.2f} pts"}


def final_fit(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The epoch records of the last fit (records carry a ``fit`` index; without it, all of them)."""
    if not records:
        return []
    last = records[-1].get("fit")
    return [r for r in records if r.get("fit") == last]


__all__ = ["VAL_KEY", "Criterion", "final_fit"]
