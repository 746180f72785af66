"""The five claims: the paper's sentence, the decision rule fixed in advance, and the rule as code.

Every rule is a list of tests on differences of mean test accuracy (:class:`~studies.reproduction.stats.Comparison`,
95% Welch intervals, margin ``m`` percentage points from the design); the claim's verdict combines them with
:func:`~studies.reproduction.stats.combine`.  The sentences are quoted from ``/work/shared/paper/DIGEST.md`` (the
paper's digest) or translated from the paper's text where the digest is silent, as marked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from studies.reproduction.design import Design
from studies.reproduction.stats import FAILS, HOLDS, INCONCLUSIVE, Cell, Comparison, Difference, combine, difference
from studies.reproduction.table import Table


@dataclass(frozen=True)
class Check:
    """One test of a rule, applied: what it compares, the difference with its interval, and the outcome."""

    statement: str
    a: str
    b: str
    diff: Difference
    outcome: str
    note: str = ""


def check(statement: str, a: tuple[str, Cell], b: tuple[str, Cell], direction: str, threshold: float,
          note: str = "") -> Check:
    """Apply ``Comparison(statement, direction, threshold)`` to ``mean(a) - mean(b)``; no data is inconclusive."""
    diff = difference(a[1], b[1])
    outcome = Comparison(statement, direction, threshold).decide(diff) if a[1].n and b[1].n else INCONCLUSIVE
    return Check(statement, a[0], b[0], diff, outcome, note or ("" if a[1].n and b[1].n else "no finished runs"))


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, with its rule."""

    number: int
    title: str
    paper: str
    rule: str
    apply: Callable[[Design, Table], list[Check]]

    def verdict(self, design: Design, table: Table) -> tuple[str, list[Check]]:
        checks = self.apply(design, table)
        return combine([c.outcome for c in checks]), checks


def _pct(s: float) -> str:
    return f"{s:g}"


# ------------------------------------------------------------------------------------------------ claim 1


def rule1(design: Design, t: Table) -> list[Check]:
    from studies.reproduction.arms import ratio_grids

    m, repair, out = design.margin, design.claim(1)["flow_repair"], []
    for model, grid in ratio_grids(design).items():
        for s in grid.sparsities:
            erk = (f"{model} ERK {_pct(s)}", t.cell(1, model=model, ratio="erk", repair="none", sparsity=s))
            for ratio in ("balanced", "pyramidal"):
                cell = t.cell(1, model=model, ratio=ratio, repair="none", sparsity=s)
                out.append(check(f"{ratio} matches or beats ERK", (f"{model} {ratio} {_pct(s)}", cell), erk,
                                 "above", -m))
        top = max(grid.sparsities)
        if top < 0.99:
            continue
        cells = {r: t.cell(1, model=model, ratio=r, repair="none", sparsity=top) for r in grid.schemes}
        best = max(cells, key=lambda r: cells[r].mean if cells[r].n else -math.inf)
        out.append(check(f"ER networks degrade at sparsity {_pct(top)} (best ratio below dense)",
                         (f"{model} {best} {_pct(top)}", cells[best]),
                         (f"{model} dense", t.cell(1, model=model, ratio="dense")), "below", -m))
        if "pyramidal" in grid.repaired:
            out.append(check(f"flow repair gives pyramidal a visible gain at {_pct(top)}",
                             (f"{model} pyramidal + repair {_pct(top)}",
                              t.cell(1, model=model, ratio="pyramidal", repair=repair, sparsity=top)),
                             (f"{model} pyramidal {_pct(top)}", cells["pyramidal"]), "above", 0.0))
    return out


# ------------------------------------------------------------------------------------------------ claim 2


def theory_factor(design: Design) -> dict[str, float]:
    """Theorem 2.2's coverage factors for the claim's dense width-1 target at its density (``delta`` from the design).

    Returns ``q_hidden`` (the largest factor of a hidden layer: how many times wider the theorem asks the
    hidden layers to be), ``q_0`` (the construction layer's) and ``factor`` = 1/log(1/(1-p)).
    """
    from ertheory.bounds import theorem_2_2, width_factor
    from studies.reproduction.datashapes import model_kwargs

    c = design.claim(2)
    fields = dict(c.get("fields", {}))
    kwargs = model_kwargs(design.config(c["model"], **fields))
    hidden = [int(h) for h in fields.get("model_options", {}).get("hidden", (300, 100))]
    widths = [kwargs["in_features"], *hidden, kwargs["num_classes"]]
    density = 1.0 - float(c["sparsity"])
    bound = theorem_2_2(widths, density, float(c["delta"]))
    q = [float(v) for v in bound.q]
    return {"q_hidden": max(q[1:-1]), "q_0": q[0], "factor": float(width_factor(density))}


