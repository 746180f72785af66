"""The numbers README.md quotes, generated from results files.

Every result the README states outside code is written between markers, ``<!--n:KEY-->text<!--/n-->`` (inline)
or around a whole table.  This script derives the text of every key from the results files below and fills
the markers in; ``--check`` only compares.  The results files:

* ``docs/figures/*.csv``: the committed copies of the figures' data (``python3 figures/make_all.py --publish``);
* ``results/readme/theory.json``, ``models.json``, ``masks.json``: computed here by ``--compute`` (seconds to a
  minute; deterministic, so recomputing gives the same file);
* ``results/readme/digits_methods.json``: the digits method table, trained here by ``--compute methods``
  (a few minutes on 2 cores; runs go to ``--runs``, default ``runs/readme``).
* ``results/readme/command_times.json``: the times of the README's two commands, measured by
  ``scripts/time_commands.py`` (cold and warm, each in a fresh clone).

    python3 scripts/readme_numbers.py --compute theory models masks methods   # refresh the results files
    python3 scripts/readme_numbers.py                                         # fill README.md from them
    python3 scripts/readme_numbers.py --check                                 # exit 1 when README.md disagrees
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "results" / "readme"
FIGURES = ROOT / "docs" / "figures"

#: A marked span: the key, then the generated text up to the closing marker.
MARK = re.compile(r"<!--n:(?P<key>[A-Za-z0-9_.-]+)-->(?P<body>.*?)<!--/n-->", re.S)

#: Sparsities of the Figure 2 table (on the figure's grid).
FIG2_SPARSITIES = ("0.5", "0.9", "0.99")
#: Settings ``(d, density, delta)`` of the Theorem 2.3 table.
LOWER_BOUND_SETTINGS = ((1, 0.1, 0.01), (100, 0.05, 0.01))
#: Sparsities of the tighter-construction comparison (Figure 2's target, delta 0.001).
TIGHT_SPARSITIES = (0.9, 0.99)
#: The subset-sum examples of the README (values, target, epsilon).
SUBSET_SUM_VALUES = (0.5, -0.25, 0.125)
SUBSET_SUM_TARGET = 0.3
SUBSET_SUM_EPSILON = 0.1
#: Parameter counts: (label, model, build options).
MODELS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("ResNet20", "resnet20", {"num_classes": 10}),
    ("ResNet110", "resnet110", {"num_classes": 10}),
    ("ResNet18 (CIFAR stem, 10 classes)", "resnet18", {"num_classes": 10, "stem": "cifar"}),
    ("ResNet50 (CIFAR stem, 10 classes)", "resnet50", {"num_classes": 10, "stem": "cifar"}),
    ("ResNet50 (ImageNet stem, 1,000 classes)", "resnet50", {"num_classes": 1000, "stem": "imagenet",
                                                              "input_size": 224}),
)
#: Density schemes whose budget is checked, on these models and sparsities.
BUDGET_SCHEMES = ("uniform", "erk", "pyramidal", "balanced")
BUDGET_MODELS = ("vgg16", "resnet18")
BUDGET_SPARSITIES = (0.9, 0.99)
#: Flow repair on VGG16 at sparsity 0.99: schemes, and seeds averaged over.
FLOW_SCHEMES = ("balanced", "erk", "uniform", "pyramidal")
FLOW_SEEDS = (0, 1, 2, 3, 4)

#: The digits method table: MLP 64-300-100-10, one seed, the optimiser settings spelled out (no recipe decides
#: them); per row the dense-start and the ER-start flags.
METHOD_BASE = ("--model", "mlp", "--dataset", "digits", "--seed", "0", "--optimizer", "sgd", "--lr", "0.1",
               "--momentum", "0.9", "--weight-decay", "0.0005", "--batch-size", "128", "--schedule", "cosine")
METHOD_ROWS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("static (fixed mask, 20 epochs)",
     ("--epochs", "20", "--density-scheme", "dense"),
     ("--epochs", "20", "--density-scheme", "erk", "--sparsity", "0.9")),
    ("IMP (20% per cycle, rewinding to init, 10 epochs per cycle)",
     ("--epochs", "10", "--method", "imp", "--imp-final-density", "0.1", "--density-scheme", "dense"),
     ("--epochs", "10", "--method", "imp", "--imp-final-density", "0.1", "--density-scheme", "erk",
      "--sparsity", "0.5")),
    ("RiGL (20 epochs)",
     ("--epochs", "20", "--method", "rigl", "--rigl-update-every", "20", "--rigl-final-density", "0.1",
      "--density-scheme", "dense"),
     ("--epochs", "20", "--method", "rigl", "--rigl-update-every", "20", "--density-scheme", "erk",
      "--sparsity", "0.9")),
    ("SET (20 epochs)",
     ("--epochs", "20", "--method", "set", "--set-update-every", "20", "--set-final-density", "0.1",
      "--density-scheme", "dense"),
     ("--epochs", "20", "--method", "set", "--set-update-every", "20", "--density-scheme", "erk",
      "--sparsity", "0.9")),
    ("STR (20 epochs, default --str-s-init)",
     ("--epochs", "20", "--method", "str", "--density-scheme", "dense"),
     ("--epochs", "20", "--method", "str", "--density-scheme", "erk", "--sparsity", "0.5")),
    ("edge-popup (5 annealed levels of 4 epochs, weights never trained)",
     ("--epochs", "4", "--method", "edgepopup", "--edgepopup-final-density", "0.1", "--density-scheme", "dense"),
     ("--epochs", "4", "--method", "edgepopup", "--edgepopup-final-density", "0.1", "--density-scheme", "erk",
      "--sparsity", "0.5")),
)
#: Static ER masks with randomised saliency ratios (20 epochs, sparsity 0.9); ER-IMP needs an IMP run's ratios.
SALIENCY_ROWS: tuple[tuple[str, str], ...] = (("ER-SNIP", "snip"), ("ER-SynFlow", "synflow"))


# ------------------------------------------------------------------------------------------- results files


def compute_theory() -> dict[str, Any]:
    """Theorem 2.3's table, the tighter construction against Theorem 2.1, the subset-sum examples."""
    import numpy as np

    from ertheory import bounds, exact, subsetsum

    lower = []
    for d, p, delta in LOWER_BOUND_SETTINGS:
        b = bounds.theorem_2_3(d, p, delta)
        n = int(exact.lower_bound_min_width(d, p, delta))
        lower.append({
            "d": d, "density": p, "delta": delta, "paper_bound": float(b.paper_bound),
            "proof_bound": float(b.proof_bound), "exact_min_width": n,
            "probability_at_min_width": float(exact.lower_bound_success_probability(d, n, p)),
        })
    tight = []
    for s in TIGHT_SPARSITIES:
        p = 1.0 - s
        thm = bounds.theorem_2_1(784, 128, 10, p, 0.001)
        w = exact.depth2_min_widths(784, 128, 10, p, 0.001, event="tight")
        proof_q = exact.proof_min_q([784 * 128, 128 * 10], p, 0.001)
        tight.append({
            "sparsity": s, "theorem_widths": [int(v) for v in np.ravel(thm.widths)],
            "theorem_q": [int(v) for v in np.ravel(thm.q_int)], "proof_min_q": [int(v) for v in np.ravel(proof_q)],
            "tight_q0": w.q0, "tight_q1": w.q1, "tight_n_S0": w.n_S0, "tight_n_S1": w.n_S1,
            "tight_probability": float(w.probability),
        })
    best = subsetsum.best_subset(SUBSET_SUM_VALUES, SUBSET_SUM_TARGET)
    cover = subsetsum.coverage(SUBSET_SUM_VALUES, SUBSET_SUM_EPSILON)
    return {
        "theorem_2_3": lower,
        "tight_construction": {"target": [784, 128, 10], "delta": 0.001, "rows": tight},
        "subset_sum": {
            "values": list(SUBSET_SUM_VALUES), "target": SUBSET_SUM_TARGET, "indices": best.indices().tolist(),
            "sum": float(best.sums.ravel()[0]), "error": float(best.errors.ravel()[0]),
            "epsilon": SUBSET_SUM_EPSILON, "covered": cover.covered,
        },
    }


