"""docs/reproduction.md against the committed results files, and the reproduction sweep configs.

The document must be exactly what ``scripts/reproduce.py`` generates from ``results/reproduction/<mode>_*``
(so no number in it is typed by hand), and the aggregated files must agree with the per-run file when the
statistics are recomputed here independently.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reproduction.md"
RESULTS = ROOT / "results" / "reproduction"
CONFIGS = sorted((ROOT / "configs" / "reproduction").glob("*/*.toml"))


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("reproduce", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rep() -> ModuleType:
    return load_script()


def doc_mode() -> str:
    match = re.search(r"^Setting: \*\*(quick|full)\*\*", DOC.read_text(), flags=re.MULTILINE)
    assert match, "docs/reproduction.md names no setting"
    return match.group(1)


# ---------------------------------------------------------------------------------------------- the document


def test_document_is_generated_from_the_results_files(rep: ModuleType) -> None:
    mode = doc_mode()
    assert (RESULTS / f"{mode}_summary.json").is_file()
    expected = rep.build_document(RESULTS, mode)
    assert DOC.read_text() == expected, "docs/reproduction.md differs from the results: rerun scripts/reproduce.py"


def md_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of ``text`` as rows of cells (header first, separator dropped)."""
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r"-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_every_accuracy_cell_is_a_row_of_a_claim_file() -> None:
    """Each ``mean ± ci`` cell of the document is, after rounding, one aggregated row of the claim files."""
    mode = doc_mode()
    known: set[str] = set()
    for k in range(1, 6):
        path = RESULTS / f"{mode}_claim{k}.csv"
        if not path.is_file():
            continue
        df = pd.read_csv(path)
        for mean, ci in zip(df["acc_mean"], df["acc_ci95"], strict=True):
            known.add(f"{mean:.2f}" if math.isnan(ci) else f"{mean:.2f} ± {ci:.2f}")
    cells = [c.strip("*") for t in md_tables(DOC.read_text()) for row in t[1:] for c in row if "±" in c]
    assert cells, "no accuracy cells in the document"
    missing = [c for c in cells if c not in known]
    assert not missing, f"cells not in any results file: {missing[:5]}"


def test_aggregates_agree_with_the_runs_file(rep: ModuleType) -> None:
    """Mean and 95% CI of every setting, recomputed from the per-run rows with numpy and scipy.stats.t."""
    mode = doc_mode()
    runs = pd.read_csv(RESULTS / f"{mode}_runs.csv", keep_default_na=False, na_values=[""])
    checked = 0
    for claim in rep.CLAIMS:
        agg = pd.read_csv(RESULTS / f"{mode}_claim{claim.number}.csv", keep_default_na=False, na_values=[""])
        sub = runs[runs["claim"] == claim.number]
        assert int(agg["n"].sum()) == len(sub), f"claim {claim.number}: run count differs"
        for _, row in agg.iterrows():
            mask = np.ones(len(sub), dtype=bool)
            for key in claim.keys:
                col, want = sub[key], row[key]
                if isinstance(want, float) and math.isnan(want):
                    mask &= col.isna().to_numpy() | (col.astype(str) == "none").to_numpy()
                elif isinstance(want, (int, float)):
                    mask &= np.isclose(pd.to_numeric(col, errors="coerce").to_numpy(dtype=float), float(want))
                else:
                    mask &= (col.astype(str) == str(want)).to_numpy()
            acc = 100.0 * sub.loc[mask, "test_accuracy"].to_numpy(dtype=float)
            assert acc.size == row["n"]
            assert acc.mean() == pytest.approx(row["acc_mean"], abs=1e-6)
            if acc.size > 1:
                half = stats.t.ppf(0.975, acc.size - 1) * acc.std(ddof=1) / math.sqrt(acc.size)
                assert half == pytest.approx(row["acc_ci95"], abs=1e-6)
            checked += 1
    assert checked > 0


# ---------------------------------------------------------------------------------------------- helpers


def test_theory_width_is_one_over_log_inverse_sparsity(rep: ModuleType) -> None:
    assert rep.theory_width(math.exp(-1.0)) == pytest.approx(1.0)
    assert rep.theory_width(math.exp(-0.25)) == pytest.approx(4.0)
    # as the density p -> 0 the factor approaches 1/p (DIGEST §11)
    assert rep.theory_width(0.999) * 0.001 == pytest.approx(1.0, rel=1e-3)


