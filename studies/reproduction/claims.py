"""The five claims: the paper's sentence with its section and scope, the tests fixed in advance, and the verdicts.

A rule turns the table into :class:`Plan` objects: one per comparison of two settings, each counted once.  A
plan is a *non-test* (listed, never judged) when its two arms are the same network
(:func:`studies.reproduction.identity.same_network`), when it lies outside the sentence's scope, or when it
cannot fail (the arm it must beat is dead).  Every other plan is a one-sided Welch test of
``D = mean(A) - mean(B)`` against a threshold: ``0`` where the paper says *outperforms* / *drops*, ``-m`` where
it says *competitive* / *costs little* (``m`` from the design).  :func:`verdicts` judges all the study's tests
together: Holm's step-down correction over the p-values of the claimed direction (*holds* at family-wise 5%)
and, separately, over those of the opposite direction (*fails* at family-wise 5%); anything else is
*inconclusive*.  A test is also inconclusive when one of its settings has not converged
(:mod:`studies.reproduction.convergence`), when its arms ended at different densities (STR), or when its null
arm (a fixed random mask trained without the method) passes the same test at 5% uncorrected: then the test
cannot tell the method from no method and is *powerless*.  Claim 2's statements are existence results and are
checked exactly (:mod:`studies.reproduction.theory`), outside the statistical family.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from studies.reproduction.design import Design
from studies.reproduction.stats import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    Cell,
    Difference,
    Welch,
    combine,
    difference,
    holm,
    min_detectable,
    one_sided_p,
    welch,
)
from studies.reproduction.table import Entry, Table

#: Family-wise error rate of the study's tests.
ALPHA = 0.05
#: Power at which the minimum detectable effect is stated.
POWER = 0.8
#: Outcome of a comparison that is not a test.
NOT_A_TEST = "not a test"
#: An arm: its label and its table entry (None when it has no finished run).
Side = tuple[str, Entry | None]


@dataclass(frozen=True)
class Plan:
    """A comparison fixed in advance: ``A - B`` above/below ``threshold``; ``null`` replaces A for the null check."""

    claim: int
    statement: str
    a: Side
    b: Side
    direction: str
    threshold: float
    null: Side | None = None
    non_test: str = ""
    density_tolerance: float | None = None


@dataclass(frozen=True)
class Check:
    """A judged comparison: the interval, p-values (raw and Holm), minimum detectable effect and outcome."""

    claim: int
    statement: str
    a: str
    b: str
    diff: Difference
    outcome: str
    note: str = ""
    density_a: float = math.nan
    density_b: float = math.nan
    p: float = math.nan
    p_holm: float = math.nan
    mde: float = math.nan
    threshold: float = math.nan
    direction: str = ""


@dataclass(frozen=True)
class Claim:
    """A claim of the paper: its quoted sentence (with section), scope, rule and the rule as code."""

    number: int
    title: str
    paper: str
    scope: str
    rule: str
    plans: Callable[[Design, Table], list[Plan]]


def _pct(s: float) -> str:
    return f"{s:g}"


def _side(label: str, t: Table, claim: int, **labels: object) -> Side:
    return label, t.get(claim, **labels)


def _non_test(plan: Plan) -> str:
    """Why ``plan`` is no test (identical networks; the arm to beat is dead), else ``""``."""
    from studies.reproduction.identity import same_network

    (_, ea), (_, eb) = plan.a, plan.b
    if ea is not None and eb is not None and ea.config is not None and eb.config is not None:
        same = same_network(ea.config, eb.config.replace(seed=ea.config.seed))
        if same:
            return f"the two arms are one network: {same}"
    if plan.non_test:
        return plan.non_test
    if plan.direction == "above" and eb is not None and eb.status == "dead":
        return "the arm to beat is dead (at chance): the test cannot fail"
    return ""


def collapse_level(entry: Entry | None) -> Side:
    """The level below which a network has *collapsed entirely*: the dead level of its task, as a constant arm.

    A dead run is at most a fifth of the way from chance to 100% (:func:`studies.reproduction.convergence.is_dead`);
    "collapses entirely" is tested as the arm's mean being below that level (a one-sample test: the constant arm
    has no spread).
    """
    from studies.reproduction.convergence import dead_level

    chance = entry.extra.get("chance") if entry is not None else None
    if entry is None or chance is None:
        return "collapse level (unknown chance)", None
    level = 100.0 * dead_level(chance)
    cell = Cell((level,) * max(entry.cell.n, 2))
    return (f"collapse level {level:.2f}% (chance {100 * chance:.2f}% + a fifth of the rest)",
            Entry(cell, math.nan, (), "converged", 0.0))


# ------------------------------------------------------------------------------------------------ claim 1


def _ratio(t: Table, model: str, ratio: str, s: float, repaired: tuple[str, ...], repair: str) -> Side:
    """The arm as the paper's code ran Table 1: with flow repair where this study trained it."""
    if ratio in repaired:
        return _side(f"{model} {ratio} + repair {_pct(s)}", t, 1, model=model, ratio=ratio, repair=repair, sparsity=s)
    return _side(f"{model} {ratio} {_pct(s)} (no repair trained)", t, 1, model=model, ratio=ratio, repair="none",
                 sparsity=s)


