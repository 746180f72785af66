"""The convergence criterion of the study, applied per setting (its seeds pooled), and dead networks.

*Converged.*  Take the epoch records of each run's final fit (the last IMP cycle), average the validation
accuracy over the setting's live seeds epoch by epoch, and fit a least-squares line to the last
``K = max(3, ceil(window * E))`` epochs of that mean curve (``E`` epochs).  The *projected gain* is the
line's slope times ``K``: what another ``K`` epochs at the same trend would add.  The setting has converged
when the projected gain is at most ``tolerance`` percentage points.  Averaging over seeds removes most seed
noise (one seed cannot flip the flag of its setting); a straight-line fit over a window, unlike the best epoch
of the window, does not reward the last epochs of a decaying schedule for a single lucky peak.

*Dead.*  A run is dead when its test accuracy is at most a fifth of the way from chance to 100%
(chance: the majority-class share of the test set where recorded, else 1 / classes): its curve is flat
because it learns nothing, not because it converged.  A setting whose runs are all dead is reported as
*dead*, never as converged; otherwise its convergence is judged on its live runs.

A setting whose runs hold no validation accuracy, or whose final fit is shorter than ``K + 1`` epochs, is
*unchecked*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The per-epoch record key the criterion reads (a fraction in [0, 1]).
VAL_KEY = "val_accuracy"
#: Statuses of a setting.
STATUSES = ("converged", "not converged", "dead", "unchecked")


@dataclass(frozen=True)
class Criterion:
    """``window``: fraction of the final fit's epochs fitted at its end; ``tolerance``: percentage points."""

    window: float = 0.25
    tolerance: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.window < 1.0:
            raise ValueError(f"convergence window must be in (0, 1), got {self.window!r}")
        if not self.tolerance >= 0.0:
            raise ValueError(f"convergence tolerance must be >= 0 percentage points, got {self.tolerance!r}")

    def last_epochs(self, epochs: int) -> int:
        """``K``, the number of final epochs fitted."""
        return max(3, math.ceil(self.window * epochs))

    def check(self, runs: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
        """``{"status", "gain" (pts or None), "why"}`` for the epoch records of a setting's live runs."""
        fits = [final_fit(r) for r in runs]
        curves = [[r.get(VAL_KEY) for r in f] for f in fits]
        if not curves or any(not c or any(v is None for v in c) for c in curves):
            return {"status": "unchecked", "gain": None, "why": "no validation accuracy in the epoch records"}
        epochs = min(len(c) for c in curves)
        k = self.last_epochs(epochs)
        if epochs < k + 1:
            return {"status": "unchecked", "gain": None, "why": f"final fit has {epochs} epochs, needs {k + 1}"}
        mean = 100.0 * np.mean([[float(v or 0.0) for v in c[:epochs]] for c in curves], axis=0)
        gain = float(np.polyfit(np.arange(k, dtype=float), mean[-k:], 1)[0]) * k
        status = "converged" if gain <= self.tolerance else "not converged"
        return {"status": status, "gain": gain,
                "why": f"projected gain over another {k} epochs {gain:+.2f} pts (mean of {len(curves)} seeds)"}


def final_fit(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The epoch records of the last fit (records carry a ``fit`` index; without it, all of them)."""
    if not records:
        return []
    last = records[-1].get("fit")
    return [r for r in records if r.get("fit") == last]


def dead_level(chance: float) -> float:
    """Test accuracy (fraction) at or below which a run is dead: chance + (1 - chance) / 5."""
    return chance + (1.0 - chance) / 5.0


def is_dead(test_accuracy: float, chance: float | None) -> bool:
    """Whether a run is dead (see the module docstring); never without a chance level."""
    return chance is not None and test_accuracy <= dead_level(chance)


__all__ = ["STATUSES", "VAL_KEY", "Criterion", "dead_level", "final_fit", "is_dead"]
