"""Teacher-student study: how wide must an ER network be to *learn* a target it provably *contains*?

A random dense one-hidden-layer ReLU teacher ``d -> h -> 1`` (the ``teacher`` dataset of ``ertrain.data``,
regression) labels Gaussian inputs.  ER students have the architecture of the theorems' source (Theorem 2.2 with
``L = 2``): ``d -> k d -> k h -> 1``, i.e. ``k`` copies of every input (the construction layer ``l = 0``, kept
dense: the theorems put no condition on ``p_0``) and of every hidden neuron; layers ``l = 1, 2`` are ER with
density ``p``.  Each student is trained with Adam (cosine schedule) and scored by its test loss as a fraction of
the target's variance (FVU).  The reference is a dense student of the teacher's own architecture ``d -> h -> 1``.

On the multiplier axis ``k`` two widths are marked per density:

* **Theorem 2.2**: ``k = max(q_0, q_1)`` of :func:`ertheory.bounds.theorem_2_2` (a source with ``k`` copies
  everywhere contains the theorem's source, so it contains the teacher with probability ``>= 1 - delta``);
* **exact construction**: the smallest ``k`` at which the construction of :mod:`ertheory.construct`
  (``mode="tight"``) succeeds with probability ``>= 1 - delta``, from the exact probability
  :func:`ertheory.exact.tight_log_success` (best ``q_1 <= k``, ``q_0 = k``).

The smallest ``k`` whose mean test FVU is at most ``(1 + --tolerance)`` times the dense reference's (default:
within 10 %) is reported next to them.  Writes ``teacher_student.png``, ``teacher_student.csv`` (one row per
trained student) and ``teacher_student_summary.csv`` (one row per density).  ``--small`` (default) runs in
about a minute for CI; ``--full`` is the study (several minutes on one CPU core), written as
``teacher_student_full.*``.  ``--write-doc PATH`` renders the markdown note from the CSVs.

    python3 figures/teacher_student.py --full --out figures/out
"""

import argparse
import csv
import io
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent

#: Settings of the two sizes of the study (each overridable by its flag).
SETTINGS: dict[str, dict[str, Any]] = {
    "small": {
        "d": 8, "hidden": 16, "densities": [0.5], "multipliers": [1, 4, 16, 32], "seeds": 1,
        "n_train": 1000, "epochs": 25,
    },
    "full": {
        "d": 8, "hidden": 16, "densities": [0.5, 0.25], "multipliers": [1, 2, 4, 8, 16, 32, 64], "seeds": 2,
        "n_train": 2000, "epochs": 40,
    },
}


@dataclass(frozen=True)
class StudentResult:
    """One trained student: ``kind`` is ``"er"`` (multiplier ``k``, density ``p``) or ``"dense"`` (teacher's width)."""

    kind: str
    density: float
    multiplier: int
    seed: int
    hidden: str
    kept_weights: int
    test_loss: float
    test_fvu: float
    train_fvu: float
    time_s: float


@dataclass(frozen=True)
class DensitySummary:
    """Per density: the marked theoretical multipliers and the smallest trained multiplier that matches."""

    density: float
    d: int
    hidden: int
    n_train: int
    epochs: int
    seeds: int
    lr: float
    delta: float
    k_theorem: int
    q_theorem: str
    k_exact: int
    dense_fvu: float
    tolerance: float
    k_match: int | None
    fvu_at_match: float | None


# ----------------------------------------------------------------------------------------------------------------
# theory


def theorem_multiplier(d: int, hidden: int, density: float, delta: float) -> tuple[int, list[int]]:
    """``max(q_0, q_1)`` of Theorem 2.2 for the target ``(d, hidden, 1)``, and the theorem's ``q``."""
    from ertheory import bounds

    q = [int(v) for v in bounds.theorem_2_2([d, hidden, 1], density, delta).q_int]
    return max(q[:-1]), q


