"""``docs/reproduction.md`` from the result files only: tables of mean ± 95% CI, figures, rules and verdicts.

Every number of the document is computed here from ``results/reproduction/<variant>/*.json`` and the design
file (which fixes what the study is); ``tests/test_reproduction_doc.py`` regenerates the document from the
committed files and compares.  The figures it embeds are drawn from the same files by
``figures/reproduction_claims.py``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from studies.reproduction.claims import CLAIM_BY_NUMBER, Check, theory_factor
from studies.reproduction.load import StudyData
from studies.reproduction.stats import FAILS, HOLDS, INCONCLUSIVE

#: Where the figures of a variant live, relative to the repository root.
FIGURE_DIR = "results/reproduction/{variant}/figures"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def pivot(data: StudyData, claim: int, row: Callable[[dict[str, Any]], str], col: str,
          col_text: Callable[[Any], str] = lambda v: f"{v:g}") -> str:
    """Settings of ``claim`` as rows (labelled by ``row``), the values of label ``col`` as columns."""
    settings = [dict(s) for s in data.table.settings(claim)]
    cols = sorted({s[col] for s in settings}, key=_order)
    rows: dict[str, dict[Any, str]] = {}
    for s in settings:
        entry = data.table.get(claim, **s)
        rows.setdefault(row(s), {})[s[col]] = entry.cell.text() if entry else ""
    body = [[name, *(cells.get(c, "") for c in cols)] for name, cells in rows.items()]
    return md_table(["", *(col_text(c) for c in cols)], body)


def _order(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


# ------------------------------------------------------------------------------------------------ per claim


def tables1(data: StudyData) -> str:
    out = []
    for model in data.design.claim(1)["models"]:
        dense = data.table.cell(1, model=model, ratio="dense")
        out.append(f"**{model}** (dense: {dense.text()} %)\n")
        sub = StudyData.restricted(data, 1, model=model, exclude={"ratio": "dense"})
        out.append(pivot(sub, 1, lambda s: s["ratio"] + ("" if s["repair"] == "none" else " + flow repair"),
                         "sparsity"))
        edges = data.repair_edges(model)
        if edges:
            out.append("Mean edges added by flow repair: " + ", ".join(f"{k} {v:.1f}" for k, v in edges) + ".\n")
    return "\n".join(out)


def tables2(data: StudyData) -> str:
    c = data.design.claim(2)
    th = theory_factor(data.design)
    nnz = ", ".join(f"{w:g} → {data.width_of(w):g}" for w in sorted(float(x) for x in c["widths"]))
    head = (f"Theorem 2.2 for the dense width-1 target at density {1 - float(c['sparsity']):g} (delta "
            f"{float(c['delta']):g}) asks for hidden layers ×{th['q_hidden']:.1f} wider (construction layer "
            f"×{th['q_0']:.1f}); the factor 1/log(1/(1−p)) is {th['factor']:.2f}. Dense networks with as many "
            f"non-zero weights as the ER network of each width have widths {nnz}.\n")
    return head + "\n" + pivot(data, 2, lambda s: s["kind"], "width", lambda v: f"width {v:g}")


def tables3(data: StudyData) -> str:
    body = pivot(data, 3, lambda s: s["method"], "start", str)
    dens = ", ".join(f"{dict(s)['method']} from {dict(s)['start']} {e.density:.3f}"
                     for s in data.table.settings(3) if (e := data.table.get(3, **dict(s))) is not None)
    probes = "; ".join(f"from {dict(a.setting)['start']}, threshold decay {dict(a.setting)['decay']:g} → final "
                       f"density {r['density']:.3f}" for a, r in data.table.probes)
    text = body + f"\nMean final densities: {dens}.\n"
    return text + (f"\nSTR calibration probes (first seed, not pooled): {probes}.\n" if probes else "")


def tables4(data: StudyData) -> str:
    return pivot(data, 4, lambda s: s["mask"], "sparsity")


def tables5(data: StudyData) -> str:
    return pivot(data, 5, lambda s: s["task"], "start", str)


TABLES: dict[int, Callable[[StudyData], str]] = {1: tables1, 2: tables2, 3: tables3, 4: tables4, 5: tables5}


def checks_table(checks: Sequence[Check]) -> str:
    rows = []
    for c in checks:
        interval = "" if math.isnan(c.diff.d) else f"{c.diff.d:+.2f} [{c.diff.lo:+.2f}, {c.diff.hi:+.2f}]"
        rows.append([c.statement, c.a, c.b, interval, c.outcome, c.note])
    return md_table(["test", "A", "B", "A − B [95% interval]", "outcome", "note"], rows)


def claim_section(data: StudyData, number: int) -> list[str]:
    claim = CLAIM_BY_NUMBER[number]
    verdict, checks = data.verdicts[number]
    figure = FIGURE_DIR.format(variant=data.design.name) + f"/claim{number}.png"
    return [f"## Claim {number}: {claim.title}", "",
            f"**The paper.** {claim.paper}", "",
            f"**Setting.** {setting_text(data, number)}", "",
            f"![Claim {number}](../{figure})", "",
            TABLES[number](data),
            f"**Rule (fixed in advance, m = {data.design.margin:g} pts).** {claim.rule}", "",
            checks_table(checks),
            f"**Verdict: {verdict}.**", ""]


# ------------------------------------------------------------------------------------------------ text


def _model_text(data: StudyData, model: str) -> str:
    cfg = data.design.config(model)
    recipe = data.design.models[model].get("recipe", "")
    opt = f"{cfg.optimizer.upper()} lr {cfg.lr:g}" + (f", momentum {cfg.momentum:g}" if cfg.optimizer == "sgd" else "")
    return (f"{model} (recipe `{recipe}`: {opt}, weight decay {cfg.weight_decay:g}, batch {cfg.batch_size}, "
            f"{cfg.epochs} epochs, {cfg.schedule} schedule)")


def _nums(values: Sequence[Any]) -> str:
    return ", ".join(f"{float(v):g}" for v in values)


def _setting1(data: StudyData, c: dict[str, Any]) -> str:
    from studies.reproduction.arms import ratio_grids

    per = "; ".join(f"{_model_text(data, m)}: {', '.join(g.schemes)} at sparsities {_nums(g.sparsities)}, "
                    f"{', '.join(g.repaired)} also with flow repair" for m, g in ratio_grids(data.design).items())
    return f"on {data.design.base.get('dataset')}, flow repair by {c['flow_repair']}: {per}"


def _setting2(data: StudyData, c: dict[str, Any]) -> str:
    hidden = c.get("fields", {}).get("model_options", {}).get("hidden")
    return (f"{_model_text(data, c['model'])} with hidden widths {hidden} times the width, {c['scheme']} ER masks "
            f"of sparsity {float(c['sparsity']):g} at widths {_nums(c['widths'])}, dense networks of the same "
            f"widths, and dense networks with as many non-zero weights as each ER network")


def _setting3(data: StudyData, c: dict[str, Any]) -> str:
    return (f"{_model_text(data, c['model'])}: IMP (prune fraction {c['imp']['prune_fraction']:g} per cycle, "
            f"every cycle trained like the recipe, weights rewound to initialisation), RiGL (mask update every "
            f"{c['rigl']['update_every']} steps) and STR (threshold decay calibrated on seed {data.design.seeds[0]}) "
            f"from the dense network and from {c['start_scheme']} ER starts of sparsity "
            f"{_nums(c['start_sparsities'])}, all to final sparsity {float(c['final_sparsity']):g}; a fixed "
            f"{c['start_scheme']} ER mask at the final sparsity as reference")


def _setting4(data: StudyData, c: dict[str, Any]) -> str:
    return (f"{_model_text(data, c['model'])}: ER masks with SNIP's, iterative SynFlow's and IMP's layerwise "
            f"ratios (ER-IMP: the ratios of the IMP run of the same seed and target), balanced and pyramidal ER "
            f"masks, and the own masks of SNIP, SynFlow and IMP (prune fraction {c['imp']['prune_fraction']:g} per "
            f"cycle), at sparsities {_nums(c['sparsities'])}")


def _setting5(data: StudyData, c: dict[str, Any]) -> str:
    return "; ".join(f"{t['dataset']} with {t['model']} (recipe `{t['recipe']}`), IMP (prune fraction "
                     f"{float(t['prune_fraction']):g} per cycle) to sparsity {float(t['final_sparsity']):g} from the "
                     f"dense network and from a uniform ER start of sparsity {float(t['start_sparsity']):g}"
                     for t in c["tasks"])


SETTINGS: dict[int, Callable[[StudyData, dict[str, Any]], str]] = {
    1: _setting1, 2: _setting2, 3: _setting3, 4: _setting4, 5: _setting5,
}


def setting_text(data: StudyData, number: int) -> str:
    """What claim ``number`` trains, in words, from the design file."""
    return f"{SETTINGS[number](data, data.design.claim(number))}; {len(data.design.seeds)} seeds."


def overview(data: StudyData) -> str:
    machines = sorted({str(r.get("machine", "unknown")) for r in data.index.values()})
    cpu = data.cpu_seconds()
    runs = len({a.config.run_hash() for a in data.arms if a.config is not None and a.config.run_hash() in data.index})
    return (f"{runs} runs with result files; {cpu:.0f} CPU-seconds ({cpu / 3600:.2f} CPU-hours) of training, one "
            f"thread per run, on {', '.join(machines) or 'no machine yet'}.")


SCALE = (
    "## What this scale can and cannot say about the paper's CIFAR results",
    "",
    "- **Can**: whether the *direction* of each claim survives on networks trained to convergence on a real "
    "image task (Fashion-MNIST: 60,000 training images, 10 classes), with a convolutional network whose layers "
    "have fan-ins from 9 to 576 so that the layerwise ratios really differ, with every run checked for "
    "convergence and every comparison judged by an interval fixed in advance.",
    "- **Cannot**: reproduce the paper's numbers. VGG16/ResNet18 on CIFAR-10 have 11-15 million weights in "
    "13-20 layers; the networks here have 0.1-0.3 million in 3-5 layers, so a sparsity of 0.99 leaves a few "
    "hundred to a few thousand weights, where layer collapse and the width factor bite much earlier than on "
    "CIFAR networks. A ratio that wins here may lose on VGG16 and the reverse; the size of every gap is "
    "specific to this scale. Fashion-MNIST is close to saturated for dense networks (about 89-92%), so "
    "differences of a point matter more here than on CIFAR-100.",
    "- **Runs the same study at CIFAR scale**: `ertoolkit-study full` trains the same claims on CIFAR-10 with "
    "VGG16 and ResNet18 and the paper's recipe (`configs/reproduction/full.toml`), on GPUs, with no code change.",
    "",
)


def scale_section(data: StudyData) -> list[str]:
    return list(SCALE)


def reproduce_section(data: StudyData) -> list[str]:
    v = data.design.name
    return ["## Reproduce", "", "```bash",
            f"ertoolkit-study {v} --jobs 2          # trains what has no result file; resumable",
            f"python figures/reproduction_claims.py --variant {v}   # the figures embedded above",
            "ertoolkit-study full --jobs 8         # CIFAR-10, VGG16 and ResNet18, on a GPU node",
            "```", ""]


# ------------------------------------------------------------------------------------------------ the whole


def summary_section(data: StudyData) -> list[str]:
    rows = []
    for k, (verdict, checks) in data.verdicts.items():
        counts = [sum(c.outcome == o for c in checks) for o in (HOLDS, FAILS, INCONCLUSIVE)]
        conv = data.convergence_counts(k)
        rows.append([str(k), CLAIM_BY_NUMBER[k].title, f"**{verdict}**", " / ".join(map(str, counts)),
                     str(data.run_count(k)), " / ".join(str(conv[s]) for s in data.STATUSES)])
    return ["## Verdicts", "", md_table(["claim", "topic", "verdict", "tests held / failed / inconclusive", "runs",
                                         "converged / not converged / unchecked"], rows)]


def convergence_section(data: StudyData) -> list[str]:
    crit = data.design.criterion
    rows = data.unconverged()
    failed = [r for r in rows if r[3] == "not converged"]
    unchecked = Counter(r[4] for r in rows if r[3] == "unchecked")
    lines = ["## Convergence", "",
             f"Criterion (docs/study_design.md): over the last max(2, ⌈{crit.window:g}·E⌉) epochs of a run's final "
             f"fit, the best validation accuracy exceeds the best of the earlier epochs by at most "
             f"{crit.tolerance:g} percentage points. A run without validation records is *unchecked*.", ""]
    if not rows:
        return lines + ["Every run met the criterion.", ""]
    lines += [f"Not converged: {len(failed)} run(s)" + (":" if failed else "."), ""]
    if failed:
        lines += [md_table(["claim", "setting", "seed", "status", "why"], failed)]
    lines += [f"Unchecked: {n} run(s): {why}." for why, n in sorted(unchecked.items())]
    return lines + [""]


def build_document(data: StudyData) -> str:
    """The whole document (see the module docstring)."""
    d = data.design
    out = [f"# Reproducing the paper's empirical claims: {d.title}", "",
           "<!-- Generated by `studies.reproduction.write_document` from the result files; do not edit by hand. "
           "tests/test_reproduction_doc.py regenerates it and compares. -->", "",
           f"Variant: **{d.name}** (design `configs/reproduction/{d.name}.toml`, written before any run; see "
           f"docs/study_design.md). {overview(data)}", "",
           f"Cells are the mean test accuracy (%) ± the half-width of the 95% Student-t interval over "
           f"{len(d.seeds)} seeds. A test compares two settings by the 95% Welch interval of the difference of "
           f"their means against a threshold: it *holds* when the whole interval is on the claimed side, "
           f"*fails* when it is wholly on the other side, and is *inconclusive* when the interval straddles the "
           f"threshold. A claim *holds* when all its tests hold, *does not hold* when some fail and none holds, is "
           f"*inconclusive (intervals overlap)* when none is decided, and *partly holds* otherwise.", ""]
    out += summary_section(data) + convergence_section(data)
    for k in data.verdicts:
        out += claim_section(data, k)
    out += scale_section(data) + reproduce_section(data)
    return "\n".join(out).rstrip("\n") + "\n"


__all__ = ["FIGURE_DIR", "build_document", "md_table", "pivot"]
