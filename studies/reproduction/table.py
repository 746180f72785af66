"""The study's results as cells: one per (claim, setting), built from the result files only.

A :class:`Table` groups the finished arms of each claim by setting (seeds pooled) into
:class:`~studies.reproduction.stats.Cell` objects of test accuracy in percent, with the mean final density and the
convergence status of each run.  Calibration probes (STR) are kept apart: they are reported, not pooled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from studies.reproduction.arms import Arm, Setting
from studies.reproduction.convergence import Criterion
from studies.reproduction.stats import Cell


@dataclass(frozen=True)
class Entry:
    """One setting of a claim: its accuracy cell and what else its runs say."""

    cell: Cell
    density: float
    runs: tuple[str, ...]
    convergence: tuple[str, ...]
    cpu_s: float
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    """Cells by claim and setting, plus the per-run convergence checks and the calibration probes."""

    entries: dict[tuple[int, Setting], Entry]
    checks: dict[str, dict[str, Any]]
    probes: tuple[tuple[Arm, dict[str, Any]], ...]

    def get(self, claim: int, **labels: Any) -> Entry | None:
        """The entry of the setting whose labels include ``labels`` (None when absent; ambiguous raises)."""
        hits = [e for (k, s), e in self.entries.items() if k == claim and _matches(s, labels)]
        if len(hits) > 1:
            raise ValueError(f"claim {claim}: labels {labels} match {len(hits)} settings; give more labels")
        return hits[0] if hits else None

    def cell(self, claim: int, **labels: Any) -> Cell:
        """The accuracy cell of a setting (an empty cell when the setting has no finished run)."""
        entry = self.get(claim, **labels)
        return entry.cell if entry is not None else Cell(())

    def settings(self, claim: int) -> list[Setting]:
        return [s for (k, s) in self.entries if k == claim]


def _matches(s: Setting, labels: Mapping[str, Any]) -> bool:
    own = dict(s)
    return all(k in own and _same(own[k], v) for k, v in labels.items())


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) < 1e-9
        except (TypeError, ValueError):
            return False
    return bool(a == b)


def build_table(arms: Sequence[Arm], index: Mapping[str, Mapping[str, Any]], criterion: Criterion) -> Table:
    """Pool the finished arms of every claim by setting; check every finished run's convergence."""
    groups: dict[tuple[int, Setting], list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
    probes = []
    checks: dict[str, dict[str, Any]] = {}
    for arm in arms:
        if arm.config is None or arm.config.run_hash() not in index:
            continue
        run = arm.config.run_hash()
        record = index[run]
        checks[run] = criterion.check(record.get("epochs", []))
        if arm.role == "calibration":
            probes.append((arm, dict(record)))
        elif run not in (r for r, _ in groups[(arm.claim, arm.setting)]):
            groups[(arm.claim, arm.setting)].append((run, record))
    entries = {key: _entry(runs, checks) for key, runs in groups.items()}
    return Table(entries, checks, tuple(probes))


def _entry(runs: Sequence[tuple[str, Mapping[str, Any]]], checks: Mapping[str, Mapping[str, Any]]) -> Entry:
    records = [r for _, r in runs]
    extra = {k: float(np.mean([r[k] for r in records])) for k in ("test_majority_share",)
             if all(k in r for r in records)}
    return Entry(cell=Cell(tuple(100.0 * float(r["test_accuracy"] or 0.0) for r in records)),
                 density=float(np.mean([r["density"] for r in records])),
                 runs=tuple(h for h, _ in runs), convergence=tuple(checks[h]["status"] for h, _ in runs),
                 cpu_s=float(sum(r.get("cpu_s", 0.0) for r in records)), extra=extra)


__all__ = ["Entry", "Table", "build_table"]