def rule2(design: Design, t: Table) -> list[Check]:
    m, c = design.margin, design.claim(2)
    widths = sorted(float(w) for w in c["widths"])
    target = ("dense width 1", t.cell(2, kind="dense", width=1.0))
    er = {w: (f"ER width {w:g}", t.cell(2, kind="ER", width=w)) for w in widths}
    out = [check("widening raises the accuracy of the ER network", er[widths[-1]], er[widths[0]], "above", 0.0),
           check("the widest ER network matches the dense target", er[widths[-1]], target, "above", -m)]
    q = theory_factor(design)["q_hidden"]
    within = [check(f"ER width {w:g} matches the dense target", er[w], target, "above", -m) for w in widths if w <= q]
    if any(x.outcome == HOLDS for x in within):
        outcome = HOLDS
    elif within and all(x.outcome == FAILS for x in within) and widths[-1] >= q:
        outcome = FAILS
    else:
        outcome = INCONCLUSIVE
    first = next((x for x in within if x.outcome == HOLDS), within[-1] if within else None)
    diff = first.diff if first is not None else Difference(math.nan, -math.inf, math.inf)
    matched = [w for w in widths if check("", er[w], target, "above", -m).outcome == HOLDS]
    needs = f"training needs x{matched[0]:g}" if matched else f"no trained width up to x{widths[-1]:g} matches"
    note = f"theory asks for x{q:.1f} (Theorem 2.2, delta {c['delta']:g}), {needs}"
    out.append(Check("an ER network at most as wide as the theory's factor matches the dense target",
                     first.a if first else "-", target[0], diff, outcome, note))
    return out


# ------------------------------------------------------------------------------------------------ claim 3


def rule3(design: Design, t: Table) -> list[Check]:
    from studies.reproduction.arms import start_name, starts

    m, c, out = design.margin, design.claim(3), []
    final = 1.0 - float(c["final_sparsity"])
    for method in ("imp", "rigl", "str"):
        dense = (f"{method} from dense", t.cell(3, method=method, start="dense"))
        for start in starts(c)[1:]:
            name = start_name(start)
            entry = t.get(3, method=method, start=name)
            off = entry is not None and abs(entry.density - final) > float(c["str"]["tolerance"])
            res = check(f"{method} from an ER start costs little", (f"{method} from {name}",
                        t.cell(3, method=method, start=name)), dense, "above", -m)
            if off and entry is not None:
                res = Check(res.statement, res.a, res.b, res.diff, INCONCLUSIVE,
                            f"final density {entry.density:.3f}, not the target {final:g}")
            out.append(res)
    return out


# ------------------------------------------------------------------------------------------------ claim 4


def rule4(design: Design, t: Table) -> list[Check]:
    from studies.reproduction.arms import own_sparsities

    m, out = design.margin, []
    for s in (float(x) for x in design.claim(4)["sparsities"]):
        cells = {k: (f"{k} {_pct(s)}", t.cell(4, mask=k, sparsity=s))
                 for k in ("ER balanced", "ER pyramidal", "ER synflow", "ER imp", "ER snip")}
        for ours in ("ER balanced", "ER pyramidal"):
            for theirs in ("ER synflow", "ER imp") if s in own_sparsities(design.claim(4)) else ("ER synflow",):
                out.append(check(f"{ours[3:]} matches or beats {theirs}", cells[ours], cells[theirs], "above", -m))
        if s >= 0.99:
            out.append(check("ER snip collapses at extreme sparsity (below balanced)", cells["ER snip"],
                             cells["ER balanced"], "below", -m))
    return out


# ------------------------------------------------------------------------------------------------ claim 5


def rule5(design: Design, t: Table) -> list[Check]:
    m, out = design.margin, []
    for task in design.claim(5)["tasks"]:
        dataset = task["dataset"]
        er_start = f"uniform ER {float(task['start_sparsity']):g}"
        dense = t.get(5, task=dataset, start="dense")
        res = check(f"IMP from an ER start is competitive on {dataset}",
                    (f"{dataset}, {er_start}", t.cell(5, task=dataset, start=er_start)),
                    (f"{dataset}, dense start", t.cell(5, task=dataset, start="dense")), "above", -m)
        share = 100.0 * dense.extra["test_majority_share"] if dense and "test_majority_share" in dense.extra else None
        if share is not None and dense is not None and dense.cell.mean <= share + m:
            res = Check(res.statement, res.a, res.b, res.diff, INCONCLUSIVE,
                        f"the dense start did not learn: {dense.cell.mean:.2f}% vs majority class {share:.2f}%")
        out.append(res)
    return out