def plans1(design: Design, t: Table) -> list[Plan]:
    from studies.reproduction.arms import ratio_grids

    m, repair, out = design.margin, design.claim(1)["flow_repair"], []
    for model, grid in ratio_grids(design).items():
        for s in grid.sparsities:
            erk = _ratio(t, model, "erk", s, grid.repaired, repair)
            for ratio in ("balanced", "pyramidal"):
                scope = "" if 0.9 <= s < 0.99 else f"sparsity {_pct(s)} is outside the sentence's range [0.9, 0.99)"
                ours = _ratio(t, model, ratio, s, grid.repaired, repair)
                out.append(Plan(1, f"{ratio} is competitive with ERK", ours, erk, "above", -m, non_test=scope))
        top = max(grid.sparsities)
        if top < 0.99:
            continue
        sides = {r: _ratio(t, model, r, top, grid.repaired, repair) for r in grid.schemes}
        best = max(sides, key=lambda r: e.cell.mean if (e := sides[r][1]) is not None and e.cell.n else -math.inf)
        out.append(Plan(1, f"ER networks drop significantly at sparsity {_pct(top)} (best ratio below dense)",
                        sides[best], _side(f"{model} dense", t, 1, model=model, ratio="dense"), "below", 0.0))
        if "pyramidal" in grid.schemes:
            out.append(Plan(1, f"pyramidal collapses entirely at sparsity {_pct(top)}", sides["pyramidal"],
                            collapse_level(sides["pyramidal"][1]), "below", 0.0))
        if "pyramidal" in grid.repaired:
            out.append(Plan(1, f"flow repair gives pyramidal a gain at {_pct(top)}", sides["pyramidal"],
                            _side(f"{model} pyramidal {_pct(top)}", t, 1, model=model, ratio="pyramidal",
                                  repair="none", sparsity=top), "above", 0.0))
    return out


# ------------------------------------------------------------------------------------------------ claim 3


def plans3(design: Design, t: Table) -> list[Plan]:
    from studies.reproduction.arms import start_name, starts

    m, c, out = design.margin, design.claim(3), []
    null = {"density_scheme": c["start_scheme"], "sparsity": float(c["final_sparsity"])}
    null_side = _side(f"null: fixed {start_name(null)}", t, 3, method="static", start=start_name(null))
    for method in ("imp", "rigl", "str"):
        dense = _side(f"{method} from dense", t, 3, method=method, start="dense")
        for start in starts(c)[1:]:
            name = start_name(start)
            tol = float(c["str"]["tolerance"]) if method == "str" else None
            out.append(Plan(3, f"{method} from an ER start costs little", _side(f"{method} from {name}", t, 3,
                            method=method, start=name), dense, "above", -m, null=null_side, density_tolerance=tol))
    return out


# ------------------------------------------------------------------------------------------------ claim 4