def test_needed_widths_by_hand(rep: ModuleType) -> None:
    agg = pd.DataFrame(
        [
            ("dense", 1.0, 0.0, 80.0),
            ("uniform", 1.0, 0.5, 79.0),  # within 2 pts at width 1
            ("uniform", 2.0, 0.5, 80.5),
            ("uniform", 1.0, 0.9, 70.0),
            ("uniform", 2.0, 0.9, 77.0),
            ("uniform", 4.0, 0.9, 78.5),  # first within 2 pts: width 4
            ("uniform", 1.0, 0.99, 20.0),
            ("uniform", 4.0, 0.99, 40.0),  # never within: > 4
        ],
        columns=["density_scheme", "width", "sparsity", "acc_mean"],
    )
    need = rep.needed_widths(agg).set_index("sparsity")
    assert need.loc[0.5, "needed"] == 1.0
    assert need.loc[0.9, "needed"] == 4.0
    assert math.isinf(need.loc[0.99, "needed"]) and need.loc[0.99, "max_width"] == 4.0
    assert need.loc[0.9, "gain"] == pytest.approx(8.5)


def test_aggregate_claim_by_hand(rep: ModuleType) -> None:
    claim = rep.CLAIM_BY_NUMBER[1]
    runs = pd.DataFrame(
        {
            "density_scheme": ["erk", "erk", "erk", "dense"],
            "flow_repair": ["none"] * 4,
            "sparsity": [0.9, 0.9, 0.9, 0.0],
            "test_accuracy": [0.70, 0.72, 0.74, 0.80],
            **{m: [1.0, 1.0, 1.0, 1.0] for m in rep.EXTRA_METRICS},
        }
    )
    agg = rep.aggregate_claim(claim, runs).set_index("density_scheme")
    assert agg.loc["erk", "acc_mean"] == pytest.approx(72.0)
    # s = 2, n = 3: t_{0.975, 2} = 4.302652729911275
    assert agg.loc["erk", "acc_ci95"] == pytest.approx(4.302652729911275 * 2.0 / math.sqrt(3.0))
    assert agg.loc["dense", "n"] == 1 and math.isnan(agg.loc["dense", "acc_ci95"])


def test_parse_claims_rejects_unknown_numbers(rep: ModuleType) -> None:
    assert [c.number for c in rep.parse_claims("3,1")] == [1, 3]
    with pytest.raises(ValueError, match="'7'"):
        rep.parse_claims("7")
    with pytest.raises(ValueError, match="'x'"):
        rep.parse_claims("x")


# ---------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parent.name}/{p.name}" for p in CONFIGS])
def test_reproduction_config_is_valid(path: Path) -> None:
    from ertrain.sweep import build_configs, load_sweep, validate_config

    configs = build_configs(load_sweep(path))
    assert configs
    for config in configs:
        validate_config(config)
    if path.name == "quick.toml":
        offline = {"digits", "fashion-mnist", "tabular", "modular-addition", "teacher", "synthetic-citation"}
        assert {c.dataset for c in configs} <= offline
        assert len({c.seed for c in configs}) >= 2


def test_every_claim_has_quick_and_full(rep: ModuleType) -> None:
    for claim in rep.CLAIMS:
        for mode in rep.MODES:
            assert rep.config_path(claim, mode).is_file(), (claim.slug, mode)


@pytest.mark.parametrize("mode", ["quick", "full"])
def test_er_imp_reads_the_imp_run_of_its_sparsity(rep: ModuleType, mode: str) -> None:
    """Claim 4's ER-IMP ratios come from the seed-0 IMP run (same file) that ends at the same sparsity."""
    from ertrain.sweep import build_configs, load_sweep

    configs = build_configs(load_sweep(rep.config_path(rep.CLAIM_BY_NUMBER[4], mode)))
    imp_runs = {
        round(1.0 - c.method_options["final_density"], 6): c.run_hash()
        for c in configs
        if c.method == "imp" and c.seed == 0
    }
    er_imp = [c for c in configs if c.density_scheme == "imp"]
    assert er_imp
    for c in er_imp:
        run = Path(c.density_options["run"])
        assert run.parent == Path("results/reproduction/runs") / mode
        assert run.name == imp_runs[round(1.0 - c.density, 6)]
