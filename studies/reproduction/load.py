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
from studies.reproduction.convergence import STATUSES
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

    STATUSES = STATUSES

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

    def trainings(self, claim: int | None = None) -> set[str]:
        """Distinct trainings behind the result files of ``claim``'s arms (all claims when None).

        A flow-repair twin (repair added no edge) copies the unrepaired run's file and is not a training.
        """
        arms = [a for a in self.arms if a.config is not None and (claim is None or a.claim == claim)]
        runs = {a.config.run_hash() for a in arms if a.config is not None} & set(self.index)
        return {str(self.index[h].get("trained_as", h)) for h in runs}

    def run_count(self, claim: int) -> int:
        return len(self.trainings(claim))

    def convergence_counts(self, claim: int) -> Counter[str]:
        """Settings of ``claim`` by convergence status."""
        return Counter(e.status for (k, _), e in self.table.entries.items() if k == claim)

    def unconverged(self) -> list[list[str]]:
        """Rows (claims, setting, seeds, status, why) of every setting not converged, dead or unchecked, once."""
        rows: dict[tuple[str, ...], list[str]] = {}
        for (k, s), e in self.table.entries.items():
            if e.status == "converged":
                continue
            label = ", ".join(f"{a} {v:g}" if isinstance(v, float) else f"{a} {v}" for a, v in s)
            if e.runs in rows:
                rows[e.runs][0] += f", {k}"
                continue
            rows[e.runs] = [str(k), label, str(len(e.runs)), e.status, e.why]
        return list(rows.values())

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
        """CPU seconds of the distinct trainings of the variant's arms (flow-repair twins counted once)."""
        return float(sum(self.index[h].get("cpu_s", 0.0) for h in self.trainings() if h in self.index))


def load(variant: str | Path, results: Path | None = None, claims: Sequence[int] = (1, 2, 3, 4, 5)) -> StudyData:
    """Load a variant's design and result files and compute its table and verdicts."""
    design = load_design(variant)
    index = ResultStore(results_dir(design.name, results)).index()
    arms = tuple(build_arms(design, index, tuple(claims)))
    table = build_table(arms, index, design.criterion)
    return StudyData(design, arms, index, table, verdicts(design, table, tuple(claims)))


__all__ = ["RESULTS_DIR", "StudyData", "load", "results_dir"]