def exact_multiplier(d: int, hidden: int, density: float, delta: float, k_max: int) -> int:
    """Smallest ``k`` with ``max_{q_1 <= k} P(tight construction succeeds | q_0 = k, q_1) >= 1 - delta`` (exact)."""
    from ertheory import exact

    in_deg, out_deg = exact.dense_degrees(d, hidden, 1)
    k = np.arange(1, k_max + 1)
    q0, q1 = np.meshgrid(k, k, indexing="ij")
    log_fail = exact.tight_log_success(q0, q1, density, density, in_deg, out_deg)[1]
    log_fail = np.where(q1 <= q0, log_fail, 0.0)  # q_1 <= k only
    ok = np.flatnonzero((log_fail <= np.log(delta)).any(axis=1))
    if ok.size == 0:
        raise ValueError(f"no multiplier up to {k_max} reaches 1 - delta = {1 - delta!r} at density {density!r}")
    return int(k[ok[0]])


# ----------------------------------------------------------------------------------------------------------------
# training


def train_student(
    data: Any, hidden: list[int], density: float, seed: int, epochs: int, lr: float, batch_size: int, kind: str
) -> StudentResult:
    """Train one MLP student with Adam on the teacher's data; ER layers after the first when ``kind == "er"``."""
    import torch

    from ertrain.config import TrainConfig
    from ertrain.masks import Masking
    from ertrain.models import build_model, layer_weight, maskable_layers
    from ertrain.trainer import Trainer, derive_seed

    config = TrainConfig(
        model="mlp", dataset="teacher", density_scheme="uniform" if kind == "er" else "dense",
        density=density if kind == "er" else 1.0, optimizer="adam", lr=lr, momentum=0.0, weight_decay=0.0,
        schedule="cosine", epochs=epochs, batch_size=batch_size, seed=seed, model_options={"hidden": hidden},
        device="cpu", amp=False, augment=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, 1))
        model = build_model("mlp", num_classes=1, in_features=int(data.input_shape[0]), hidden=hidden)
    masking = None
    if kind == "er":
        generator = torch.Generator().manual_seed(seed)
        layers = maskable_layers(model, exclude_first=True)  # the construction layer l = 0 stays dense
        masking = Masking.from_scheme(model, "uniform", density, generator, layers=layers)
    trainer = Trainer(config, model, data, masking=masking, device="cpu", progress=False)
    t0 = time.perf_counter()
    trainer.fit(epochs)
    var_test = float(data.y_test.var(unbiased=False))
    var_train = float(data.y_train.var(unbiased=False))
    test_loss = float(trainer.evaluate("test")["loss"])
    train_loss = float(trainer.evaluate("train")["loss"])
    sizes = [int(layer_weight(layer).numel()) for _, layer in maskable_layers(model)]
    kept = sum(sizes)
    if masking is not None:  # the dense construction layer plus the kept entries of the ER layers
        kept = sizes[0] + masking.nnz()
    return StudentResult(
        kind=kind, density=density if kind == "er" else 1.0, multiplier=0, seed=seed,
        hidden="x".join(str(h) for h in hidden), kept_weights=kept, test_loss=test_loss,
        test_fvu=test_loss / var_test, train_fvu=train_loss / var_train, time_s=time.perf_counter() - t0,
    )


def run_study(opts: argparse.Namespace) -> tuple[list[StudentResult], list[DensitySummary]]:
    """Train the dense reference and every ER student; summarise per density."""
    import dataclasses

    import torch
    from tqdm import tqdm

    from ertrain.data import load_dataset

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))
    data = load_dataset(
        "teacher", None, seed=opts.teacher_seed, n_train=opts.n_train, n_test=opts.n_test,
        in_features=opts.d, hidden=opts.hidden, num_classes=1, task="regression",
    )
    jobs: list[tuple[str, float, int, int]] = [("dense", 1.0, 0, s) for s in range(opts.seeds)]
    jobs += [("er", p, k, s) for p in opts.densities for k in opts.multipliers for s in range(opts.seeds)]
    results: list[StudentResult] = []
    for kind, p, k, s in tqdm(jobs, desc="teacher-student", file=sys.stderr, disable=not sys.stderr.isatty()):
        hidden = [opts.hidden] if kind == "dense" else [k * opts.d, k * opts.hidden]
        res = train_student(data, hidden, p, s, opts.epochs, opts.lr, opts.batch_size, kind)
        results.append(dataclasses.replace(res, multiplier=k))
    dense_fvu = float(np.mean([r.test_fvu for r in results if r.kind == "dense"]))
    summaries = []
    for p in opts.densities:
        k_thm, q_thm = theorem_multiplier(opts.d, opts.hidden, p, opts.delta)
        k_exact = exact_multiplier(opts.d, opts.hidden, p, opts.delta, k_thm)
        k_match, fvu_match = None, None
        for k in sorted(opts.multipliers):
            fvu = [r.test_fvu for r in results if r.kind == "er" and r.density == p and r.multiplier == k]
            mean = float(np.mean(fvu))
            if mean <= dense_fvu * (1.0 + opts.tolerance):
                k_match, fvu_match = k, mean
                break
        summaries.append(DensitySummary(
            density=p, d=opts.d, hidden=opts.hidden, n_train=opts.n_train, epochs=opts.epochs, seeds=opts.seeds,
            lr=opts.lr, delta=opts.delta, k_theorem=k_thm, q_theorem=" ".join(str(v) for v in q_thm),
            k_exact=k_exact, dense_fvu=dense_fvu, tolerance=opts.tolerance, k_match=k_match, fvu_at_match=fvu_match,
        ))
    return results, summaries


