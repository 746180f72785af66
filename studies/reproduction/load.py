"""A variant's design, arms, result files, table and verdicts, loaded together (no training)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studies.reproduction.arms import Arm, build_arms
from studies.reproduction.claims import Check, verdicts
from studies.reproduction.design import ROOT, Design, load_design
from studies.reproduction.results import ResultStore
from studies.reproduction.table import Table, build_table

#: The default folder of a variant's result files.
RESULTS_DIR = ROOT / "results" / "reproduction"


def results_dir(variant: str, results: Path | None = None) -> Path:
    return results if results is not None else RESULTS_DIR / variant


@dataclass(frozen=True)
class StudyData:
    """Everything the document and the figures read."""

    design: Design
    arms: tuple[Arm, ...]
    index: dict[str, dict[str, Any]]
    table: Table
    verdicts: dict[int, tuple[str, list[Check]]]

    STATUSES = ("converged", "not converged", "unchecked")

    def restricted(self, claim: int, exclude: dict[str, Any] | None = None, **labels: Any) -> StudyData:
        """The same data with ``claim``'s entries limited to settings matching ``labels`` (minus ``exclude``)."""
        keep = {}
        for (k, s), e in self.table.entries.items():
            own = dict(s)
            drop = k == claim and (any(own.get(a) != v for a, v in labels.items())
                                   or any(own.get(a) == v for a, v in (exclude or {}).items()))
            if not drop:
                keep[(k, s)] = e
        return dataclasses.replace(self, table=dataclasses.replace(self.table, entries=keep))

    def records(self, claim: int, **labels: Any) -> list[tuple[Arm, dict[str, Any]]]:
        """The finished arms of ``claim`` whose setting includes ``labels``, with their result records."""
        out = []
        for arm in self.arms:
            if arm.claim != claim or arm.config is None or arm.config.run_hash() not in self.index:
                continue
            if all(dict(arm.setting).get(k) == v for k, v in labels.items()):
                out.append((arm, self.index[arm.config.run_hash()]))
        return out

    def run_count(self, claim: int) -> int:
        return len({a.config.run_hash() for a, _ in self.records(claim) if a.config is not None})

    def convergence_counts(self, claim: int) -> Counter[str]:
        runs = {a.config.run_hash() for a, _ in self.records(claim) if a.config is not None}
        return Counter(self.table.checks[h]["status"] for h in runs)

    def unconverged(self) -> list[list[str]]:
        """Rows (claim, setting, seed, status, why) of every run that did not meet the criterion."""
        rows, seen = [], set()
        for arm in self.arms:
            h = arm.config.run_hash() if arm.config is not None else None
            if h is None or h not in self.table.checks or self.table.checks[h]["status"] == "converged":
                continue
            if (arm.claim, h) in seen:
                continue
            seen.add((arm.claim, h))
            label = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in arm.setting)
            rows.append([str(arm.claim), label, str(arm.seed), self.table.checks[h]["status"],
                         self.table.checks[h]["why"]])
        return rows

    def repair_edges(self, model: str) -> list[tuple[str, float]]:
        """Mean edges added by flow repair per (ratio, sparsity) of claim 1 for ``model`` (where any were added)."""
        out = []
        for s in self.table.settings(1):
            own = dict(s)
            if own["model"] != model or own["repair"] == "none":
                continue
            edges = [float(r.get("flow_repair_edges_added_total", 0)) for _, r in self.records(1, **own)]
            if edges and max(edges) > 0:
                out.append((f"{own['ratio']} {own['sparsity']:g}", sum(edges) / len(edges)))
        return out

    def width_of(self, er_width: float) -> float:
        """The width of claim 2's dense network with as many non-zeros as the ER network at ``er_width``."""
        recs = self.records(2, kind="dense, equal non-zeros", width=er_width)
        if recs:
            return float(recs[0][1]["config"]["width"])
        cfgs = [a.config for a in self.arms if a.claim == 2 and dict(a.setting) == {
            "kind": "dense, equal non-zeros", "width": er_width} and a.config is not None]
        return float(cfgs[0].width) if cfgs else float("nan")

    def cpu_seconds(self) -> float:
        """CPU seconds of the distinct runs of the variant's arms (flow-repair twins counted once)."""
        runs = {a.config.run_hash() for a in self.arms if a.config is not None}
        trained = {self.index[h].get("trained_as", h): self.index[h] for h in runs if h in self.index}
        return float(sum(r.get("cpu_s", 0.0) for r in trained.values()))


def load(variant: str | Path, results: Path | None = None, claims: Sequence[int] = (1, 2, 3, 4, 5)) -> StudyData:
    """Load a variant's design and result files and compute its table and verdicts."""
    design = load_design(variant)
    index = ResultStore(results_dir(design.name, results)).index()
    arms = tuple(build_arms(design, index, tuple(claims)))
    table = build_table(arms, index, design.criterion)
    return StudyData(design, arms, index, table, verdicts(design, table, tuple(claims)))


__all__ = ["RESULTS_DIR", "StudyData", "load", "results_dir"]
