"""Regenerate every figure into ``figures/out/`` (PNG + CSV), then run the small training demo.

Each entry of ``FIGURES`` is a script in this folder exposing ``main(argv) -> int``; it is run
with ``--out figures/out``.  ``--only NAME`` runs one of them.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Figure scripts, in the order they run (file stems in ``figures/``).
FIGURES: tuple[str, ...] = (
    "figure2",
    "lower_bound_tightness",
    "mc_vs_exact",
    "subset_sum_scaling",
    "slt_width",
    "teacher_student",
)


def load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"figures.{name}", HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ValueError(f"no figure script named {name!r}; known: {', '.join(FIGURES)}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and postponed annotations look their module up here
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(HERE / "out"), help="output directory (default figures/out)")
    parser.add_argument("--only", choices=FIGURES, help="run only this figure script")
    args = parser.parse_args(argv)
    names = [args.only] if args.only else list(FIGURES)
    for name in names:
        t0 = time.perf_counter()
        print(f"[figures] {name} ...", flush=True)
        rc = load(name).main(["--out", args.out])
        if rc:
            print(f"[figures] {name} failed with status {rc}", file=sys.stderr)
            return rc
        print(f"[figures] {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
