"""Run the reproduction study of the paper's claims and write ``docs/reproduction.md`` (a thin wrapper).

The study lives in :mod:`studies.reproduction`; ``ertoolkit-study`` is the same command.  This script trains every arm
of a variant that has no result file under ``results/reproduction/<variant>/``, draws one figure per claim and
regenerates the document from the result files.

    python3 scripts/reproduce.py quick --jobs 2        # CI-sized, minutes
    python3 scripts/reproduce.py cpu --jobs 2          # the CPU study of docs/study_design.md (resumable)
    python3 scripts/reproduce.py cpu --no-run          # figures and document from the committed files only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_claims(text: str) -> tuple[int, ...]:
    """``"1,3"`` -> ``(1, 3)``; anything but claim numbers 1-5 raises ``ValueError`` naming the text."""
    try:
        numbers = tuple(sorted({int(t) for t in text.split(",") if t.strip()}))
    except ValueError:
        numbers = ()
    if not numbers or not set(numbers) <= {1, 2, 3, 4, 5}:
        raise ValueError(f"--claims must be comma-separated claim numbers 1-5, got {text!r}")
    return numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", nargs="?", default="quick", help="quick, cpu, full, or a design .toml file")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="threads per run (default 1)")
    parser.add_argument("--claims", default="1,2,3,4,5", help="comma-separated claim numbers (default all)")
    parser.add_argument("--no-run", action="store_true", help="train nothing; figures and document only")
    args = parser.parse_args(argv)
    from figures.reproduction_claims import write_figures
    from studies import reproduction as study

    try:
        claims = parse_claims(args.claims)
        if not args.no_run:
            study.run(args.variant, jobs=args.jobs, threads=args.threads, claims=claims)
        design = study.load_design(args.variant)
        write_figures(design.name)
        print(f"wrote {study.write_document(args.variant)}")
    except ValueError as exc:
        print(f"reproduce: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
