"""docs/reproduction.md against the committed result files of the study it documents.

The document must be exactly what :func:`studies.reproduction.build_document` generates from
``results/reproduction/<variant>/*.json`` (so no number in it is typed by hand), every accuracy cell must
be one setting's mean and 95% interval recomputed here independently from the raw files, and every claim
must state its rule, its tests with their intervals, and its verdict.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reproduction.md"
VERDICTS = ("holds", "partly holds", "does not hold", "inconclusive (intervals overlap)")


def doc_variant() -> str:
    match = re.search(r"^Variant: \*\*([\w-]+)\*\*", DOC.read_text(), flags=re.MULTILINE)
    assert match, "docs/reproduction.md names no variant"
    return match.group(1)


def result_files() -> list[dict]:
    files = sorted((ROOT / "results" / "reproduction" / doc_variant()).glob("*.json"))
    assert files, "no result files for the documented variant"
    return [json.loads(f.read_text()) for f in files]


def test_document_is_generated_from_the_results_files() -> None:
    from studies import reproduction as study

    expected = study.build_document(doc_variant())
    assert DOC.read_text() == expected, "docs/reproduction.md differs from the results: rerun scripts/reproduce.py"


def test_every_accuracy_cell_is_recomputed_from_the_run_files() -> None:
    """Group the raw files by configuration without the seed; every 'mean ± ci' cell is one such group."""
    groups: dict[str, list[float]] = defaultdict(list)
    for record in result_files():
        key = {k: v for k, v in record["config"].items() if k not in ("seed", "recipe", "device", "data_dir")}
        if key.get("density_scheme") == "imp":  # ER-IMP: each seed takes the ratios of its own seed's IMP mask
            key.pop("density_options", None)
        groups[json.dumps(key, sort_keys=True)].append(100.0 * record["test_accuracy"])
    known = set()
    for values in groups.values():
        a = np.asarray(values)
        half = stats.t.ppf(0.975, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size) if a.size > 1 else math.nan
        known.add(f"{a.mean():.2f}" if math.isnan(half) else f"{a.mean():.2f} ± {half:.2f}")
    cells = re.findall(r"\| (\d+\.\d\d ± \d+\.\d\d) ", DOC.read_text())
    assert cells, "no accuracy cells in the document"
    missing = sorted(set(cells) - known)
    assert not missing, f"cells that no setting of the result files gives: {missing[:5]}"


def test_every_claim_states_its_rule_tests_and_verdict() -> None:
    text = DOC.read_text()
    sections = re.split(r"^## Claim \d: ", text, flags=re.MULTILINE)[1:]
    assert len(sections) == 5
    test_row = (r"\| [<>] [+-]\d+(\.\d+)? \| [+-]\d+\.\d\d \[[+-](\d+\.\d\d|inf), [+-](\d+\.\d\d|inf)\] \| [^|]* \| "
                r"[^|]* \| [^|]* \| (holds|fails|inconclusive) \|")
    for section in sections:
        assert "**The paper.** \"" in section, "a claim without its quoted sentence"
        assert re.search(r"\((§\d|App\. [A-Z])", section), "a claim without the paper's section"
        assert "**Scope.**" in section and "**Rule (fixed in advance" in section
        assert re.search(test_row, section) or "| exact computation |" in section, "a claim without a test"
        verdict = re.search(r"\*\*Verdict: (.+?)\.\*\*", section)
        assert verdict and verdict.group(1) in VERDICTS
    summary = re.findall(r"^\| \d \| .+? \| \*\*(.+?)\*\* \|", text, flags=re.MULTILINE)
    assert len(summary) == 5 and set(summary) <= set(VERDICTS)


def test_acceptance_items_are_in_the_document() -> None:
    """Non-tests listed, minimum detectable effects, Holm, realised density in every cell, stand-ins named."""
    text = DOC.read_text()
    assert "**Not tests**" in text and "one network" in text
    assert "| MDE (pts) |" in text and "Holm" in text
    cells = re.findall(r"\| (\d+\.\d\d ± \d+\.\d\d)([^|]*)\|", text)
    assert cells and all(rest.startswith(" · density ") for _, rest in cells)
    claim5 = text.split("## Claim 5: ", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([^|]+?) \| \d", claim5, flags=re.MULTILINE)
    assert rows and all("stands in for" in r for r in rows)
    assert "## What changed and why" in text


def test_the_grokking_dense_baseline_generalises() -> None:
    """The modular-addition stand-in can answer claim 5: its dense network (not pruned) reaches >= 90% test accuracy."""
    dense = [r for r in result_files() if r["config"]["dataset"] == "modular-addition"
             and r["config"]["model"] == "grokking" and r["config"]["density_scheme"] == "dense"
             and r["config"]["method"] == "static"]
    assert len(dense) >= 3 and all(r["test_accuracy"] >= 0.9 for r in dense)


def test_figures_of_the_documented_variant_exist() -> None:
    text = DOC.read_text()
    for k in range(1, 6):
        path = f"results/reproduction/{doc_variant()}/figures/claim{k}.png"
        assert f"(../{path})" in text
        assert (ROOT / path).is_file(), path


def test_every_setting_is_reported_for_convergence() -> None:
    """Per claim the settings by status add up; every setting not converged is listed once."""
    text = DOC.read_text()
    counts = re.findall(r"^\| \d \| .+? \| (\d+) \| (\d+) \| (\d+) / (\d+) / (\d+) / (\d+) \|$", text,
                        flags=re.MULTILINE)
    assert len(counts) == 5
    for _, settings, *by_status in counts:
        assert sum(int(v) for v in by_status) == int(settings)
    section = text.split("## Convergence", 1)[1].split("\n## ", 1)[0]
    stated = re.search(r"Not converged: (\d+) setting", section)
    assert stated is not None
    listed = re.findall(r"^\| [\d, ]+ \| (.+) \| not converged \|", section, flags=re.MULTILINE)
    assert len(listed) == int(stated.group(1)) and len(set(listed)) == len(listed)


def test_script_refuses_bad_input_with_one_line() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), "nosuch", "--no-run"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown study variant 'nosuch'" in proc.stderr
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), "quick", "--claims", "7"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "'7'" in proc.stderr


def test_the_study_has_its_own_entry_point() -> None:
    """``ertoolkit-study`` (and ``python -m studies.reproduction``), not an ``ertrain`` command."""
    script = Path(sys.executable).parent / "ertoolkit-study"
    proc = subprocess.run([str(script), "nosuch", "--no-run"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown study variant 'nosuch'" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "studies.reproduction", "--help"], capture_output=True, text=True,
                          cwd=ROOT, check=False)
    assert proc.returncode == 0 and "ertoolkit-study" in proc.stdout and "--dry-run" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "ertrain.cli", "study", "cpu"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2 and "invalid choice: 'study'" in proc.stderr


@pytest.mark.parametrize("variant", ["quick", "cpu", "full"])
def test_design_files_parse(variant: str) -> None:
    from studies.reproduction import load_design

    design = load_design(variant)
    assert design.name == variant and len(design.seeds) >= 2 and set(design.claims) == {1, 2, 3, 4, 5}
