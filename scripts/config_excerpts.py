"""Write the dry-run excerpts of docs/configs.md: the first run of a ``paper-code`` sweep and of a
recipe-driven sweep as ``ertrain sweep FILE --dry-run --json`` lists them (fields whose source is
``default`` left out, but for the recipe's name).  ``tests/test_front_door.py`` regenerates the block and compares.

Usage: python3 scripts/config_excerpts.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ertrain.sweep import build_resolved, load_sweep

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configs.md"
BEGIN, END = "<!-- dry-run excerpts: begin -->", "<!-- dry-run excerpts: end -->"
#: (sweep file, what it shows)
SWEEPS = (
    ("configs/t09_resnet50_cifar100_ratios/full_paper_code.toml", "a `paper-code` sweep"),
    ("configs/widening_mlp_fashion_mnist/smoke.toml", "a recipe-driven sweep (the `fashion-mnist-mlp` recipe)"),
)


def excerpt(path: str) -> dict[str, object]:
    """The first run of sweep ``path`` as the dry run lists it, without the fields left at their defaults
    (the recipe's name is kept: the rules pick it, so its own source is ``default``)."""
    run = build_resolved(load_sweep(ROOT / path))[0].to_dict()
    shown = [k for k, source in run["sources"].items() if source != "default" or k == "recipe"]
    return {"run_hash": run["run_hash"], "config": {k: run["config"][k] for k in shown},
            "sources": {k: run["sources"][k] for k in shown}}


def block() -> str:
    parts = [BEGIN]
    for path, what in SWEEPS:
        parts += ["", f"{what[0].upper()}{what[1:]}: `ertrain sweep {path} --dry-run --json`, first entry of `runs`:",
                  "", "```json", json.dumps(excerpt(path), indent=2), "```"]
    return "\n".join([*parts, "", END])


def updated(text: str) -> str:
    """``text`` with its excerpt block regenerated (``ValueError`` if the markers are missing)."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"{DOC}: the markers {BEGIN!r} and {END!r} are missing")
    head, rest = text.split(BEGIN, 1)
    return head + block() + rest.split(END, 1)[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/configs.md is out of date")
    args = parser.parse_args()
    text = DOC.read_text()
    new = updated(text)
    if args.check:
        return 0 if new == text else 1
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