def plans4(design: Design, t: Table) -> list[Plan]:
    from studies.reproduction.arms import own_sparsities

    out = []
    for s in (float(x) for x in design.claim(4)["sparsities"]):
        sides = {k: _side(f"{k} {_pct(s)}", t, 4, mask=k, sparsity=s)
                 for k in ("ER balanced", "ER pyramidal", "ER synflow", "ER imp", "ER snip")}
        scope = "" if s < 0.99 else f"sparsity {_pct(s)} is outside the sentence's range (< 0.99)"
        for ours in ("ER balanced", "ER pyramidal"):
            for theirs in ("ER synflow", "ER imp") if s in own_sparsities(design.claim(4)) else ("ER synflow",):
                out.append(Plan(4, f"{ours[3:]} outperforms {theirs}", sides[ours], sides[theirs], "above", 0.0,
                                non_test=scope))
        if s >= 0.99:
            out.append(Plan(4, f"ER snip collapses entirely at sparsity {_pct(s)}", sides["ER snip"],
                            collapse_level(sides["ER snip"][1]), "below", 0.0))
    return out


# ------------------------------------------------------------------------------------------------ claim 5


def plans5(design: Design, t: Table) -> list[Plan]:
    from studies.reproduction.arms import DENSE_REFERENCE, null_name

    m, out = design.margin, []
    for task in design.claim(5)["tasks"]:
        dataset = task["dataset"]
        er_start = f"uniform ER {float(task['start_sparsity']):g}"
        null = null_name({"density_scheme": "uniform", "sparsity": float(task["final_sparsity"])})
        dense = _side(f"{dataset}, IMP from dense", t, 5, task=dataset, start="dense")
        reference = t.get(5, task=dataset, start=DENSE_REFERENCE)
        reason = ""
        if any(e is not None and e.status == "dead" for e in (dense[1], reference)):
            reason = "the dense network did not learn (dead): nothing to be competitive with"
        out.append(Plan(5, f"IMP from an ER start is competitive on {dataset}",
                        _side(f"{dataset}, IMP from {er_start}", t, 5, task=dataset, start=er_start), dense,
                        "above", -m, null=_side(f"{dataset}, {null}", t, 5, task=dataset, start=null),
                        non_test=reason))
    return out


# ------------------------------------------------------------------------------------------------ judging


def _welch(a: Entry | None, b: Entry | None) -> Welch:
    if a is None or b is None:
        return Welch(math.nan, math.nan, math.nan)
    return welch(a.cell, b.cell)


def _opposite(direction: str) -> str:
    return "below" if direction == "above" else "above"


def judge(plans: list[Plan]) -> list[Check]:
    """Judge every plan of the study together (see the module docstring); non-tests come back as such."""
    reasons = [_non_test(p) for p in plans]
    tests = [i for i, r in enumerate(reasons) if not r]
    stats_ = {i: _welch(plans[i].a[1], plans[i].b[1]) for i in tests}
    p_claim = [one_sided_p(stats_[i], plans[i].direction, plans[i].threshold) for i in tests]
    p_contra = [one_sided_p(stats_[i], _opposite(plans[i].direction), plans[i].threshold) for i in tests]
    adj_claim, adj_contra = holm(p_claim), holm(p_contra)
    k = sum(not math.isnan(p) for p in p_claim)
    out = []
    for i, plan in enumerate(plans):
        (la, ea), (lb, eb) = plan.a, plan.b
        diff = difference(ea.cell, eb.cell) if ea is not None and eb is not None else Difference(math.nan, -math.inf,
                                                                                                  math.inf)
        base = Check(plan.claim, plan.statement, la, lb, diff, NOT_A_TEST, reasons[i],
                     ea.density if ea else math.nan, eb.density if eb else math.nan, threshold=plan.threshold,
                     direction=plan.direction)
        if reasons[i]:
            out.append(base)
            continue
        j = tests.index(i)
        mde = min_detectable(stats_[i], ALPHA / max(k, 1), POWER)
        outcome = (HOLDS if adj_claim[j] <= ALPHA else FAILS if adj_contra[j] <= ALPHA else INCONCLUSIVE) \
            if not math.isnan(adj_claim[j]) else INCONCLUSIVE
        note = "" if not math.isnan(adj_claim[j]) else "fewer than two finished seeds"
        outcome, note = _overrides(plan, outcome, note)
        out.append(replace(base, outcome=outcome, note=note, p=p_claim[j], p_holm=adj_claim[j], mde=mde))
    return out


