"""Tests of ertrain.protocol: exact changes nothing; paper-code's values reproduce the paper's code, computed here."""

from __future__ import annotations

import dataclasses
import math
import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from torch import nn

import ertrain.protocol as protocol_module
from ertrain.data import DATASETS
from ertrain.density import DENSITY_SCHEMES, plan_densities
from ertrain.models import MODELS, build_model, layer_weight, maskable_layers
from ertrain.protocol import KEYS, METHOD_KEYS, PROTOCOLS, code_path, protocol_values, resolve_protocol
from ertrain.schedules import LR_SCHEDULES, edgepopup_lr, lr_at, prune_rate

ROOT = Path(__file__).resolve().parents[1]
SCHEMES = ["uniform", "erk", "balanced", "pyramidal", None]
METHODS = sorted(protocol_module.METHOD_PATHS)  # every method of ertrain.methods


@cache
def builds(model: str, options: tuple[tuple[str, object], ...]) -> bool:
    build_model(model, num_classes=10, width=0.125, **dict(options))  # type: ignore[arg-type]
    return True


def paper_code(model: str, dataset: str, method: str, scheme: str | None = None) -> dict:
    return resolve_protocol("paper-code", model=model, dataset=dataset, method=method, density_scheme=scheme)


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("method", METHODS)
def test_exact_changes_nothing(model: str, method: str) -> None:
    for dataset in sorted(DATASETS):
        for scheme in SCHEMES:
            assert protocol_values("exact", model=model, dataset=dataset, method=method, density_scheme=scheme) == {}
    assert resolve_protocol("exact", model=model, dataset="cifar10", method=method, explicit={"lr": 0.05}) == {
        "lr": 0.05
    }


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("method", METHODS)
def test_paper_code_values_are_valid_options(model: str, method: str) -> None:
    """Every value is a known key and a valid option of the schedule, density scheme, model and method keys."""
    known = {k.name for k in KEYS}
    for dataset in ("cifar10", "cifar100", "tiny-imagenet", "tabular"):
        for scheme in SCHEMES:
            values = paper_code(model, dataset, method, scheme)
            assert set(values) <= known
            if "schedule" in values:
                entry = LR_SCHEDULES.entry(values["schedule"])
                entry.make_options(values.get("schedule_options", {}))
            if "density_options" in values:
                assert scheme is not None
                DENSITY_SCHEMES.entry(scheme).make_options(values["density_options"])
            if "method_options" in values:
                assert set(values["method_options"]) <= set(METHOD_KEYS[method])
            if "model_options" in values:
                builds(model, tuple(sorted(values["model_options"].items())))
            if "select" in values:
                assert values["select"] in protocol_module.SELECT_CHOICES


def test_unknown_protocol_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'nosuch'; valid names: exact, paper-code"):
        resolve_protocol("nosuch", model="vgg16", dataset="cifar10", method="static")
    assert {"exact", "paper-code"} <= set(PROTOCOLS)
    assert protocol_module.DEFAULT_PROTOCOL == "exact"


def test_explicit_values_win_and_dicts_merge() -> None:
    explicit = {
        "nesterov": False,
        "batch_size": 128,
        "density_options": {"redistribute": True},
        "model_options": {"width_note": 1},
        "method_options": {"update_every": 100},
        "flow_repair": None,
    }
    got = resolve_protocol(
        "paper-code", model="vgg16", dataset="cifar10", method="rigl", density_scheme="balanced", explicit=explicit
    )
    assert got["nesterov"] is False and got["batch_size"] == 128 and got["flow_repair"] is None
    assert got["density_options"] == {"redistribute": True}
    assert got["model_options"] == {"variant": "paper-code", "width_note": 1}
    assert got["method_options"]["update_every"] == 100 and got["method_options"]["prune_fraction"] == 0.5
    assert got["schedule"] == "multistep"  # untouched keys keep the protocol's value
    assert "protocol_only_key" not in got


# ---------------------------------------------------------------------------------------------- ER_DST path


