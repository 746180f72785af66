"""Reports: the Student-t interval, aggregation over seeds, table layouts, best-cell marks, long-form files."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ertrain.cli import main
from ertrain.report import (
    aggregate,
    ci95_halfwidth,
    load_runs,
    make_table,
    render,
    save_long_form,
    stage_rows,
)


def test_ci_by_hand() -> None:
    # x = 1, 2, 3: mean 2, s = 1; t_{0.975, 2} = 4.302653 (printed t tables) -> 4.302653 / sqrt(3)
    assert ci95_halfwidth([1.0, 2.0, 3.0]) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    # two values 0 and 1: s = 1/sqrt(2), t_{0.975, 1} = 12.706205
    assert ci95_halfwidth([0.0, 1.0]) == pytest.approx(12.706205 * (1 / math.sqrt(2)) / math.sqrt(2), rel=1e-6)
    assert math.isnan(ci95_halfwidth([0.7]))


@given(st.lists(st.floats(-100, 100), min_size=2, max_size=12))
@settings(max_examples=60)
def test_ci_matches_scipy_interval(xs: list[float]) -> None:
    x = np.asarray(xs)
    if x.std() < 1e-9:
        assert ci95_halfwidth(x) == pytest.approx(0.0, abs=1e-6)
        return
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert ci95_halfwidth(x) == pytest.approx((hi - lo) / 2, rel=1e-9)


def test_ci_covers_the_true_mean_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    trials, n = 4000, 3
    samples = rng.normal(5.0, 2.0, size=(trials, n))
    half = np.array([ci95_halfwidth(s) for s in samples])
    covered = np.abs(samples.mean(axis=1) - 5.0) <= half
    # 4000 Bernoulli(0.95) trials: a 99.9% binomial band around 0.95
    lo, hi = stats.binom.ppf([0.0005, 0.9995], trials, 0.95) / trials
    assert lo <= covered.mean() <= hi


def _fake_runs(tmp_path: Path, accuracies: dict[tuple[str, float, int], float], **extra: object) -> Path:
    """Write run directories the way ``ertrain.trainer.run`` does (config.json + result.json)."""
    from ertrain.config import TrainConfig

    runs = tmp_path / "runs"
    for (scheme, sparsity, seed), acc in accuracies.items():
        config = TrainConfig(
            model="mlp", dataset="digits", density_scheme=scheme, density=round(1 - sparsity, 12), seed=seed, **extra
        )
        run_dir = runs / config.run_hash()
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(config.to_json())
        result = {"run_hash": config.run_hash(), "test_accuracy": acc, "density": 1 - sparsity + 0.001,
                  "seed": seed, "density_scheme": scheme, "model_kwargs": {"in_features": 64}}
        (run_dir / "result.json").write_text(json.dumps(result))
    (runs / "unfinished").mkdir()
    (runs / "unfinished" / "config.json").write_text("{}")
    return runs


ACC = {
    ("erk", 0.9, 0): 0.90, ("erk", 0.9, 1): 0.92, ("erk", 0.9, 2): 0.91,
    ("erk", 0.99, 0): 0.70, ("erk", 0.99, 1): 0.74, ("erk", 0.99, 2): 0.72,
    ("balanced", 0.9, 0): 0.93, ("balanced", 0.9, 1): 0.93, ("balanced", 0.9, 2): 0.92,
    ("balanced", 0.99, 0): 0.60, ("balanced", 0.99, 1): 0.66,
}


def test_load_runs_long_form(tmp_path: Path) -> None:
    df = load_runs(_fake_runs(tmp_path, ACC))
    assert len(df) == len(ACC)  # the unfinished directory is skipped
    assert {"model", "density_scheme", "sparsity", "seed", "test_accuracy"} <= set(df.columns)
    # result fields that clash with config fields are prefixed; the realised density gives final_sparsity
    assert "result_density" in df.columns and "result_seed" in df.columns
    row = df[(df.density_scheme == "erk") & (df.sparsity == 0.99) & (df.seed == 1)].iloc[0]
    assert row.test_accuracy == 0.74 and row.final_sparsity == pytest.approx(0.989)
    assert "model_kwargs" not in df.columns  # nested result fields stay out of the table
    with pytest.raises(ValueError, match="does not exist"):
        load_runs(tmp_path / "nope")


def test_aggregate_against_brute_force(tmp_path: Path) -> None:
    df = load_runs(_fake_runs(tmp_path, ACC))
    agg = aggregate(df, ["density_scheme", "sparsity"])
    assert len(agg) == 4
    for (scheme, sparsity), group in df.groupby(["density_scheme", "sparsity"]):
        values = [v for (s, p, _), v in ACC.items() if s == scheme and p == sparsity]
        rec = agg[(agg.density_scheme == scheme) & (agg.sparsity == sparsity)].iloc[0]
        assert rec["n"] == len(values) == len(group)
        assert rec["mean"] == pytest.approx(sum(values) / len(values))
        assert rec["ci95"] == pytest.approx(ci95_halfwidth(values))
    with pytest.raises(ValueError, match="no column 'bogus'"):
        aggregate(df, ["density_scheme"], "bogus")


def test_table_marks_the_best_cell_of_each_column(tmp_path: Path) -> None:
    df = load_runs(_fake_runs(tmp_path, ACC))
    table = make_table(df, "ratios")
    assert table.row_keys == ("density_scheme", "protocol")  # method/flow_repair are constant: not row keys
    assert table.col_labels == ((0.9,), (0.99,))
    assert table.row_labels == (("balanced", "exact"), ("erk", "exact"))
    # best by mean: balanced at 0.9 (0.9267 > 0.91), erk at 0.99 (0.72 > 0.63)
    assert table.best == ((True, False), (False, True))
    erk_99 = table.cells[1][1]
    half = 100 * ci95_halfwidth([0.70, 0.74, 0.72])
    assert erk_99 == f"72.00 ± {half:.2f}"
    assert table.n_range == (2, 3)

    md = render(table, "md")
    assert md.count("**") == 2 * 2 + 2  # two bold cells, plus the bold caption
    assert "| balanced | exact | **92.67 ± " in md
    tex = render(table, "latex")
    results_tabular = tex.split(r"\end{tabular}")[0]
    assert r"\textbf{72.00 $\pm$" in tex and r"density\_scheme" in tex and results_tabular.count(r"\\") == 3
    csv = pd.read_csv(io.StringIO(render(table, "csv")))
    assert list(csv.columns) == ["density_scheme", "protocol", "sparsity=0.9", "sparsity=0.99"]
    assert csv.iloc[0, 2].endswith(" *") and not csv.iloc[1, 2].endswith("*")
    with pytest.raises(ValueError, match="unknown format"):
        render(table, "html")
    with pytest.raises(ValueError, match="unknown table 'nope'; valid: .*ratios"):
        make_table(df, "nope")


def test_fields_a_layout_does_not_place_are_never_averaged(tmp_path: Path) -> None:
    acc = {("erk", 0.9, s): 0.5 for s in range(2)}
    runs = _fake_runs(tmp_path, acc)
    wide = _fake_runs(tmp_path / "w", {("erk", 0.9, s): 0.9 for s in range(2)}, width=2.0)
    for d in wide.iterdir():
        if d.name != "unfinished":
            d.rename(runs / d.name)
    table = make_table(load_runs(runs), "ratios")
    assert table.row_keys == ("width", "protocol")
    assert table.cells == (("50.00 ± 0.00",), ("90.00 ± 0.00",))


def test_stage_rows_expand_imp_cycles() -> None:
    row = {"density": 0.5, "sparsity": 0.5, "test_accuracy": 0.8}
    result = {"cycles": [{"density": 0.5, "test_accuracy": 0.9}, {"density": 0.4, "test_accuracy": 0.85}]}
    rows = stage_rows(row, result)
    assert [(r["stage"], r["final_sparsity"], r["test_accuracy"]) for r in rows] == [(0, 0.5, 0.9), (1, 0.6, 0.85)]
    assert stage_rows(row, {"cycles": []}) == [row]
    # an ER start that realised density 0.5008 instead of 0.5: cycles at 0.8^k of it get the nominal columns
    seed_a = stage_rows(row, {"start_density": 0.5008, "cycles": [{"density": 0.5008 * 0.8**k, "test_accuracy": 0.5}
                                                                  for k in range(4)]})
    assert [r["final_sparsity"] for r in seed_a] == [0.5, 0.6, 0.68, 0.744]  # 1 - 0.5 * 0.8^k, by hand
    assert seed_a[1]["result_density"] == pytest.approx(0.40064)


def test_long_form_files_round_trip(tmp_path: Path) -> None:
    df = load_runs(_fake_runs(tmp_path, ACC))
    parquet, csv = save_long_form(df, tmp_path / "out")
    back = pd.read_parquet(parquet)
    assert len(back) == len(df) and set(back.columns) == set(df.columns)
    assert sorted(back.test_accuracy) == sorted(ACC.values())
    assert len(pd.read_csv(csv)) == len(df)
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = _fake_runs(tmp_path, ACC)
    assert main(["report", str(runs), "--table", "ratios", "--format", "latex"]) == 0
    assert r"\begin{tabular}" in capsys.readouterr().out
    assert (runs / "results.parquet").is_file() and (runs / "results.csv").is_file()
    assert main(["report", str(runs), "--json", "--no-save"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == len(ACC) and len(out["cells"]) == 4
    cell = next(c for c in out["cells"] if c["density_scheme"] == "erk" and c["sparsity"] == 0.99)
    assert cell["n"] == 3 and cell["mean"] == pytest.approx(0.72)
    assert main(["report", str(runs), "--table", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown table 'nope'" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    assert "no finished runs" in capsys.readouterr().err


def test_accuracy_vs_sparsity_figure(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "accuracy_vs_sparsity", Path(__file__).resolve().parents[1] / "figures" / "accuracy_vs_sparsity.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runs = _fake_runs(tmp_path, ACC)
    assert module.main(["--runs", str(runs), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "accuracy_vs_sparsity.png").stat().st_size > 10_000
    plotted = pd.read_csv(tmp_path / "fig" / "accuracy_vs_sparsity.csv")
    assert len(plotted) == 4  # one point per scheme and sparsity
    erk = plotted[(plotted.density_scheme == "erk") & (plotted.sparsity == 0.99)].iloc[0]
    assert erk["mean"] == pytest.approx(0.72) and erk["ci95"] == pytest.approx(ci95_halfwidth([0.70, 0.74, 0.72]))


def _density_runs(tmp_path: Path) -> Path:
    """Runs whose realised densities are set by hand: 0.4% / 0.3% off (kept), 0.6% off (marked), start density
    recorded by a method whose density falls while training, and a run that recorded no density."""
    from ertrain.config import TrainConfig

    realised: dict[tuple[str, float, int], dict[str, float]] = {
        ("erk", 0.9, 0): {"density": 0.1 * 1.004},
        ("erk", 0.9, 1): {"density": 0.1 * 0.997},
        ("balanced", 0.9, 0): {"density": 0.1 * 1.006},
        ("balanced", 0.9, 1): {"density": 0.1},
        ("erk", 0.99, 0): {"start_density": 0.01 * 1.001, "density": 0.002},
        ("balanced", 0.99, 0): {},
    }
    runs = tmp_path / "runs"
    for (scheme, sparsity, seed), extra in realised.items():
        config = TrainConfig(model="mlp", dataset="digits", density_scheme=scheme, density=round(1 - sparsity, 12),
                             seed=seed)
        run_dir = runs / config.run_hash()
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(config.to_json())
        result = {"run_hash": config.run_hash(), "test_accuracy": 0.5 + seed / 10, **extra}
        (run_dir / "result.json").write_text(json.dumps(result))
    return runs


def test_requested_and_realised_density_per_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ertrain.report import density_check, marked_cells

    df = load_runs(_density_runs(tmp_path))
    check = density_check(df, ["density_scheme", "sparsity"]).set_index(["density_scheme", "sparsity"])
    # by hand: means, ranges and the largest |realised - requested| / requested over the seeds
    erk = check.loc[("erk", 0.9)]
    assert (erk.requested, erk.realised, erk.realised_min, erk.realised_max, erk.n) == pytest.approx(
        (0.1, 0.10005, 0.0997, 0.1004, 2)
    )
    assert erk.rel_diff == pytest.approx(0.004) and not erk.flagged
    balanced = check.loc[("balanced", 0.9)]
    assert balanced.realised == pytest.approx(0.1003) and balanced.rel_diff == pytest.approx(0.006) and balanced.flagged
    start = check.loc[("erk", 0.99)]  # the start density is compared, not the final one
    assert start.realised == pytest.approx(0.01001) and start.rel_diff == pytest.approx(0.001) and not start.flagged
    missing = check.loc[("balanced", 0.99)]
    assert math.isnan(missing.realised) and missing.n == 0 and not missing.flagged

    table = make_table(df, "ratios")
    assert table.row_labels == (("balanced", "exact"), ("erk", "exact")) and table.col_labels == ((0.9,), (0.99,))
    marks = [[cell.endswith(" †") for cell in row] for row in marked_cells(table)]
    assert marks == [[True, False], [False, False]]
    md = render(table, "md")
    assert "| balanced | exact | 0.9 | 0.1 | 0.1003 | 0.1 – 0.1006 | 0.60% | † |" in md
    assert "| erk | exact | 0.9 | 0.1 | 0.10005 | 0.0997 – 0.1004 | 0.40% |  |" in md
    assert "| balanced | exact | 0.99 | 0.01 | n/a |" in md
    assert md.count("†") == 1 + 1 + 1  # the cell, the density row, the caption's legend
    assert r"$\dagger$" in render(table, "latex")

    assert main(["report", str(tmp_path / "runs"), "--table", "ratios", "--json", "--no-save"]) == 0
    out = json.loads(capsys.readouterr().out)
    flagged = [(r["density_scheme"], r["sparsity"]) for r in out["density_check"] if r["flagged"]]
    assert flagged == [("balanced", 0.9)]


def test_runs_that_differ_in_an_unplaced_field_are_never_pooled() -> None:
    """Two runs in one cell must agree on every resolved field but the seed and execution-only ones."""
    from ertrain.report import check_pooling

    df = pd.DataFrame([
        {"model": "mlp", "protocol": "paper-code", "batch_size": 128, "seed": 0, "device": "cpu", "sparsity": 0.9},
        {"model": "mlp", "protocol": "paper-code", "batch_size": 256, "seed": 1, "device": "cuda", "sparsity": 0.9},
    ])
    with pytest.raises(ValueError, match=r"different batch_size \(128, 256\) would share the cell "
                                         r"model=mlp, protocol=paper-code, sparsity=0.9"):
        check_pooling(df, ["model", "protocol", "sparsity"])
    check_pooling(df, ["model", "batch_size", "sparsity"])  # batch size placed: seeds and devices pool
    table = make_table(df.assign(test_accuracy=[0.5, 0.6]), "ratios")  # the table splits what differs
    assert "batch_size" in table.row_keys and "protocol" in table.row_keys


@pytest.mark.parametrize(("config", "result", "message"), [
    ({"weird": 1}, {"test_accuracy": 0.5}, r"x/config.json: not the config of a run: .*unknown \['weird'\]"),
    ({"model": 3, "dataset": "digits"}, {"test_accuracy": 0.5}, "x/config.json: not the config of a run: model must"),
    ({"model": "mlp", "dataset": "digits"}, {"test_accuracy": "high"}, "run x: test_accuracy is 'high', not a num"),
])
def test_a_foreign_folder_that_looks_finished_is_refused_with_one_line(
    config: dict[str, object], result: dict[str, object], message: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runs = _fake_runs(tmp_path, {("erk", 0.9, 0): 0.9, ("erk", 0.9, 1): 0.8})
    (runs / "x").mkdir()
    (runs / "x" / "config.json").write_text(json.dumps(config))
    (runs / "x" / "result.json").write_text(json.dumps({**result, "run_hash": "x"}))
    assert main(["report", str(runs), "--no-save"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(message, err), err