def _overrides(plan: Plan, outcome: str, note: str) -> tuple[str, str]:
    """Non-converged arms, arms at different densities and a passing null arm make a test inconclusive."""
    (la, ea), (lb, eb) = plan.a, plan.b
    notes = [note] if note else []
    stuck = [lab for lab, e in ((la, ea), (lb, eb)) if e is not None and e.status == "not converged"]
    if stuck:
        notes.append("not converged: " + "; ".join(stuck))
    if plan.density_tolerance is not None and ea is not None and eb is not None \
            and abs(ea.density - eb.density) > plan.density_tolerance:
        notes.append(f"densities differ: {ea.density:.3f} vs {eb.density:.3f}")
    if plan.null is not None:
        ln, en = plan.null
        if en is None or eb is None:
            notes.append("null arm missing")
        else:
            p_null = one_sided_p(welch(en.cell, eb.cell), plan.direction, plan.threshold)
            if not p_null > ALPHA:
                notes.append(f"powerless: the null arm ({ln}) passes too (p = {p_null:.3g})")
            else:
                notes.append(f"null arm ({ln}) does not pass (p = {p_null:.3g})")
    blocking = [n for n in notes if n.startswith(("not converged", "densities differ", "powerless", "null arm miss"))]
    return (INCONCLUSIVE if blocking else outcome), "; ".join(notes)


# ------------------------------------------------------------------------------------------------ the table

_SCOPE1 = ("Sparsities in [0.9, 0.99) for *competitive* (the paper's experiments start at 0.9 and the next sentence "
           "treats ≥ 0.99 apart); ≥ 0.99 for *drops* and *collapses*. Flow repair on, as the paper's code ran Table "
           "1 (random addition): the repaired arms are compared wherever this study trained them.")

