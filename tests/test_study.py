"""The study package: statistics and verdict rules on synthetic numbers, convergence, arms, the runner's
planning (flow-repair twins, STR calibration, ER-IMP dependencies), and the quick variant end to end."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from studies.reproduction.arms import Arm, build_arms, equal_nnz_width, masked_weights, next_decay, setting, str_arms
from studies.reproduction.claims import NOT_A_TEST, judge, plans1, plans3, plans5, verdicts
from studies.reproduction.convergence import Criterion
from studies.reproduction.design import DESIGN_DIR, load_design, make_config
from studies.reproduction.stats import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    Cell,
    Comparison,
    Difference,
    ci95_halfwidth,
    combine,
    difference,
    holm,
    min_detectable,
    one_sided_p,
    welch,
)
from studies.reproduction.table import Entry, Table

# ---------------------------------------------------------------------------------------------- statistics


def test_ci95_is_the_student_t_half_width() -> None:
    # s = 2, n = 3: t_{0.975, 2} = 4.302652729911275 (tables)
    assert ci95_halfwidth([70.0, 72.0, 74.0]) == pytest.approx(4.302652729911275 * 2.0 / math.sqrt(3.0))
    assert math.isnan(ci95_halfwidth([1.0]))
    assert Cell((70.0, 72.0, 74.0)).text() == "72.00 ± 4.97"
    assert Cell((70.0,)).text() == "70.00" and Cell(()).text() == ""


def test_difference_matches_scipys_welch_interval() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = rng.normal(80, 2, 3), rng.normal(78, 5, 4)
        diff = difference(Cell(tuple(a)), Cell(tuple(b)))
        ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
        assert (diff.d, diff.lo, diff.hi) == pytest.approx((a.mean() - b.mean(), ci.low, ci.high))
    one = difference(Cell((1.0,)), Cell((1.0, 2.0)))
    assert math.isinf(one.lo) and math.isinf(one.hi)


@pytest.mark.parametrize(("lo", "hi", "direction", "threshold", "expected"), [
    (-0.5, 2.0, "above", -1.0, HOLDS),        # whole interval above -1
    (-3.0, -1.5, "above", -1.0, FAILS),       # whole interval below -1
    (-2.0, 0.5, "above", -1.0, INCONCLUSIVE),  # straddles -1
    (0.0, 0.0, "above", 0.0, FAILS),          # identical runs show no gain
    (-9.0, -2.0, "below", -1.0, HOLDS),
    (-0.5, 3.0, "below", -1.0, FAILS),
    (-3.0, 0.0, "below", -1.0, INCONCLUSIVE),
])
def test_test_decides_from_the_interval(lo: float, hi: float, direction: str, threshold: float, expected: str) -> None:
    assert Comparison("t", direction, threshold).decide(Difference((lo + hi) / 2, lo, hi)) == expected


def test_combine_follows_the_rule() -> None:
    assert combine([HOLDS, HOLDS]) == "holds"
    assert combine([FAILS, INCONCLUSIVE]) == "does not hold"
    assert combine([INCONCLUSIVE, INCONCLUSIVE]) == "inconclusive (intervals overlap)"
    assert combine([HOLDS, FAILS]) == "partly holds"
    assert combine([HOLDS, INCONCLUSIVE]) == "partly holds"
    assert combine([]) == "inconclusive (intervals overlap)"
    with pytest.raises(ValueError, match="'maybe'"):
        combine(["maybe"])


# ---------------------------------------------------------------------------------------------- verdicts


def fake_table(claim: int, cells: dict[tuple[tuple[str, Any], ...], tuple[float, ...]],
               density: float = 0.1, extra: dict[str, float] | None = None,
               status: dict[tuple[tuple[str, Any], ...], str] | None = None) -> Table:
    entries = {(claim, s): Entry(Cell(v), density, (), (status or {}).get(s, "converged"), 0.0, extra=dict(extra or {}))
               for s, v in cells.items()}
    return Table(entries, {}, ())


def claim3_cells(er: tuple[float, ...], null: tuple[float, ...] = (80.0, 80.5, 79.5)) -> dict[Any, tuple[float, ...]]:
    cells = {setting(method="static", start="balanced ER 0.9"): null}
    for method in ("imp", "rigl", "str"):
        cells[setting(method=method, start="dense")] = (90.0, 90.1, 89.9)
        cells[setting(method=method, start="balanced ER 0.5")] = er
    return cells


def test_one_sided_p_matches_scipys_welch_test() -> None:
    a, b = Cell((90.1, 90.5, 89.8, 90.0)), Cell((89.0, 89.7, 89.2))
    for alternative, direction in (("greater", "above"), ("less", "below")):
        expected = stats.ttest_ind(a.values, b.values, equal_var=False, alternative=alternative).pvalue
        assert one_sided_p(welch(a, b), direction, 0.0) == pytest.approx(expected, rel=1e-12)
    shifted = stats.ttest_ind(np.add(a.values, 1.0), b.values, equal_var=False, alternative="greater").pvalue
    assert one_sided_p(welch(a, b), "above", -1.0) == pytest.approx(shifted, rel=1e-12)  # threshold -1 = shift A up


def test_holm_by_hand_and_by_its_definition() -> None:
    # sorted 0.01, 0.03, 0.04, 0.2 (k = 4): 0.04, max(0.04, 0.09), max(0.09, 0.08), max(0.09, 0.2)
    assert holm([0.01, 0.04, 0.03, math.nan, 0.2]) == pytest.approx([0.04, 0.09, 0.09, math.nan, 0.2], nan_ok=True)
    rng = np.random.default_rng(0)
    for _ in range(50):  # rejecting at adjusted <= a is Holm's step-down procedure at level a
        p = list(rng.uniform(0, 0.1, 6))
        order = np.argsort(p)
        reject, k = set(), len(p)
        for rank, i in enumerate(order):
            if p[i] > 0.05 / (k - rank):
                break
            reject.add(int(i))
        assert {i for i, q in enumerate(holm(p)) if q <= 0.05} == reject


def test_min_detectable_effect_has_the_stated_power_by_simulation() -> None:
    rng = np.random.default_rng(1)
    a, b = Cell(tuple(rng.normal(0, 1.0, 50))), Cell(tuple(rng.normal(0, 1.0, 50)))
    w = welch(a, b)
    shift = min_detectable(w, 0.01, 0.8)
    hits = 0
    for _ in range(2000):
        x, y = rng.normal(shift, math.sqrt(a.var), 50), rng.normal(0, math.sqrt(b.var), 50)
        hits += stats.ttest_ind(x, y, equal_var=False, alternative="greater").pvalue <= 0.01
    assert hits / 2000 == pytest.approx(0.8, abs=0.04)
    assert min_detectable(welch(Cell((1.0,)), b), 0.05) == math.inf


def test_claim3_does_not_hold_when_every_er_start_is_clearly_worse() -> None:
    design = load_design("quick")  # one ER start (balanced 0.5), margin 1
    checks = judge(plans3(design, fake_table(3, claim3_cells((80.0, 80.5, 79.5)))))
    assert [c.outcome for c in checks] == [FAILS] * 3
    assert verdicts(design, fake_table(3, claim3_cells((80.0, 80.5, 79.5))), (3,))[3][0] == "does not hold"


def test_claim3_holds_and_its_null_arm_decides_power() -> None:
    design = load_design("quick")
    good = claim3_cells((90.0, 90.1, 89.9))
    assert [c.outcome for c in judge(plans3(design, fake_table(3, good)))] == [HOLDS] * 3
    powerless = claim3_cells((90.0, 90.1, 89.9), null=(90.0, 90.1, 89.9))  # no method at all passes too
    checks = judge(plans3(design, fake_table(3, powerless)))
    assert all(c.outcome == INCONCLUSIVE and "powerless" in c.note for c in checks)


def test_claim3_is_inconclusive_when_the_intervals_straddle_the_margin() -> None:
    design = load_design("quick")
    cells = claim3_cells((89.0, 84.0, 94.0))
    for method in ("imp", "rigl", "str"):
        cells[setting(method=method, start="dense")] = (90.0, 85.0, 95.0)
    assert verdicts(design, fake_table(3, cells), (3,))[3][0] == "inconclusive (intervals overlap)"


def test_claim3_not_converged_arm_is_inconclusive() -> None:
    design = load_design("quick")
    cells = claim3_cells((90.0, 90.1, 89.9))
    stuck = {setting(method="imp", start="dense"): "not converged"}
    checks = judge(plans3(design, fake_table(3, cells, status=stuck)))
    assert checks[0].outcome == INCONCLUSIVE and "not converged" in checks[0].note
    assert [c.outcome for c in checks[1:]] == [HOLDS] * 2


def test_identical_networks_and_out_of_scope_comparisons_are_not_tests() -> None:
    """Balanced and ERK at MLP sparsity 0.5 give the same per-layer densities: one network, not a test."""
    design = load_design("cpu")
    index: dict[str, Any] = {}
    arms = build_arms(design, index, (1,))
    cells = {}
    for arm in arms:
        cells.setdefault(arm.setting, (88.0, 88.5, 89.0))
    configs = {a.setting: a.config for a in arms}
    entries = {(1, s): Entry(Cell(v), 0.1, (), "converged", 0.0, config=configs[s]) for s, v in cells.items()}
    checks = judge(plans1(design, Table(entries, {}, ())))
    same = [c for c in checks if "one network" in c.note]
    assert {(c.a, c.b) for c in same} == {("mlp balanced + repair 0.5", "mlp erk + repair 0.5")}
    assert all(c.outcome == NOT_A_TEST for c in same)
    scoped = [c for c in checks if "outside" in c.note]
    assert scoped and all(c.outcome == NOT_A_TEST for c in scoped)


def test_claim5_dead_dense_start_is_not_a_test() -> None:
    design = load_design("quick")
    cells, status = {}, {}
    for task in design.claim(5)["tasks"]:
        cells[setting(task=task["dataset"], start="dense")] = (30.0, 30.0, 30.0)
        status[setting(task=task["dataset"], start="dense")] = "dead"
        cells[setting(task=task["dataset"], start=f"uniform ER {float(task['start_sparsity']):g}")] = (30.0, 30.0, 30.0)
    checks = judge(plans5(design, fake_table(5, cells, status=status)))
    assert all(c.outcome == NOT_A_TEST and "did not learn" in c.note for c in checks)


# ---------------------------------------------------------------------------------------------- convergence


def records(acc: list[float], fit: int = 0) -> list[dict[str, Any]]:
    return [{"epoch": i, "fit": fit, "val_accuracy": a / 100.0} for i, a in enumerate(acc)]


def test_convergence_criterion_by_hand() -> None:
    c = Criterion(window=0.25, tolerance=0.5)
    assert c.last_epochs(15) == 4 and c.last_epochs(4) == 3
    # last 4 epochs of the seed mean: 88.6, 88.8, 89.0, 89.2 -> slope 0.2 per epoch, projected gain 0.8 > 0.5
    seed_a = [80, 85, 87, 88, 88.5, 88.8, 88.6, 88.7, 88.4, 88.9, 88.7, 88.5, 88.7, 88.9, 89.1]
    seed_b = [80, 85, 87, 88, 88.5, 88.8, 88.6, 88.7, 88.4, 88.9, 88.7, 88.7, 88.9, 89.1, 89.3]
    rising = c.check([records(seed_a), records(seed_b)])
    assert rising["status"] == "not converged" and rising["gain"] == pytest.approx(0.8)
    # a single late peak of one seed does not flip the setting: slope of (88.8, 88.8, 88.8, 89.1) is 0.09
    flat = c.check([records([88.8] * 11 + [88.8, 88.8, 88.8, 89.4]), records([88.8] * 15)])
    assert flat["status"] == "converged" and flat["gain"] == pytest.approx(4 * 0.09)
    # only the final fit counts (IMP cycles): the earlier fit's low values are ignored
    cycles = records([10, 20, 30, 40], fit=0) + records([70, 71, 71, 71, 71], fit=1)
    assert c.check([cycles])["gain"] == pytest.approx(0.0)
    assert c.check([[{"epoch": 0, "test_accuracy": 0.5}]])["status"] == "unchecked"
    assert c.check([records([50, 60, 70])])["status"] == "unchecked"
    with pytest.raises(ValueError, match="window"):
        Criterion(window=1.5)


def test_dead_runs_are_a_fifth_of_the_way_from_chance() -> None:
    from studies.reproduction.convergence import is_dead

    assert is_dead(0.28, 0.1) and not is_dead(0.2801, 0.1)  # 10 classes: 0.1 + 0.9 / 5
    assert is_dead(0.6, 0.5) and not is_dead(0.61, 0.5)
    assert not is_dead(0.0, None)


# ---------------------------------------------------------------------------------------------- arms


def test_every_design_builds_valid_arms() -> None:
    designs = sorted(DESIGN_DIR.glob("*.toml"))
    assert {p.stem for p in designs} >= {"quick", "cpu", "full"}
    for path in designs:
        design = load_design(path)
        claims = (1, 2, 3, 4, 5)
        if design.base.get("dataset") == "cifar10":  # claim 2 reads the data's shape: skip it without CIFAR-10
            try:
                build_arms(design, {}, (2,))
            except ValueError as exc:
                assert "cannot find" in str(exc)
                claims = (1, 3, 4, 5)
        arms = build_arms(design, {}, claims)
        assert {a.claim for a in arms} == set(claims)
        for arm in arms:
            config = arm.config or arm.waits_for
            assert config is not None and config.seed in design.seeds
        waiting = [a for a in arms if a.config is None]
        assert {a.claim for a in waiting} == {3, 4}  # STR calibration, ER-IMP


def test_design_rejects_unknown_keys_and_single_seeds(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nseeds = [0]\n[models.mlp]\nrecipe = "digits-mlp"\n')
    with pytest.raises(ValueError, match="at least two distinct seeds"):
        load_design(path)
    path.write_text('name = "bad"\nseeds = [0, 1]\nepochs = 3\n[models.mlp]\nrecipe = "digits-mlp"\n')
    with pytest.raises(ValueError, match=r"unknown keys \['epochs'\]"):
        load_design(path)
    with pytest.raises(ValueError, match="unknown study variant 'nosuch'"):
        load_design("nosuch")


def test_make_config_layers_recipe_fields_and_sparsity() -> None:
    config = make_config({"recipe": "digits-mlp", "model": "mlp", "dataset": "digits", "epochs": 3,
                          "density_scheme": "erk", "sparsity": 0.9})
    assert (config.epochs, config.lr, config.batch_size, config.density) == (3, 0.1, 64, pytest.approx(0.1))


def test_equal_nnz_width_by_brute_force() -> None:
    design = load_design("quick")
    fields = dict(design.claim(2)["fields"])
    assert fields == {"model_options": {"hidden": [16, 16]}}
    for width in (1.0, 2.0):
        target = 0.1 * masked_weights(design, "mlp", fields, width)
        # brute force over every hidden size 1..64 (widths k/16)
        best = min(range(1, 65), key=lambda k: abs(masked_weights(design, "mlp", fields, k / 16) - target))
        assert equal_nnz_width(design, "mlp", fields, width, 0.1) == pytest.approx(best / 16)


def test_str_calibration_probes_bracket_then_bisect() -> None:
    design = load_design("quick")
    c = dict(design.claim(3), str={"s_init": -4.0, "s_weight_decay": 0.01, "factor": 4.0, "probes": 4,
                                   "tolerance": 0.01})
    start = {"density_scheme": "dense"}
    final_of = {0.01: 0.5, 0.04: 0.05}  # too dense at 0.01, too sparse at 0.04 -> next probe sqrt(0.01 * 0.04) = 0.02
    index: dict[str, Any] = {}
    seen = []
    for _ in range(3):
        arms = str_arms(design, c, start, 0.1, index)
        waiting = [a for a in arms if a.config is None]
        if not waiting:
            break
        probe = waiting[0].waits_for
        assert probe is not None and probe.seed == design.seeds[0]
        decay = probe.method_options["s_weight_decay"]
        seen.append(decay)
        index[probe.run_hash()] = {"density": final_of.get(decay, 0.105)}
    assert seen == pytest.approx([0.01, 0.04, 0.02])
    arms = str_arms(design, c, start, 0.1, index)
    final = [a for a in arms if a.role == "arm"]
    assert [a.config.method_options["s_weight_decay"] for a in final if a.config] == pytest.approx([0.02] * 2)
    assert len([a for a in arms if a.role == "calibration"]) == 2
    assert next_decay(0.01, math.inf, 4.0) == pytest.approx(0.04) and next_decay(0.0, 0.01, 4.0) == 0.0025


def test_er_imp_waits_for_the_imp_run_then_takes_its_ratios() -> None:
    design = load_design("quick")
    arms = build_arms(design, {}, (4,))
    waiting = [a for a in arms if a.config is None]
    assert waiting and all(a.waits_for is not None and a.waits_for.method == "imp" for a in waiting)
    imp = {"layer_densities": {"classifier": 0.9, "hidden.0": 0.5, "hidden.1": 0.2},
           "layer_order": ["hidden.0", "hidden.1", "classifier"]}  # as IMP's result.json holds them
    index = {a.waits_for.run_hash(): imp for a in waiting if a.waits_for}
    ready = [a for a in build_arms(design, index, (4,)) if dict(a.setting)["mask"] == "ER imp"]
    assert all(a.config is not None and a.config.density_options["ratios"] == [0.5, 0.2, 0.9] for a in ready)


def test_flow_repair_twin_is_the_unrepaired_run_when_no_edge_is_added() -> None:
    from ertrain.masks import Masking
    from ertrain.models import build_model
    from studies.reproduction.runner import plan, repair_edges

    design = load_design("quick")
    dense_enough = design.config("mlp", density_scheme="uniform", sparsity=0.5, flow_repair="random_add")
    sparse = design.config("mlp", density_scheme="pyramidal", sparsity=0.99, flow_repair="random_add")
    assert repair_edges(dense_enough) == 0 and repair_edges(sparse) > 0
    work = plan([Arm(1, (), 0, dense_enough), Arm(1, (), 0, sparse)], {})
    twin = dense_enough.replace(flow_repair=None)
    assert work[twin.run_hash()] == [twin, dense_enough] and work[sparse.run_hash()] == [sparse]
    # the twin's mask is the repaired config's mask: random addition draws nothing when no neuron is cut off
    import torch

    masks = []
    for repair in (None, "random_add"):
        net = build_model("mlp", num_classes=10, in_features=64)
        m = Masking.from_scheme(net, "uniform", 0.5, torch.Generator().manual_seed(0), flow_repair=repair)
        masks.append(m.masks)
    assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])


# ---------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_quick_variant_runs_end_to_end(tmp_path: Path) -> None:
    """The quick variant trains, writes one file per run, skips them on a second call, and documents itself."""
    from studies import reproduction as study

    results, runs = tmp_path / "results", tmp_path / "runs"
    summary = study.run("quick", results=results, runs_dir=runs, jobs=2, log=lambda _: None)
    assert summary.trained > 0 and summary.runs == len(list(results.glob("*.json")))
    again = study.run("quick", results=results, runs_dir=runs, jobs=2, log=lambda _: None)
    assert again.trained == 0
    data = study.load("quick", results)
    assert set(data.verdicts) == {1, 2, 3, 4, 5}
    text = study.build_document("quick", results=results)
    for k in range(1, 6):
        assert f"## Claim {k}:" in text and f"claim{k}.png" in text
    assert "**Verdict: " in text and "## Convergence" in text
    checked = data.table.checks
    assert len(checked) >= summary.runs - len(data.table.probes)
    assert "## What changed and why" in text and "Holm" in text


def test_collapse_is_tested_against_the_dead_level_of_the_task() -> None:
    """'Collapses entirely' holds for an arm at chance and fails for one far above the dead level (28% here)."""
    from studies.reproduction.claims import plans4

    design = load_design("cpu")
    for snip, expected in (((10.0, 10.5, 9.5), HOLDS), ((81.0, 81.5, 80.5), FAILS)):
        cells = {setting(mask=k, sparsity=s): (85.0, 85.5, 84.5) for s in (0.9, 0.99)
                 for k in ("ER balanced", "ER pyramidal", "ER synflow", "ER imp")}
        cells[setting(mask="ER snip", sparsity=0.99)] = snip
        checks = judge(plans4(design, fake_table(4, cells, extra={"chance": 0.1})))
        collapse = [c for c in checks if "collapses entirely" in c.statement]
        assert len(collapse) == 1 and collapse[0].outcome == expected
        assert collapse[0].b.startswith("collapse level 28.00%")