def compute_models() -> dict[str, Any]:
    """Parameter counts of the registered models."""
    from ertrain.models import build_model

    rows = []
    for label, name, options in MODELS:
        model = build_model(name, **options)
        rows.append({"label": label, "model": name, "options": options,
                     "parameters": int(sum(t.numel() for t in model.parameters()))})
    return {"models": rows}


def compute_masks() -> dict[str, Any]:
    """Budget errors of the density schemes, the reference balanced scheme's miss, flow repair's added edges."""
    import numpy as np
    import torch

    from ertrain.density import plan_densities
    from ertrain.masks import Masking
    from ertrain.models import build_model, layer_weight, maskable_layers

    budget = []
    for name in BUDGET_MODELS:
        model = build_model(name, num_classes=10)
        shapes = [tuple(layer_weight(m).shape) for _, m in maskable_layers(model)]
        for s in BUDGET_SPARSITIES:
            for scheme in BUDGET_SCHEMES:
                plan = plan_densities(scheme, shapes, 1.0 - s)
                budget.append({"model": name, "sparsity": s, "scheme": scheme,
                               "error": abs(plan.realised - plan.requested)})
    vgg = build_model("vgg16", num_classes=10)
    shapes = [tuple(layer_weight(m).shape) for _, m in maskable_layers(vgg)]
    reference = plan_densities("balanced", shapes, 0.1, redistribute=False)
    flow = []
    for scheme in FLOW_SCHEMES:
        added = []
        for seed in FLOW_SEEDS:
            masking = Masking.from_scheme(vgg, scheme, 0.01, torch.Generator().manual_seed(seed), "random_add")
            added.append(int(sum(masking.edges_added.values())))
        flow.append({"scheme": scheme, "edges_added": added, "mean": float(np.mean(added))})
    return {
        "budget": budget,
        "reference_balanced_vgg16_0.9": {"requested": reference.requested, "realised": reference.realised},
        "flow_repair_vgg16_0.99": {"mode": "random_add", "seeds": list(FLOW_SEEDS), "rows": flow},
    }


