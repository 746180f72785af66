"""The reproduction study of the paper's five empirical claims: an experiment built on ``ertrain``.

A *variant* is a design file ``configs/reproduction/<variant>.toml`` (``quick``: the whole pipeline in
minutes, for CI; ``cpu``: the study of ``docs/study_design.md``; ``full``: the paper's CIFAR scale on GPUs).
:func:`run` trains every arm that has no result file yet and writes one small JSON file per finished run
under ``results/reproduction/<variant>/`` (committed, so the study resumes on any machine);
:func:`write_document` writes ``docs/reproduction.md`` from those files only.

Example::

    from studies import reproduction as study
    summary = study.run("quick", jobs=2)
    study.write_document("quick")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from studies.reproduction.arms import Arm
from studies.reproduction.design import ROOT, Design, load_design
from studies.reproduction.load import RESULTS_DIR, StudyData, load, results_dir
from studies.reproduction.runner import Log, Summary, run_study

#: The document :func:`write_document` writes by default.
DOC_PATH = ROOT / "docs" / "reproduction.md"
#: The claims of the study.
ALL_CLAIMS = (1, 2, 3, 4, 5)


def run(variant: str | Path, *, results: Path | None = None, runs_dir: Path | None = None, jobs: int = 1,
        threads: int = 1, claims: Sequence[int] = ALL_CLAIMS, dry_run: bool = False, log: Log = print,
        select: Callable[[Arm], bool] | None = None) -> Summary:
    """Train the arms of ``variant`` that have no result file (see the module docstring).

    ``results``: the folder of result files (default ``results/reproduction/<variant>``); ``runs_dir``: run
    directories with checkpoints (default ``results/reproduction/runs/<variant>``, not committed); ``jobs``
    processes of ``threads`` threads each; ``dry_run`` only counts what the first phase would train; ``select``
    keeps only the arms it returns True for (e.g. the dense references first).
    """
    design = load_design(variant)
    out = results_dir(design.name, results)
    runs = runs_dir if runs_dir is not None else RESULTS_DIR / "runs" / design.name
    return run_study(design, out, runs, jobs=jobs, threads=threads, claims=tuple(claims), dry_run=dry_run, log=log,
                     select=select)


def build_document(variant: str | Path, *, results: Path | None = None) -> str:
    """The text of ``docs/reproduction.md`` for ``variant``, from its result files only."""
    from studies.reproduction.document import build_document as build

    return build(load(variant, results))


def write_document(variant: str | Path, *, results: Path | None = None, doc: Path | None = None) -> Path:
    """Write :func:`build_document` to ``doc`` (default ``docs/reproduction.md``) atomically; return the path."""
    from ertheory.fileio import atomic_write_text

    target = doc if doc is not None else DOC_PATH
    atomic_write_text(target, build_document(variant, results=results))
    return target


__all__ = ["ALL_CLAIMS", "DOC_PATH", "RESULTS_DIR", "Arm", "Design", "StudyData", "Summary", "build_document", "load",
           "load_design", "run", "write_document"]