# ----------------------------------------------------------------------------------------------------------------
# output


def _write_atomic(path: Path, text: str) -> None:
    from ertheory.fileio import atomic_write_text

    atomic_write_text(path, text, durable=False)


def _rows_csv(rows: Sequence[Any]) -> str:
    buf = io.StringIO()
    fields = list(asdict(rows[0]))
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in asdict(r).items()})
    return buf.getvalue()


def plot(results: Sequence[StudentResult], summaries: Sequence[DensitySummary], path: Path, size: str) -> None:
    """Test FVU against the width multiplier, one line per density; theory's multipliers marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from figures._common import layout, save_png

    fig, ax = plt.subplots(figsize=(7.4, 5.0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    dense = summaries[0].dense_fvu
    tol = summaries[0].tolerance
    s0 = summaries[0]
    ax.axhline(dense, color="k", lw=1.2,
               label=f"reference: dense {s0.d}-{s0.hidden}-1 student, mean of {s0.seeds} seed(s) (FVU {dense:.3g})")
    ax.axhspan(0.0, dense * (1 + tol), color="k", alpha=0.07, label=f"match: within {tol:.0%} of dense")
    for i, s in enumerate(summaries):
        c = colors[i % len(colors)]
        ks = sorted({r.multiplier for r in results if r.kind == "er" and r.density == s.density})
        fvu = [[r.test_fvu for r in results if r.kind == "er" and r.density == s.density and r.multiplier == k]
               for k in ks]
        mean = np.array([np.mean(v) for v in fvu])
        lo = mean - np.array([np.min(v) for v in fvu])
        hi = np.array([np.max(v) for v in fvu]) - mean
        ax.errorbar(ks, mean, yerr=[lo, hi], color=c, marker="o", capsize=3,
                    label=f"ER students, sparsity {1 - s.density:g}")
        ax.axvline(s.k_theorem, color=c, ls="--", lw=1.2, label=f"Theorem 2.2 width (k={s.k_theorem})")
        ax.axvline(s.k_exact, color=c, ls=":", lw=1.5, label=f"exact construction width (k={s.k_exact})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width multiplier k (source d -> k d -> k h -> 1)")
    ax.set_ylabel("test loss / target variance (FVU)")
    ax.set_title(
        f"Learning a random {s0.d}-{s0.hidden}-1 teacher with ER students ({size} setting: {s0.n_train} examples, "
        f"{s0.epochs} epochs, {s0.seeds} seed(s))",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="best")
    layout(fig, "Drawn: test loss / target variance of trained ER students against the width multiplier k "
                "(points: mean, bars: min-max over seeds), the dense reference and the multipliers the theory "
                "needs to contain the teacher.", height=0.09)
    save_png(fig, path, dpi=130)
    plt.close(fig)


def _from_row(cls: Any, row: dict[str, str]) -> Any:
    """A dataclass of this module from one CSV row (empty cells are ``None``)."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        text = row[f.name]
        kind = next(t for t in (int, float, str) if t is f.type or t in getattr(f.type, "__args__", ()))
        values[f.name] = None if text == "" and kind is not str else kind(text)
    return cls(**values)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def render_doc(out_dir: Path, stem: str, size: str, doc_path: Path) -> str:
    """The markdown note on the study, every number read from ``<stem>.csv`` and ``<stem>_summary.csv``;
    paths are written relative to the repository root (text) and to ``doc_path`` (the figure's link)."""
    rows = _read_csv(out_dir / f"{stem}.csv")
    summ = _read_csv(out_dir / f"{stem}_summary.csv")
    dense = [r for r in rows if r["kind"] == "dense"]
    er = [r for r in rows if r["kind"] == "er"]
    s0 = summ[0]
    shown = _repo_relative(out_dir)
    image = Path(os.path.relpath(out_dir.resolve() / f"{stem}.png", doc_path.resolve().parent)).as_posix()
    lines = [
        "# Teacher-student study: from containing a target to learning it",
        "",
        "<!-- generated by figures/teacher_student.py --write-doc from its CSV files; do not edit by hand -->",
        "",
        f"Numbers from `{shown}/{stem}.csv` and `{shown}/{stem}_summary.csv`; reproduce with "
        f"`python3 figures/make_all.py --only {stem}` (into `figures/out/`), then `python3 figures/make_all.py "
        "--publish` (copies into `docs/figures/` and regenerates this note).",
        "",
        f"A random dense teacher `d -> h -> 1` with d = {s0['d']} inputs and h = {s0['hidden']} hidden ReLU "
        f"neurons labels {s0['n_train']} Gaussian training inputs (`ertrain` dataset `teacher`, regression).  ER "
        "students have the architecture of the theorems' source for depth L = 2: `d -> k d -> k h -> 1` (a dense "
        "construction layer, then two ER layers of density p), trained with Adam (learning rate "
        f"{float(s0['lr']):g}, cosine schedule) for {s0['epochs']} epochs; {s0['seeds']} seed(s) each.  The score "
        "is the test loss divided by the target's variance (FVU).  The reference is a dense student of the "
        "teacher's own architecture.",
        "",
        "Marked multipliers: Theorem 2.2's `k = max(q_0, q_1)` (`ertheory.bounds.theorem_2_2`) and the smallest "
        "`k` at which the exact construction (`ertheory.construct`, mode `tight`) succeeds with probability at "
        "least 1 - delta (`ertheory.exact.tight_log_success`).",
        "",
        "| sparsity | delta | Theorem 2.2 q | Theorem 2.2 k | exact construction k | smallest trained k matching dense "
        "| its test FVU | its kept weights | dense FVU | tolerance |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summ:
        match = s["k_match"] or f"none up to {max(int(r['multiplier']) for r in er)}"
        fvu = f"{float(s['fvu_at_match']):.4f}" if s["fvu_at_match"] else "-"
        kept = [int(r["kept_weights"]) for r in er if r["density"] == s["density"] and r["multiplier"] == s["k_match"]]
        lines.append(
            f"| {1 - float(s['density']):g} | {float(s['delta']):g} | ({s['q_theorem'].replace(' ', ', ')}) | "
            f"{s['k_theorem']} | {s['k_exact']} | {match} | {fvu} | {round(np.mean(kept)) if kept else '-'} | "
            f"{float(s['dense_fvu']):.4f} | {float(s['tolerance']):.0%} |"
        )
    lines += ["", "Mean test FVU of the ER students (min - max over seeds):", "",
              "| sparsity | " + " | ".join(f"k = {k}" for k in _multipliers(er)) + " |",
              "|---|" + "---|" * len(_multipliers(er))]
    for s in summ:
        cells = []
        for k in _multipliers(er):
            v = [float(r["test_fvu"]) for r in er if r["density"] == s["density"] and int(r["multiplier"]) == k]
            cells.append(f"{np.mean(v):.4f} ({min(v):.4f} - {max(v):.4f})" if v else "-")
        lines.append(f"| {1 - float(s['density']):g} | " + " | ".join(cells) + " |")
    lines += ["", "Reading: " + " ".join(_reading(s) for s in summ), ""]
    dense_v = [float(r["test_fvu"]) for r in dense]
    lines += ["", f"Dense student of the teacher's width: test FVU {np.mean(dense_v):.4f} "
              f"(min {min(dense_v):.4f}, max {max(dense_v):.4f}), {dense[0]['kept_weights']} weights.  A student "
              "matches when its mean test FVU is at most (1 + tolerance) times the dense student's.", "",
              f"![teacher-student]({image})", ""]
    return "\n".join(lines)


def _repo_relative(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it, else as given."""
    try:
        return path.resolve().relative_to(HERE.parent).as_posix()
    except ValueError:
        return path.as_posix()


def _reading(s: dict[str, str]) -> str:
    """One generated sentence per density comparing the trained and the theoretical multipliers."""
    sparsity = f"{1 - float(s['density']):g}"
    if not s["k_match"]:
        return f"At sparsity {sparsity} no trained multiplier matched the dense student."
    k, k_thm, k_ex = int(s["k_match"]), int(s["k_theorem"]), int(s["k_exact"])
    return (
        f"At sparsity {sparsity} the trained ER students match the dense student from k = {k}, "
        f"{k_thm / k:.1f} times below Theorem 2.2's k = {k_thm} and {k_ex / k:.1f} times below the exact "
        f"construction's k = {k_ex}."
    )


def _multipliers(er: list[dict[str, str]]) -> list[int]:
    return sorted({int(r["multiplier"]) for r in er})


# ----------------------------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(HERE / "out"), help="output directory (default figures/out)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--small", dest="size", action="store_const", const="small", help="CI setting (default)")
    size.add_argument("--full", dest="size", action="store_const", const="full", help="the full study")
    parser.set_defaults(size="small")
    parser.add_argument("--d", type=int, help="teacher inputs")
    parser.add_argument("--hidden", type=int, help="teacher hidden width")
    parser.add_argument("--densities", type=float, nargs="+", help="ER densities p of the students")
    parser.add_argument("--multipliers", type=int, nargs="+", help="width multipliers k")
    parser.add_argument("--seeds", type=int, help="seeds per setting")
    parser.add_argument("--n-train", type=int, help="training examples")
    parser.add_argument("--n-test", type=int, default=1000, help="test examples (default 1000)")
    parser.add_argument("--epochs", type=int, help="training epochs per student")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--delta", type=float, default=0.01, help="failure probability of the theory (default 0.01)")
    parser.add_argument("--tolerance", type=float, default=0.1,
                        help="match: mean test FVU at most (1 + this) times the dense reference's (default 0.1)")
    parser.add_argument("--teacher-seed", type=int, default=0, help="seed of the teacher and its data")
    parser.add_argument("--write-doc", metavar="PATH", help="after the run, render the markdown note to PATH")
    parser.add_argument("--doc-only", action="store_true", help="only render --write-doc from existing CSVs")
    parser.add_argument("--replot", action="store_true",
                        help="no training: redraw the PNG from the CSVs already in --out (and --write-doc if given)")
    return parser


def main(argv: list[str] | None = None) -> int:
    opts = _parser().parse_args(argv)
    for key, value in SETTINGS[opts.size].items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    for name in ("d", "hidden", "seeds", "n_train", "n_test", "epochs", "batch_size"):
        if int(getattr(opts, name)) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(opts, name)!r}")
    if any(not 0.0 < p < 1.0 for p in opts.densities):
        raise ValueError(f"--densities must lie in (0, 1), got {opts.densities!r}")
    if any(k < 1 for k in opts.multipliers):
        raise ValueError(f"--multipliers must be positive integers, got {opts.multipliers!r}")
    if not opts.tolerance >= 0.0:
        raise ValueError(f"--tolerance must be non-negative, got {opts.tolerance!r}")
    if not 0.0 < opts.delta < 1.0:
        raise ValueError(f"--delta must lie in (0, 1), got {opts.delta!r}")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "teacher_student" if opts.size == "small" else f"teacher_student_{opts.size}"
    if opts.replot:
        results = [_from_row(StudentResult, r) for r in _read_csv(out / f"{stem}.csv")]
        summaries = [_from_row(DensitySummary, r) for r in _read_csv(out / f"{stem}_summary.csv")]
        plot(results, summaries, out / f"{stem}.png", opts.size)
    elif not opts.doc_only:
        results, summaries = run_study(opts)
        _write_atomic(out / f"{stem}.csv", _rows_csv(results))
        _write_atomic(out / f"{stem}_summary.csv", _rows_csv(summaries))
        plot(results, summaries, out / f"{stem}.png", opts.size)
        for s in summaries:
            print(f"[teacher_student] sparsity {1 - s.density:g}: Theorem 2.2 k={s.k_theorem}, exact k={s.k_exact}, "
                  f"matching dense (FVU {s.dense_fvu:.4f}, tolerance {s.tolerance:.0%}) from k={s.k_match}")
    if opts.write_doc:
        doc = Path(opts.write_doc)
        _write_atomic(doc, render_doc(out, stem, opts.size, doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
