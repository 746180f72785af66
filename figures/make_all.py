"""Regenerate the figures into ``figures/out/`` (PNG + CSV), each only when its inputs changed.

A figure's inputs are the source files of its script and of every project module the script imports
(read from the import statements; an ``ertrain`` import counts the whole ``ertrain`` package, whose
registries load modules by name), the data files it reads, its arguments and the versions of Python and
of the libraries it uses.  After a successful run their hash is kept in ``OUT/.stamps/NAME.sha256``; the
next run skips the figure while the hash is the same and its outputs exist.

``figures/out/`` is not tracked.  The README and ``docs/`` show the committed copies in ``docs/figures/``;
``--publish`` brings every published figure up to date (the full teacher-student study takes minutes),
copies its files there and regenerates ``docs/teacher_student.md``.  The reproduction study's figures are
made with its results (``figures/reproduction_claims.py``), not here.

    python3 figures/make_all.py                     # the default figures, each only when stale
    python3 figures/make_all.py --only slt_width --force
    python3 figures/make_all.py --only teacher_student_full
    python3 figures/make_all.py --publish
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import importlib.metadata
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PUBLISHED_DIR = ROOT / "docs" / "figures"
TEACHER_STUDENT_DOC = ROOT / "docs" / "teacher_student.md"

#: Top-level packages of this project; imports of anything else are libraries (versions hashed instead).
PROJECT_PACKAGES: tuple[str, ...] = ("ertheory", "ertrain", "figures")
#: Packages counted whole once anything in them is imported (registries import their modules by name).
WHOLE_PACKAGES: tuple[str, ...] = ("ertrain",)
#: Libraries whose versions are part of every figure's inputs; ``torch`` only for figures that use ertrain.
LIBRARIES: tuple[str, ...] = ("numpy", "scipy", "matplotlib", "pandas")


@dataclass(frozen=True)
class Figure:
    """One figure: the script ``figures/<script>.py`` run with ``args`` writes ``outputs`` into ``--out``."""

    name: str
    script: str
    outputs: tuple[str, ...]
    args: tuple[str, ...] = ()
    data: tuple[str, ...] = ()  # files it reads, relative to the repository root
    default: bool = True  # run by a plain ``make_all.py`` (and so by ``scripts/main.sh``)
    published: bool = True  # committed copy in docs/figures/


def _files(stem: str, *suffixes: str) -> tuple[str, ...]:
    return tuple(f"{stem}{s}" for s in suffixes)


#: Every figure, in the order they run.
FIGURES: tuple[Figure, ...] = (
    Figure("figure2", "figure2", _files("figure2", ".png", ".csv", "_depth.csv")),
    Figure("lower_bound_tightness", "lower_bound_tightness", _files("lower_bound_tightness", ".png", ".csv")),
    Figure("mc_vs_exact", "mc_vs_exact", _files("mc_vs_exact", ".png", ".csv")),
    Figure("subset_sum_scaling", "subset_sum_scaling", _files("subset_sum_scaling", ".png", ".csv", "_fit.csv")),
    Figure("slt_width", "slt_width", _files("slt_width", ".png", ".csv")),
    Figure(
        "teacher_student", "teacher_student", _files("teacher_student", ".png", ".csv", "_summary.csv"),
        args=("--small",), default=False, published=False,
    ),
    Figure(
        "teacher_student_full", "teacher_student", _files("teacher_student_full", ".png", ".csv", "_summary.csv"),
        args=("--full",), default=False,
    ),
)
BY_NAME = {f.name: f for f in FIGURES}


# ---------------------------------------------------------------------------------------------------- inputs


def module_path(name: str) -> Path | None:
    """The source file of the project module ``name`` (a package's ``__init__.py``), or None."""
    parts = name.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path, module: str) -> Iterator[str]:
    """Every module name an import statement of ``path`` may load (``from m import x`` yields ``m`` and ``m.x``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def source_files(module: str) -> list[Path]:
    """The project source files ``module`` depends on: its import closure (parent packages included)."""
    seen: dict[str, Path] = {}
    stack = [module]
    while stack:
        parts = stack.pop().split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            path = None if name in seen else module_path(name)
            if path is not None:
                seen[name] = path
                stack.extend(imported_names(path, name))
    files = set(seen.values())
    for package in WHOLE_PACKAGES:
        if any(name.split(".")[0] == package for name in seen):
            files.update((ROOT / package).rglob("*.py"))
    return sorted(files)


def input_hash(figure: Figure) -> str:
    """SHA-256 over the figure's source files, data files, arguments and library versions."""
    sources = source_files(f"figures.{figure.script}")
    digest = hashlib.sha256()
    for path in [*sources, *(ROOT / d for d in figure.data)]:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"missing")
    digest.update("\0".join(figure.args).encode())
    libraries = list(LIBRARIES) + (["torch"] if any(p.is_relative_to(ROOT / "ertrain") for p in sources) else [])
    for lib in libraries:
        try:
            version = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{lib}={version}\0".encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def stamp_path(out: Path, figure: Figure) -> Path:
    return out / ".stamps" / f"{figure.name}.sha256"