# ------------------------------------------------------------------------------------------------ the table

CLAIMS: tuple[Claim, ...] = (
    Claim(1, "Layerwise ratios and flow repair",
          "\"Empirically, balanced and pyramidal ratios beat or match ERK up to sparsity 0.99. ER networks degrade "
          "at sparsity ≥0.99 and collapse for ER-Snip and pyramidal there.\" (DIGEST §11); \"Flow repair matters "
          "most for **Pyramidal** and **ER-Snip** (sparse last layer): visible gains for pyramidal at 0.99 and "
          "0.995 (Figure 3).\" (DIGEST §9)",
          "For each model and sparsity: balanced − ERK and pyramidal − ERK above −m (match or beat). At the "
          "highest sparsity (0.99): the best ratio − dense below −m (degrades); pyramidal with flow repair − "
          "pyramidal above 0 (visible gain).", rule1),
    Claim(2, "Widening ER networks",
          "\"The width factor is 1/log(1/(1−p)) with p = density. [...] The factor is sufficient (Theorems 2.1, "
          "2.2, A.5; exact representation when weights are free) and necessary for 1-hidden-layer ER (Theorem "
          "2.3).\" (DIGEST §11)",
          "At the design's sparsity: ER at the widest width − ER at width 1 above 0; ER at the widest width − "
          "dense at width 1 above −m; and some ER width no larger than Theorem 2.2's hidden-layer factor q "
          "matches the dense target (holds if one does; fails if every such width fails and widths up to q "
          "were trained; else inconclusive). Equal-non-zero comparisons are reported, not judged (the paper "
          "states nothing about them).", rule2),
    Claim(3, "Sparse-to-sparse training from ER starts",
          "\"Starting IMP, STR, RiGL or edge-popup from an ER mask of sparsity 0.5–0.9 costs little.\" "
          "(DIGEST §11); \"An ER start at 0.7 matches a dense start.\" (DIGEST §10, Table 4)",
          "For IMP, RiGL and STR and each ER start: method from the ER start − method from the dense start "
          "above −m, all ending at the same final density (an STR setting whose mean final density misses the "
          "target by more than the calibration tolerance is inconclusive).", rule3),
    Claim(4, "Randomised saliency ratios: ER-SNIP, ER-SynFlow, ER-IMP",
          "Table 1 compares \"Uniform, ERK, Balanced, Pyramidal, ER-IMP, ER-Synflow (iterative), ER-Snip\" "
          "(DIGEST §10) and the paper's §3 says (our translation of its text; the digest is silent): "
          "\"Importantly, they [balanced and pyramidal] also outperform the layerwise sparsity ratios obtained "
          "by the expensive iterative pruning algorithms Synflow and IMP. However, for extreme sparsity "
          "1−p ≥ 0.99 the performance of ER networks drops significantly and even collapses entirely for "
          "methods such as ER Snip and pyramidal.\"",
          "For each sparsity: balanced − ER-SynFlow, balanced − ER-IMP, pyramidal − ER-SynFlow, pyramidal − "
          "ER-IMP above −m (match or beat); at sparsity ≥ 0.99: ER-SNIP − balanced below −m (collapse). The "
          "methods' own masks are reported beside their randomised ratios, not judged (the paper reports no "
          "numbers for them in these tables).", rule4),
    Claim(5, "Non-image data",
          "\"T30 IMP sparse→sparse, 2-layer GCN on CORA [...] T31 Algorithmic data [...] T32 Tabular data\" "
          "(DIGEST §10) and, in the paper's text (our translation): \"Consistently, we find that pruning "
          "sparse random networks achieves competitive performance compared with pruning a dense network.\"",
          "For each task: IMP from the uniform ER start − IMP from the dense start above −m; inconclusive when "
          "the dense start does not beat the majority-class share of the test set by more than m.", rule5),
)
CLAIM_BY_NUMBER: dict[int, Claim] = {c.number: c for c in CLAIMS}


def verdicts(design: Design, table: Table, claims: tuple[int, ...]) -> dict[int, tuple[str, list[Check]]]:
    """Claim number -> (verdict, checks) for ``claims``."""
    return {k: CLAIM_BY_NUMBER[k].verdict(design, table) for k in claims}


__all__ = ["CLAIMS", "CLAIM_BY_NUMBER", "Check", "Claim", "check", "theory_factor", "verdicts"]
