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

from ertrain.config import TrainConfig
from studies.reproduction.arms import Arm, Setting
from studies.reproduction.convergence import Criterion, is_dead
from studies.reproduction.stats import Cell


@dataclass(frozen=True)
class Entry:
    """One setting of a claim: its accuracy cell and what else its runs say.

    ``density``: the mean realised density of its runs; ``config``: its first seed's configuration;
    ``status``: the setting's convergence status (:mod:`studies.reproduction.convergence`); ``dead``: how many
    of its runs are dead; ``gain``/``why``: the convergence criterion's projected gain and explanation.
    """

    cell: Cell
    density: float
    runs: tuple[str, ...]
    status: str
    cpu_s: float
    dead: int = 0
    gain: float | None = None
    why: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    config: TrainConfig | None = None


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
    """Pool the finished arms of every claim by setting; judge each setting's convergence (its seeds pooled).

    ``checks`` maps every finished run to its setting's status (a run in several settings takes the first).
    """
    groups: dict[tuple[int, Setting], list[tuple[str, Mapping[str, Any]]]] = defaultdict(list)
    probes = []
    for arm in arms:
        if arm.config is None or arm.config.run_hash() not in index:
            continue
        run = arm.config.run_hash()
        record = index[run]
        if arm.role == "calibration":
            probes.append((arm, dict(record)))
        elif run not in (r for r, _ in groups[(arm.claim, arm.setting)]):
            groups[(arm.claim, arm.setting)].append((run, record))
    configs: dict[tuple[int, Setting], TrainConfig] = {}
    for arm in arms:
        if arm.config is not None and arm.role != "calibration":
            configs.setdefault((arm.claim, arm.setting), arm.config)
    entries = {key: _entry(runs, criterion, configs.get(key)) for key, runs in groups.items()}
    checks: dict[str, dict[str, Any]] = {}
    for entry in entries.values():
        for run in entry.runs:
            checks.setdefault(run, {"status": entry.status, "gain": entry.gain, "why": entry.why})
    for arm, record in probes:
        assert arm.config is not None
        checks.setdefault(arm.config.run_hash(), dict(_judge([record], criterion)))
    return Table(entries, checks, tuple(probes))


def chance(record: Mapping[str, Any]) -> float | None:
    """The chance accuracy (fraction) of a run's task: the test majority share, else 1 / declared classes."""
    if "test_majority_share" in record:
        return float(record["test_majority_share"])
    from ertrain.data import declared_classes

    classes = declared_classes(str(record["config"]["dataset"]))
    return None if classes is None else 1.0 / classes


def _judge(records: Sequence[Mapping[str, Any]], criterion: Criterion) -> dict[str, Any]:
    live = [r for r in records if not is_dead(float(r["test_accuracy"] or 0.0), chance(r))]
    if not live:
        return {"status": "dead", "gain": None, "why": "every run at most a fifth of the way from chance to 100%"}
    return criterion.check([r.get("epochs", []) for r in live])


def _entry(runs: Sequence[tuple[str, Mapping[str, Any]]], criterion: Criterion, config: TrainConfig | None) -> Entry:
    records = [r for _, r in runs]
    extra = {k: float(np.mean([r[k] for r in records])) for k in ("test_majority_share",)
             if all(k in r for r in records)}
    chances = [chance(r) for r in records]
    if chances and all(c is not None for c in chances):
        extra["chance"] = float(np.mean([c for c in chances if c is not None]))
    judged = _judge(records, criterion)
    dead = sum(is_dead(float(r["test_accuracy"] or 0.0), chance(r)) for r in records)
    return Entry(cell=Cell(tuple(100.0 * float(r["test_accuracy"] or 0.0) for r in records)),
                 density=float(np.mean([r["density"] for r in records])), runs=tuple(h for h, _ in runs),
                 status=str(judged["status"]), cpu_s=float(sum(r.get("cpu_s", 0.0) for r in records)), dead=dead,
                 gain=judged["gain"], why=str(judged["why"]), extra=extra, config=config)


__all__ = ["Entry", "Table", "build_table", "chance"]