def train_digits(flags: Sequence[str], runs: Path) -> dict[str, Any]:
    """One ``ertrain train`` run on digits, on one thread (the same floating-point order on any machine);
    the fields of its result the table shows."""
    cmd = [sys.executable, "-m", "ertrain.cli", "train", *METHOD_BASE, *flags, "--out", str(runs), "--json",
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed: {done.stderr.strip().splitlines()[-1:]}")
    result = json.loads(done.stdout)
    return {"flags": list(flags), "test_accuracy": result["test_accuracy"], "density": result["density"],
            "training_flops": result.get("training_flops")}


def compute_methods(runs: Path) -> dict[str, Any]:
    """Train the digits method table (each run is skipped when its directory already holds the result)."""
    rows = []
    for label, dense_flags, er_flags in METHOD_ROWS:
        print(f"[readme_numbers] {label}", flush=True)
        rows.append({"label": label, "dense": train_digits(dense_flags, runs), "er": train_digits(er_flags, runs)})
    saliency = []
    for label, scheme in SALIENCY_ROWS:
        flags = ("--epochs", "20", "--density-scheme", scheme, "--sparsity", "0.9")
        saliency.append({"label": label, **train_digits(flags, runs)})
    return {"base": list(METHOD_BASE), "rows": rows, "saliency": saliency}


def write_json(path: Path, data: dict[str, Any]) -> None:
    from ertheory.fileio import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n", durable=False)


# ---------------------------------------------------------------------------------------------- the values


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _json(name: str) -> Any:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _int(x: float) -> str:
    return f"{int(round(x)):,}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n\n" + "\n".join(lines) + "\n\n"


def figure2_values() -> dict[str, str]:
    main = {r["sparsity"]: r for r in _csv(FIGURES / "figure2.csv")}
    depth = {(r["sparsity"], r["L"]): r for r in _csv(FIGURES / "figure2_depth.csv")}
    rows = [[s, f"{float(main[s]['q1']):.2f}", _int(float(main[s]["width"])),
             _int(float(depth[(s, "3")]["width"])), _int(float(depth[(s, "4")]["width"]))] for s in FIG2_SPARSITIES]
    return {
        "fig2.table": _table(["sparsity", "`q_1`", "width `ceil(q_1) * 128`", "L = 3 (784-128-128-10)", "L = 4"], rows),
        "fig2.q1": ", ".join(f"{float(main[s]['q1']):.2f}" for s in FIG2_SPARSITIES),
        "fig2.widths": ", ".join(_int(float(main[s]["width"])) for s in FIG2_SPARSITIES),
    }


def theory_values() -> dict[str, str]:
    theory = _json("theory")
    lower = theory["theorem_2_3"]
    rows = [[f"d = {r['d']}, p = {r['density']:g}, delta = {r['delta']:g}", f"{r['paper_bound']:.2f}",
             f"{r['proof_bound']:.2f}", f"**{r['exact_min_width']}**", f"{r['probability_at_min_width']:.5f}"]
            for r in lower]
    out = {
        "lb.table": _table(["Theorem 2.3 setting", "paper's bound", "proof's (`p^2`) bound",
                            "**exact minimal width**", "P at that width"], rows),
        "lb.example": f"{next(r for r in lower if r['d'] == 100)['paper_bound']:.2f}",
    }
    for r in theory["tight_construction"]["rows"]:
        s = f"{r['sparsity']:g}"
        thm = sum(r["theorem_widths"][:2])
        tight = r["tight_n_S0"] + r["tight_n_S1"]
        out[f"tight.fewer.{s}"] = f"{100 * (1 - tight / thm):.1f}%"
        out[f"tight.widths.{s}"] = f"{_int(tight)} vs {_int(thm)}"
    rows = theory["tight_construction"]["rows"]
    same = all(r["proof_min_q"] == r["theorem_q"][: len(r["proof_min_q"])] for r in rows)
    out["tight.same_q"] = "equals" if same else "differs from"
    ss = theory["subset_sum"]
    out["ss.best"] = f"indices {ss['indices']}, sum {ss['sum']:g}, error {ss['error']:.2g}"
    out["ss.cover"] = "covered" if ss["covered"] else "not covered"
    return out


def subset_sum_values() -> dict[str, str]:
    fit = {r["model"]: r for r in _csv(FIGURES / "subset_sum_scaling_fit.csv")}
    c1 = fit["log(1/(1-p))"]
    return {
        "c1": f"`C_1 = {float(c1['constant']):.2f}` (95% CI [{float(c1['ci_low']):.2f}, {float(c1['ci_high']):.2f}])",
        "c1.alpha": f"{float(fit['exponent alpha']['constant']):.2f}",
    }


def model_values() -> dict[str, str]:
    rows = _json("models")["models"]
    return {"params": "; ".join(f"{r['label']} {r['parameters']:,}" for r in rows)}


def mask_values() -> dict[str, str]:
    masks = _json("masks")
    worst = max(r["error"] for r in masks["budget"])
    ref = masks["reference_balanced_vgg16_0.9"]
    flow = {r["scheme"]: r["mean"] for r in masks["flow_repair_vgg16_0.99"]["rows"]}
    return {
        "dens.max_error": f"{worst:.0e}" if worst > 0 else "0",
        "dens.reference_miss": f"{abs(ref['realised'] - ref['requested']):.3f}",
        "flow.zero": ", ".join(s for s in FLOW_SCHEMES if flow[s] == 0) or "none",
        "flow.uniform": _int(flow["uniform"]),
        "flow.pyramidal": _int(flow["pyramidal"]),
        "flow.seeds": str(len(masks["flow_repair_vgg16_0.99"]["seeds"])),
    }


def _run_cell(run: dict[str, Any]) -> str:
    """``accuracy (final density d, train FLOPs f)``; FLOPs relative to dense training, when the method counts them."""
    flops = run["training_flops"]
    extra = f", train FLOPs {flops:.3g}" if flops is not None else ""
    return f"{run['test_accuracy']:.4f} (density {run['density']:.3f}{extra})"


def _er_start(flags: Sequence[str]) -> str:
    """The ER start of a run, e.g. ``ERK, density 0.1``."""
    scheme = flags[list(flags).index("--density-scheme") + 1]
    sparsity = float(flags[list(flags).index("--sparsity") + 1])
    return f"{scheme.upper() if scheme == 'erk' else scheme}, density {1 - sparsity:g}"


def method_values() -> dict[str, str]:
    methods = _json("digits_methods")
    rows = [[row["label"], _run_cell(row["dense"]), _er_start(row["er"]["flags"]), _run_cell(row["er"])]
            for row in methods["rows"]]
    return {
        "methods.table": _table(["method", "dense start: accuracy", "ER start", "ER start: accuracy"], rows),
        "methods.saliency": ", ".join(f"{r['label']} {r['test_accuracy']:.4f}" for r in methods["saliency"]),
    }


def teacher_student_values() -> dict[str, str]:
    rows = _csv(FIGURES / "teacher_student_full_summary.csv")
    matched = [r for r in rows if r["k_match"]]
    parts = []
    for r in matched:
        k, k_thm, k_ex = int(r["k_match"]), int(r["k_theorem"]), int(r["k_exact"])
        parts.append(f"from `k = {k}` at sparsity {1 - float(r['density']):g} ({k_thm / k:.1f}× below Theorem 2.2's "
                     f"`k = {k_thm}`, {k_ex / k:.1f}× below the exact construction's `k = {k_ex}`)")
    missing = [f"{1 - float(r['density']):g}" for r in rows if not r["k_match"]]
    text = "; ".join(parts) if parts else "at no multiplier"
    if missing:
        text += f"; not at sparsity {', '.join(missing)}"
    return {"ts.summary": text}


#: The study variant whose verdicts the README quotes (its result files are ``results/reproduction/<variant>``).
STUDY_VARIANT = "cpu"


def study_values() -> dict[str, str]:
    """The verdict table of the CPU study and its dense references, as ``studies.reproduction`` derives them from the
    committed result files (the same text as in docs/reproduction.md)."""
    from studies import reproduction as study

    doc = study.build_document(STUDY_VARIANT)
    table = doc.split("## Verdicts", 1)[1].split("\n## ", 1)[0].strip()
    setting = re.search(r"^Variant: .*$", doc, flags=re.MULTILINE)
    dense = re.findall(r"^\*\*(\w+)\*\* \(dense: ([^)]+)\)", doc, flags=re.MULTILINE)
    return {
        "study.verdicts": "\n\n" + table + "\n\n",
        "study.scale": setting.group(0).split(").", 1)[1].strip() if setting else "",
        "study.dense": "; ".join(f"{model} {acc}" for model, acc in dense),
    }


def _timed(record: dict[str, Any], what: str) -> str:
    machine = record["machine"]
    return (f"{record['cold_s']:.0f} s from a fresh clone and {record['warm_s']:.0f} s the second time ({what}; "
            f"{machine['cpus']} cores, {machine['cpu']}, load average {machine['load_before']:.0f} at the start, "
            f"torch {record['torch']} from {record['pip']}, {record['date']})")


def command_time_values() -> dict[str, str]:
    """The measured times of the README's two commands (``results/readme/command_times.json``, written by
    ``scripts/time_commands.py``)."""
    commands = _json("command_times")["commands"]
    main, test = commands["main"], commands.get("test")
    if test is None:
        test_text = "a time not measured yet (`python3 scripts/time_commands.py --commands test`)"
    else:
        files = test["tests"]
        which = "the whole suite" if files == "all" else f"{len(files)} test files, those of CI's non-root pass"
        test_text = _timed(test, which)
    return {"times.main": _timed(main, f"training on {main['dataset']}"), "times.test": test_text}


def sparse_training_values() -> dict[str, str]:
    """The sparse engine's headline: ``results/readme/sparse_training_linear.json``, written by
    ``benchmarks/bench_sparse_training.py --only linear,memory --threads 1 --repeats 11 --json ...`` (one 4096x4096
    layer at batch 256, one thread: step-time ratios to the masked engine, and peak memory)."""
    doc = _json("sparse_training_linear")
    one = next(s for s in doc["speed"] if s["threads"] == 1)
    linear = {float(r["density"]): r["results"] for r in one["rows"] if r["setting"].startswith("linear")}
    peak = {(m["engine"], float(m["density"])): m["peak_mib"] for m in doc["memory"]}
    low, mid, half = linear[0.01], linear[0.1], linear[0.5]
    anchor = (f" (SparseProp in the same run: {low['sparseprop']['ratio']:.1f}× and {mid['sparseprop']['ratio']:.1f}×)"
              if "sparseprop" in low else "")
    return {"sparse.headline": (
        f"{low['sparse']['ratio']:.1f}× faster at density 0.01 and {mid['sparse']['ratio']:.1f}× at 0.1{anchor}; at "
        f"0.5 `auto` picks the {half['auto']['picked']} engine ({half['auto']['ratio']:.2f}× the masked step's speed); "
        f"peak training memory "
        f"at 0.01 is {100 * peak[('sparse', 0.01)] / peak[('masked', 0.01)]:.1f}% of the masked engine's "
        f"({doc['machine']['cpu']}, {doc['machine']['cores']} cores shared with other jobs, load average "
        f"{doc['machine']['load_average'][1]:.1f}; medians of {doc['repeats']} interleaved rounds)")}


#: Every group of values, each from its own results files.
VALUE_GROUPS: tuple[Callable[[], dict[str, str]], ...] = (
    figure2_values, theory_values, subset_sum_values, model_values, mask_values, method_values,
    teacher_student_values, study_values, sparse_training_values, command_time_values,
)


def values() -> dict[str, str]:
    """The text of every key, from the results files."""
    out: dict[str, str] = {}
    for group in VALUE_GROUPS:
        out.update(group())
    return out


# ---------------------------------------------------------------------------------------------- filling in


def fill(text: str, vals: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with every marked span set to its value; also the keys whose text changed.  An unknown key
    raises ``ValueError``."""
    changed: list[str] = []

    def replace(match: re.Match[str]) -> str:
        key = match.group("key")
        if key not in vals:
            raise ValueError(f"README marker {key!r} has no value; known keys: {', '.join(sorted(vals))}")
        if match.group("body") != vals[key]:
            changed.append(key)
        return f"<!--n:{key}-->{vals[key]}<!--/n-->"

    return MARK.sub(replace, text), changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compute", nargs="+", choices=("theory", "models", "masks", "methods"), default=[],
                        help="recompute these results files first")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "readme"), help="runs directory of --compute methods")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when README.md differs")
    parser.add_argument("--readme", default=str(README), help="the file to fill (default README.md)")
    args = parser.parse_args(argv)
    computers: dict[str, Callable[[], dict[str, Any]]] = {
        "theory": compute_theory, "models": compute_models, "masks": compute_masks,
        "methods": lambda: compute_methods(Path(args.runs)),
    }
    for name in args.compute:
        print(f"[readme_numbers] computing results/readme/{name}.json ...", flush=True)
        stem = "digits_methods" if name == "methods" else name
        write_json(RESULTS / f"{stem}.json", computers[name]())
    readme = Path(args.readme)
    text = readme.read_text()
    try:
        new, changed = fill(text, values())
    except ValueError as exc:
        print(f"readme_numbers: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if changed:
            print(f"readme_numbers: {readme.name} disagrees with the results files at: {', '.join(changed)}",
                  file=sys.stderr)
            return 1
        print(f"[readme_numbers] {readme.name} agrees with the results files ({len(MARK.findall(text))} markers)")
        return 0
    if changed:
        from ertheory.fileio import atomic_write_text

        atomic_write_text(readme, new, durable=False)
    print(f"[readme_numbers] {readme.name}: {len(changed)} marker(s) updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