def test_er_dst_vgg16_fixed_mask_is_the_codes_run() -> None:
    """ER_DST/main.py for VGG16/CIFAR-10: SGD Nesterov, batch 100, MultiStepLR at 80 and 120, flow repair on."""
    values = paper_code("vgg16", "cifar10", "static", "balanced")
    assert code_path("vgg16", "static") == "er_dst"
    assert values["nesterov"] is True and values["batch_size"] == 100 and values["weight_decay"] == 5e-4
    assert values["flow_repair"] == "paper-code" and values["val_fraction"] == 0.1
    assert values["select"] == "best_test" and values["select_from_epoch"] == 110
    # the learning rate at every epoch: the code's MultiStepLR(milestones=[int(160 / 2), int(160 * 3 / 4)])
    code = [0.1 * 0.1 ** sum(e >= m for m in (int(160 / 2), int(160 * 3 / 4))) for e in range(160)]
    got = [
        lr_at(e, values["schedule"], values["lr"], 160, values["warmup_epochs"], **values["schedule_options"])
        for e in range(values["epochs"])
    ]
    np.testing.assert_allclose(got, code, rtol=1e-12)
    # the model and its balanced densities: the code's VGG16 and ER_same_params_per_layer
    model = build_model("vgg16", num_classes=10, **values["model_options"])
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4
    shapes = [tuple(layer_weight(m).shape) for _, m in maskable_layers(model)]
    numels = [math.prod(s) for s in shapes]
    x = 0.1 * sum(numels) / len(numels)
    code_p = [x / n if x / n < 1 else 1 for n in numels]
    plan = plan_densities("balanced", shapes, 0.1, **values["density_options"])
    np.testing.assert_allclose(plan.layers, code_p, rtol=1e-12)
    assert plan.realised == pytest.approx(sum(p * n for p, n in zip(code_p, numels, strict=True)) / sum(numels))
    # CIFAR-100's loader ignores the validation split; ERK in ER_DST is the exact (iterative) one
    assert paper_code("vgg19", "cifar100", "static", "erk").get("val_fraction") == 0.0
    assert "density_options" not in paper_code("vgg19", "cifar100", "static", "erk")