def is_current(out: Path, figure: Figure, digest: str) -> bool:
    """The stamp holds ``digest`` and every output exists."""
    stamp = stamp_path(out, figure)
    return (
        stamp.is_file()
        and stamp.read_text().strip() == digest
        and all((out / name).is_file() for name in figure.outputs)
    )


# ---------------------------------------------------------------------------------------------------- running


def run_figure(figure: Figure, out: Path, force: bool = False) -> bool:
    """Bring one figure up to date in ``out``; return whether it was recomputed."""
    from ertheory.fileio import atomic_write_text

    digest = input_hash(figure)
    if not force and is_current(out, figure, digest):
        print(f"[figures] {figure.name}: up to date (inputs unchanged)", flush=True)
        return False
    print(f"[figures] {figure.name} ...", flush=True)
    t0 = time.perf_counter()
    rc = importlib.import_module(f"figures.{figure.script}").main([*figure.args, "--out", str(out)])
    if rc:
        raise RuntimeError(f"figure {figure.name!r} failed with status {rc}")
    missing = [name for name in figure.outputs if not (out / name).is_file()]
    if missing:
        raise RuntimeError(f"figure {figure.name!r} did not write {', '.join(missing)}")
    stamp_path(out, figure).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stamp_path(out, figure), digest + "\n", durable=False)
    print(f"[figures] {figure.name} done in {time.perf_counter() - t0:.1f} s", flush=True)
    return True


def publish(out: Path, dest: Path = PUBLISHED_DIR) -> list[Path]:
    """Copy the published figures' files from ``out`` to ``dest`` (only those whose bytes differ); regenerate
    the teacher-student note from the copies.  Returns the files written."""
    from ertheory.fileio import atomic_write_bytes

    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for figure in FIGURES:
        if not figure.published:
            continue
        for name in figure.outputs:
            data = (out / name).read_bytes()
            target = dest / name
            if not target.is_file() or target.read_bytes() != data:
                written.append(atomic_write_bytes(target, data, durable=False))
    teacher_student = importlib.import_module("figures.teacher_student")
    teacher_student.main(["--full", "--doc-only", "--out", str(dest), "--write-doc", str(TEACHER_STUDENT_DOC)])
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(HERE / "out"), help="output directory (default figures/out)")
    parser.add_argument("--only", nargs="+", choices=list(BY_NAME), metavar="NAME",
                        help=f"run only these figures (any of: {', '.join(BY_NAME)})")
    parser.add_argument("--force", action="store_true", help="recompute even when the inputs are unchanged")
    parser.add_argument("--publish", action="store_true",
                        help="bring every published figure up to date, then copy them to docs/figures/")
    args = parser.parse_args(argv)
    if args.only:
        figures = [BY_NAME[name] for name in args.only]
    elif args.publish:
        figures = [f for f in FIGURES if f.published]
    else:
        figures = [f for f in FIGURES if f.default]
    from figures._common import check_out_dir

    try:
        out = check_out_dir(args.out)
    except ValueError as exc:
        print(f"make_all: error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    for figure in figures:
        try:
            run_figure(figure, out, force=args.force)
        except (ValueError, RuntimeError) as exc:
            print(f"make_all: error: {exc}", file=sys.stderr)
            return 2
    if args.publish:
        written = publish(out)
        print(f"[figures] published to {PUBLISHED_DIR.relative_to(ROOT)}: {len(written)} file(s) changed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