CLAIMS: tuple[Claim, ...] = (
    Claim(1, "Layerwise ratios and flow repair",
          "\"The pyramidal and balanced methods are competitive with and even outperform ERK in our experiments for "
          "sparsity up to 0.99. [...] However, for extreme sparsity 1−p ≥ 0.99 the performance of ER networks drops "
          "significantly and even collapses entirely for methods such as ER Snip and pyramidal.\" (§3, our "
          "translation of the paper's text); \"Flow repair matters most for Pyramidal and ER-Snip (sparse last "
          "layer): visible gains for pyramidal at 0.99 and 0.995 (Figure 3).\" (App. A.1, DIGEST §9)",
          _SCOPE1,
          "Per model: balanced − ERK and pyramidal − ERK above −m (competitive) in scope; at the highest sparsity "
          "(≥ 0.99): best ratio − dense below 0 (drops), pyramidal below its task's collapse level (collapses "
          "entirely: at most a fifth of the way from chance to 100%), pyramidal with repair − pyramidal without "
          "above 0 (gain from repair).", plans1),
    Claim(2, "Widening ER networks (existence results)",
          "\"The factor is sufficient (Theorems 2.1, 2.2, A.5; exact representation when weights are free) and "
          "necessary for 1-hidden-layer ER (Theorem 2.3).\" (§2, DIGEST §11). The theorems are existence "
          "results: they do not say whether training finds the weights.",
          "Any density; the theorems' widths. Checked by construction and exact computation, not by training.",
          "Theorem 2.2: the proof's construction in sampled ER sources at the theorem's widths equals the target; "
          "the exact probability of its event is ≥ 1 − δ and the observed share is not significantly below it. "
          "Theorem 2.3: the stated width bound is at most the exact minimal width. The widening trainings (table "
          "above) are an exploration beyond the paper and are not judged.", lambda d, t: []),
    Claim(3, "Sparse-to-sparse training from ER starts",
          "\"Starting IMP, STR, RiGL or edge-popup from an ER mask of sparsity 0.5–0.9 costs little.\" (§4, "
          "DIGEST §11); \"An ER start at 0.7 matches a dense start.\" (App. A.7, Table 4)",
          "ER starts of sparsity 0.5–0.9, every method ending at the same final density.",
          "For IMP, RiGL and STR and each ER start: method from the ER start − method from the dense start above "
          "−m; null arm: a fixed ER mask at the final density trained without any method, which must not pass the "
          "same test; STR arms whose final densities differ by more than the calibration tolerance are "
          "inconclusive (compared at the density each reached).", plans3),
    Claim(4, "Randomised saliency ratios: ER-SNIP, ER-SynFlow, ER-IMP",
          "\"Importantly, they [balanced and pyramidal] also outperform the layerwise sparsity ratios obtained by "
          "the expensive iterative pruning algorithms Synflow and IMP. However, for extreme sparsity 1−p ≥ 0.99 "
          "the performance of ER networks drops significantly and even collapses entirely for methods such as ER "
          "Snip and pyramidal.\" (§3, our translation of the paper's text)",
          "Sparsity below 0.99 for *outperform* (the sentence continues the one about sparsity up to 0.99); ≥ 0.99 "
          "for the ER-Snip collapse. These arms are trained without flow repair (the paper's code ran Table 1 "
          "with it).",
          "balanced − ER-SynFlow, balanced − ER-IMP, pyramidal − ER-SynFlow, pyramidal − ER-IMP above 0 "
          "(outperform) in scope; at ≥ 0.99 ER-SNIP below its task's collapse level (collapses entirely: at most a "
          "fifth of the way from chance to 100%). Every arm is a fixed random "
          "mask without a method, so no null arm applies.", plans4),
    Claim(5, "Non-image data",
          "\"Consistently, we find that pruning sparse random networks achieves competitive performance compared "
          "with pruning a dense network.\" (App. A.16, our translation; Tables 30–32: GCN on Cora, the grokking toy "
          "model on algorithmic data, an MLP on folktables)",
          "IMP from a uniform ER start against IMP from the dense network, on stand-ins for the paper's data (each "
          "named in the table).",
          "For each task: IMP from the uniform ER start − IMP from the dense start above −m; null arm: a fixed "
          "uniform ER mask at the final density without IMP, which must not pass; not a test when the dense start "
          "is dead.", plans5),
)
CLAIM_BY_NUMBER: dict[int, Claim] = {c.number: c for c in CLAIMS}


def verdicts(design: Design, table: Table, claims: tuple[int, ...]) -> dict[int, tuple[str, list[Check]]]:
    """Claim number -> (verdict, checks) for ``claims``; the statistical tests are judged as one family."""
    from studies.reproduction.theory import existence, necessity

    plans = [p for k in claims for p in CLAIM_BY_NUMBER[k].plans(design, table)]
    checks = judge(plans)
    out: dict[int, tuple[str, list[Check]]] = {}
    for k in claims:
        mine = [c for c in checks if c.claim == k]
        if k == 2:
            mine = [theory_check(existence(**design.claim(2)["existence"])),
                    theory_check(necessity(**design.claim(2)["necessity"]))] if "existence" in design.claim(2) else []
        out[k] = combine([c.outcome for c in mine if c.outcome != NOT_A_TEST]), mine
    return out


def theory_check(t: object) -> Check:
    """An exact check of claim 2 as a :class:`Check` (no interval; the computation in the note)."""
    from studies.reproduction.theory import TheoryCheck

    assert isinstance(t, TheoryCheck)
    return Check(2, t.statement, "exact", "-", Difference(math.nan, -math.inf, math.inf), t.outcome, t.computed)


def theory_factor(design: Design) -> dict[str, float]:
    """Theorem 2.2's coverage factors for claim 2's dense width-1 target at its density (``delta`` from the design).

    Returns ``q_hidden`` (the largest factor of a hidden layer), ``q_0`` (the construction layer's) and
    ``factor`` = 1/log(1/(1-p)).
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


__all__ = ["ALPHA", "CLAIMS", "CLAIM_BY_NUMBER", "NOT_A_TEST", "POWER", "Check", "Claim", "Plan", "judge",
           "theory_check", "theory_factor", "verdicts"]