def test_rigl_is_granet_with_cosine_prune_rate_and_gradual_pruning() -> None:
    values = paper_code("vgg16", "cifar10", "rigl", "erk")
    opts = values["method_options"]
    assert opts["update_every"] == 1000 and opts["stop_fraction"] == 1.0 and opts["gradual_end_epoch"] == 110
    total = 160 * 450  # 45,000 training images / batch 100
    # the code's CosineDecay(0.5, T_max=total, eta_min=0.005), at a few steps
    for t in (1, total // 3, total // 2, total):
        expected = 0.005 + 0.5 * (0.5 - 0.005) * (1 + math.cos(math.pi * t / total))
        assert prune_rate(t, total, opts["prune_fraction"], opts["prune_fraction_min"]) == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------- STR path


def test_str_is_warmup_then_cosine_to_001_without_nesterov() -> None:
    values = paper_code("resnet18", "cifar10", "str", "erk")
    assert code_path("resnet18", "str") == "str"
    assert values["nesterov"] is False and values["batch_size"] == 256 and values["warmup_epochs"] == 10
    assert "weight_decay" not in values  # set per target sparsity (the appendix's 5e-4 / 1e-3)
    assert values["method_options"] == {"s_init": -200.0, "s_weight_decay": -1.0}
    assert values["density_options"] == {"clamp_once": True}
    warm, epochs = values["warmup_epochs"], values["epochs"]
    code = [0.1 * (e + 1) / warm for e in range(warm)]
    code += [0.01 + 0.5 * (1 + np.cos(np.pi * e / epochs)) * (0.1 - 0.01) for e in range(epochs)]
    got = [lr_at(e, values["schedule"], values["lr"], epochs, warm, lr_min=values["lr_min"]) for e in range(170)]
    np.testing.assert_allclose(got, code, rtol=1e-12)


def test_imp_and_fixed_resnet_masks_follow_run_imp_and_the_readme() -> None:
    imp = paper_code("resnet18", "cifar10", "imp", "balanced")
    assert imp["method_options"]["final_retrain"] is True and imp["method_options"]["rewind"] == "iteration:0"
    assert imp["method_options"]["cycle_epochs"] == 150 and imp["warmup_epochs"] == 0
    assert imp["weight_decay"] == 1e-4 and imp["density_options"] == {"redistribute": False}
    static = paper_code("resnet50", "cifar100", "static", "erk")
    assert static["weight_decay"] == 1e-3 and static["density_options"] == {"clamp_once": True}
    assert static["flow_repair"] is None
    # STR/models/resnet18.py:126 (a bias-free 1x1 conv classifier) and the yaml's kaiming_normal fan_in init
    assert static["model_options"] == {"init": "fan_in", "classifier": "conv1x1"}


# ---------------------------------------------------------------------------------------------- ER_SLT path


def test_edgepopup_step_schedule_restarts_every_level() -> None:
    values = paper_code("resnet18", "cifar10", "edgepopup")
    assert values["augment"] is False and values["nesterov"] is False and values["batch_size"] == 128
    assert values["method_options"]["score_init"] == "paper-code" and values["method_options"]["levels"] == 5
    per_level = values["epochs"]
    code = [0.1 * (0.1 ** (epoch // 30)) for _level in range(5) for epoch in range(1, per_level + 1)]
    got = [
        lr_at(e % per_level, values["schedule"], values["lr"], per_level, **values["schedule_options"])
        for e in range(5 * per_level)
    ]
    np.testing.assert_allclose(got, code, rtol=1e-12)
    np.testing.assert_allclose([edgepopup_lr(e, 0.1, per_level) for e in range(5 * per_level)], code, rtol=1e-12)


# ---------------------------------------------------------------------------------------------- documentation


def test_every_key_is_documented() -> None:
    doc = protocol_module.__doc__ or ""
    text = (ROOT / "docs" / "protocol.md").read_text()
    for key in KEYS:
        assert f"``{key.name}``" in doc, key.name
        assert f"`{key.name}`" in text, key.name
    for method, names in METHOD_KEYS.items():
        assert method in METHODS
        for name in names:
            assert f"``{name}``" in doc, (method, name)
    assert [f.name for f in dataclasses.fields(protocol_module.ProtocolKey)] == ["name", "type", "help"]


def test_docs_cover_every_experiment() -> None:
    """docs/protocol.md has a row for every table (1-32) and Figures 3 and 7, each citing the paper's code."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    labels: set[str] = set()
    for row in rows:
        first = row.split("|")[1].strip()
        labels |= {f"T{n}" for n in re.findall(r"T(\d+)", first)} | {f"F{n}" for n in re.findall(r"F(\d+)", first)}
    assert {f"T{n}" for n in range(1, 33)} | {"F3", "F7"} <= labels
    assert len(re.findall(r"`(?:ER_DST|STR|ER_SLT)/[\w/.]+:\d+", text)) >= 30  # file:line citations



# ---------------------------------------------------------------------------------------------- second pass


def _print_config(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    import json

    from ertrain.cli import main

    assert main(["train", *argv, "--print-config"]) == 0
    out: dict = json.loads(capsys.readouterr().out)
    return out


def test_paper_code_resnet20_print_config_shows_the_codes_model_and_fp32(capsys: pytest.CaptureFixture[str]) -> None:
    """ER_DST/models/cifar_resnet.py:25 (1x1 conv + BN shortcuts = option B), initializers.py:16 (fan-in), fp32."""
    cfg = _print_config(capsys, "--model", "resnet20", "--dataset", "cifar10", "--protocol", "paper-code")
    assert cfg["model_options"] == {"shortcut": "B", "init": "fan_in"}
    assert cfg["amp"] is False and cfg["flow_repair"] is None  # dense: no ER mask to repair
    sparse = _print_config(capsys, "--model", "resnet20", "--dataset", "cifar10", "--protocol", "paper-code",
                           "--density-scheme", "erk", "--sparsity", "0.9")
    assert sparse["flow_repair"] == "paper-code" and sparse["sources"]["flow_repair"] == "protocol"
    assert cfg["data_options"] == {"normalise": "er_dst", "pad": "reflect"}
    exact = _print_config(capsys, "--model", "resnet20", "--dataset", "cifar10")
    assert exact["amp"] is True and exact["model_options"] == {} and exact["data_options"] == {}
    model = build_model("resnet20", num_classes=10, **cfg["model_options"])
    assert sum(p.numel() for p in model.parameters()) == 272_474


def test_paper_code_takes_epochs_0_and_flow_repair_none(capsys: pytest.CaptureFixture[str]) -> None:
    """Tables 6/7 are mask-only runs (select_from_epoch 110 is moot); Figure 3's arm without repair."""
    from ertrain.config import TrainConfig
    from ertrain.methods import get_method

    base = ("--model", "vgg16", "--dataset", "cifar10", "--protocol", "paper-code", "--density-scheme", "erk",
            "--sparsity", "0.9")
    masks_only = _print_config(capsys, *base, "--epochs", "0")
    assert masks_only["epochs"] == 0 and masks_only["select_from_epoch"] == 110
    config = {k: v for k, v in masks_only.items() if k not in ("run_hash", "sources")}
    get_method("static").from_config(TrainConfig.from_json(config))  # accepted: nothing to select from
    off = _print_config(capsys, *base, "--flow-repair", "none")
    assert off["flow_repair"] is None


def test_code_notes_name_the_reproduced_bugs_and_missing_paths() -> None:
    from ertrain.config import TrainConfig
    from ertrain.protocol_notes import note_lines, notes_record

    def build(**fields: object) -> TrainConfig:
        return TrainConfig.build({"model": "resnet20", "dataset": "cifar10", "protocol": "paper-code", **fields})

    assert notes_record(build(density_scheme="erk", density=0.1)) == {
        "code_bugs_reproduced": ["flow_repair_contiguous_copy"]}
    assert notes_record(build(density_scheme="erk", density=0.1, flow_repair="random_add")) == {}
    ep = build(method="edgepopup", dataset="cifar100", model="resnet18")
    assert notes_record(ep) == {"code_bugs_reproduced": ["edgepopup_row_index_subnet"],
                                "code_path_warnings": ["edgepopup_cifar10_only"]}
    lines = note_lines(ep)
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    assert "ER_SLT/resnet_new.py:44" in lines[0]
    assert notes_record(build(method="set", density_scheme="erk", density=0.1, flow_repair="none")) == {
        "code_path_warnings": ["set_grows_by_gradient"]}
    exact = TrainConfig.build({"model": "resnet20", "dataset": "cifar10", "method": "set",
                               "density_scheme": "erk", "density": 0.1})
    assert notes_record(exact) == {}


def test_str_resnet18_erk_density_with_the_codes_classifier() -> None:
    """STR-ERK (clamp once) at sparsity 0.9 with the 1x1-conv classifier: the code's 0.091592 (Linear: 0.091611)."""
    values = paper_code("resnet18", "cifar10", "static", "erk")
    for opts, want in ((values["model_options"], 0.091592), ({}, 0.091611)):
        model = build_model("resnet18", num_classes=10, **opts)
        shapes = [tuple(layer_weight(m).shape) for _, m in maskable_layers(model)]
        numels = np.array([math.prod(s) for s in shapes], dtype=np.float64)
        score = np.array([sum(s) for s in shapes]) / numels  # STR/main.py:95: sum of the shape over its size
        code_p = np.clip(0.1 * numels.sum() / np.dot(score, numels) * score, 0, 1)
        assert float(np.dot(code_p, numels) / numels.sum()) == pytest.approx(want, abs=5e-7)
        plan = plan_densities("erk", shapes, 0.1, **values["density_options"])
        np.testing.assert_allclose(plan.layers, code_p, rtol=1e-9)
        assert plan.realised == pytest.approx(want, abs=5e-7)


def test_audit_table_has_a_row_per_item_with_a_status() -> None:
    """docs/protocol.md: 23 items that match (D1-D23) and the 12 code items (C1-C12), each citing file:line."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 6 and re.fullmatch(r"[DC]\d+", cells[0]):
            rows[cells[0]] = cells
    assert set(rows) == {f"D{i}" for i in range(1, 24)} | {f"C{i}" for i in range(1, 13)}
    statuses = ("matches", "reproduces a code bug", "deliberately differs")
    for key, cells in rows.items():
        assert cells[5].startswith(statuses), key
        assert re.search(r"`(?:ER_DST|STR|ER_SLT|README)[\w/.-]*(?::\d+)?", cells[2]), key
    from ertrain.protocol_notes import CODE_NOTES

    for note in CODE_NOTES:  # every note a run can print is named in the table
        assert f"`{note.name}`" in text, note.name
    assert {k for k, c in rows.items() if c[5].startswith("reproduces a code bug")} == {"C1", "C3"}
