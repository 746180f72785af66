"""The protocol options in training: each checked against a value computed here from the paper code's formula.

Schedules (warm-up, step, multistep at fractional milestones, cosine to an absolute floor), Nesterov
against PyTorch's own SGD, the held-out validation split and the selected accuracy, sparsity-aware
initialisation, the realised overall density of the scheme, and the per-method options (DST's
prune-rate floor and GraNet's gradual pruning, IMP's rewinding and cycles, edge-popup's scores,
levels and schedule, STR's threshold under warm-up).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ertrain import optim
from ertrain.config import TrainConfig
from ertrain.data import DataBundle
from ertrain.evaluation import hold_out, select_epoch
from ertrain.methods import get_method
from ertrain.methods.edgepopup import EdgePopup
from ertrain.rundir import RunDir
from ertrain.runner import run, run_config
from ertrain.schedules import str_threshold_trajectory
from ertrain.trainer import Trainer

N_TRAIN, BATCH = 200, 32
SPE = math.ceil(N_TRAIN / BATCH)  # optimizer steps per epoch of the tiny runs


def tiny(**changes: Any) -> TrainConfig:
    base: dict[str, Any] = dict(
        model="mlp", dataset="teacher", data_options={"n_train": N_TRAIN, "n_test": 100},
        model_options={"hidden": [24]}, epochs=3, batch_size=BATCH, lr=0.05, density_scheme="balanced",
        density=0.3, device="cpu",
    )
    base.update(changes)
    return TrainConfig(**base)


def epoch_lrs(config: TrainConfig, epochs: int | None = None) -> list[float]:
    """The learning rate of every epoch, read by stepping the scheduler the trainer would build."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = optim.make_optimizer(config, [param], torch.device("cpu"))
    sched = optim.make_scheduler(config, opt, int(config.epochs if epochs is None else epochs))
    out = []
    for _ in range(optim.total_epochs(config, epochs)):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


# ---------------------------------------------------------------------------------------------- optimizer


def test_schedules_follow_the_paper_codes_formulas() -> None:
    lr, n = 0.1, 12
    # STR's cosine_lr with warm-up: lr (e + 1) / w, then lr_min + (lr - lr_min)(1 + cos(pi e' / n)) / 2
    cfg = tiny(lr=lr, epochs=n, schedule="cosine", lr_min=0.01, warmup_epochs=3)
    want = [lr * (e + 1) / 3 for e in range(3)] + [0.01 + 0.5 * (lr - 0.01) * (1 + math.cos(math.pi * e / n))
                                                   for e in range(n)]
    assert epoch_lrs(cfg) == pytest.approx(want, rel=1e-12)
    # MultiStepLR at int(n * m) for fractional milestones m
    cfg = tiny(lr=lr, epochs=n, schedule="multistep", schedule_options={"milestones": [0.25, 0.5], "gamma": 0.5})
    assert epoch_lrs(cfg) == pytest.approx([lr * 0.5 ** ((e >= 3) + (e >= 6)) for e in range(n)], rel=1e-12)
    # edge-popup's step schedule: epochs counted from 1, x0.1 every 5
    cfg = tiny(lr=lr, epochs=n, schedule="step", schedule_options={"step_size": 5, "gamma": 0.1, "offset": 1})
    assert epoch_lrs(cfg) == pytest.approx([lr * 0.1 ** ((e + 1) // 5) for e in range(n)], rel=1e-12)
    cfg = tiny(lr=lr, epochs=4, schedule="constant", warmup_epochs=2)
    assert epoch_lrs(cfg) == pytest.approx([0.05, 0.1, 0.1, 0.1, 0.1, 0.1], rel=1e-12)


@pytest.mark.parametrize("schedule", ["cosine", "multistep", "constant"])
def test_exact_path_keeps_pytorchs_schedules(schedule: str) -> None:
    cfg = tiny(lr=0.1, epochs=8, schedule=schedule, lr_min=0.003 if schedule == "cosine" else 0.0)
    assert optim.uses_torch_schedule(cfg)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    ref: Any = {
        "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=0.003),
        "multistep": lambda: torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[4, 6], gamma=0.1),
        "constant": lambda: torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0),
    }[schedule]()
    want = []
    for _ in range(8):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert epoch_lrs(cfg) == want  # bit-identical


@pytest.mark.parametrize("nesterov", [True, False])
def test_nesterov_matches_torch_sgd(nesterov: bool) -> None:
    cfg = tiny(nesterov=nesterov, momentum=0.9, weight_decay=1e-3, lr=0.1)
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(5, generator=gen)
    ours, ref = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opt = optim.make_optimizer(cfg, [ours], torch.device("cpu"))
    ref_opt = torch.optim.SGD([ref], lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=nesterov)
    for _ in range(4):
        g = torch.randn(5, generator=gen)
        for p, o in ((ours, opt), (ref, ref_opt)):
            p.grad = g.clone()
            o.step()
    assert torch.equal(ours.detach(), ref.detach())
    assert opt.param_groups[0]["nesterov"] is nesterov


def test_warmup_adds_epochs_to_the_run() -> None:
    cfg = tiny(epochs=2, warmup_epochs=2, schedule="cosine", lr=0.1)
    trainer = Trainer.from_config(cfg, progress=False)
    get_method("static").from_config(cfg).run(trainer)
    lrs = [r["lr"] for r in trainer.history]
    assert lrs == pytest.approx([0.05, 0.1, 0.1, 0.05], rel=1e-12)  # warm-up, then cosine over 2 epochs
    assert trainer.global_step == 4 * SPE


# ---------------------------------------------------------------------------------------------- validation


def bundle(n: int) -> DataBundle:
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1)
    return DataBundle(x, torch.arange(n) % 2, x[:3], torch.zeros(3, dtype=torch.long), 2, (1,))


def test_hold_out_takes_the_last_rows() -> None:
    train, val = hold_out(bundle(23), 0.1)
    assert val is not None
    assert train.x_train[:, 0].tolist() == list(range(21))  # int(0.1 * 23) = 2 rows held out
    assert val.x_test[:, 0].tolist() == [21.0, 22.0]
    assert hold_out(bundle(23), 0.0)[1] is None
    for bad in (1.0, -0.1, 0.01):  # 0.01 of 23 rows holds out none
        with pytest.raises(ValueError, match="val_fraction"):
            hold_out(bundle(23), bad)


def test_select_epoch_by_hand() -> None:
    rows = [(0, 0, 0.9, 0.1), (1, 0, 0.2, 0.5), (1, 1, 0.6, 0.3), (1, 2, 0.4, 0.7), (1, 3, 0.7, 0.7)]
    history = [{"fit": f, "fit_epoch": e, "epoch": i, "test_accuracy": t, "val_accuracy": v}
               for i, (f, e, t, v) in enumerate(rows)]
    assert select_epoch(history, "final")["epoch"] == 4
    assert select_epoch(history, "best_test")["epoch"] == 4  # the first fit's 0.9 is not eligible
    assert select_epoch(history, "best_val")["epoch"] == 3  # ties: the earliest
    assert select_epoch(history, "best_val", 3)["epoch"] == 4
    with pytest.raises(ValueError, match="select_from_epoch"):
        select_epoch(history, "best_test", 4)


def test_validation_split_and_selection_in_result(tmp_path: Path) -> None:
    cfg = tiny(val_fraction=0.25, select="best_val", epochs=4, lr=0.2, select_from_epoch=1)
    outcome = run_config(cfg, tmp_path, progress=False)
    result, metrics = outcome.result, RunDir(outcome.run_dir).read_metrics()
    assert result["epochs_done"] == 4 and result["global_step"] == 4 * math.ceil(150 / BATCH)
    eligible = [m for m in metrics if m["epoch"] >= 1]
    best = max(eligible, key=lambda m: (m["val_accuracy"], -m["epoch"]))
    assert result["select"] == "best_val" and result["selected_epoch"] == best["epoch"]
    assert result["test_accuracy"] == best["test_accuracy"]
    assert result["final_test_accuracy"] == metrics[-1]["test_accuracy"]
    best_test = run(tiny(val_fraction=0.25, select="best_test", epochs=4, lr=0.2), tmp_path, progress=False)
    assert best_test["test_accuracy"] == max(m["test_accuracy"] for m in metrics)  # same training, other choice


# ---------------------------------------------------------------------------------------------- init, masks


@pytest.mark.parametrize("per", ["neuron", "layer", "global"])
def test_init_scale_fan_factor_by_hand(per: str) -> None:
    plain = Trainer.from_config(tiny(), progress=False)
    scaled = Trainer.from_config(tiny(init_scale_fan=True, init_scale_fan_per=per), progress=False)
    assert plain.masking is not None and scaled.masking is not None
    for name, module in plain.masking.layers.items():
        mask = plain.masking.masks[name]
        fan_in = mask.shape[1]
        kept = {"neuron": mask.sum(dim=1).double(), "layer": torch.full((mask.shape[0],), float(mask.sum()) /
                                                                           mask.shape[0]).double(),
                "global": torch.full((mask.shape[0],), fan_in * 0.3).double()}[per]
        factor = torch.where(kept > 0, (fan_in / kept.clamp(min=1e-9)).sqrt(), torch.ones_like(kept))
        new = scaled.masking.layers[name].get_parameter("weight").detach().double()
        old = module.get_parameter("weight").detach().double()
        torch.testing.assert_close(new, old * factor[:, None], rtol=1e-6, atol=0)


def test_balanced_without_redistribution_reports_its_density(tmp_path: Path) -> None:
    cfg = tiny(density=0.9, density_options={"redistribute": False}, epochs=1)
    result = run(cfg, tmp_path, progress=False)
    trainer = Trainer.from_config(cfg, progress=False)
    assert trainer.masking is not None
    m = np.array([w.numel() for w in trainer.masking.masks.values()], dtype=float)
    x = 0.9 * m.sum() / m.size  # the same number of weights per layer, capped at the layer size
    planned = float(np.minimum(m, x).sum() / m.sum())
    assert planned < 0.9 - 1e-3
    assert result["requested_density"] == 0.9
    assert result["planned_density"] == pytest.approx(planned, rel=1e-12)
    nnz = sum(int(k.sum()) for k in trainer.masking.masks.values())
    assert result["density"] == pytest.approx(nnz / m.sum(), abs=0)  # the realised masked density


# ---------------------------------------------------------------------------------------------- methods


def run_method(cfg: TrainConfig) -> tuple[Trainer, Any, dict[str, Any]]:
    trainer = Trainer.from_config(cfg, progress=False)
    method = get_method(cfg.method).from_config(cfg)
    return trainer, method, method.run(trainer)


def test_rigl_prune_rate_floor() -> None:
    opts = {"update_every": 3, "prune_fraction": 0.5, "prune_fraction_min": 0.1, "stop_fraction": 1.0}
    _, _, out = run_method(tiny(method="rigl", method_options=opts, epochs=2, warmup_epochs=1))
    total = 3 * SPE
    want = [(t, 0.1 + 0.5 * (0.5 - 0.1) * (1 + math.cos(math.pi * t / total))) for t in range(3, total, 3)]
    assert [(u["step"], u["alpha"]) for u in out["update_log"]] == [(t, pytest.approx(a, rel=1e-12)) for t, a in want]


def test_granet_gradual_pruning_ends_at_its_epoch() -> None:
    opts = {"update_every": 2, "final_density": 0.3, "gradual_end_epoch": 2, "stop_fraction": 1.0}
    trainer, method, out = run_method(tiny(method="rigl", density_scheme="dense", density=1.0,
                                          method_options=opts, epochs=3))
    total = method.masking.numel()
    i1 = 2 * SPE // 2
    nnz, want = total, {}
    for t in range(2, 3 * SPE, 2):
        i = t // 2
        if i <= i1 - 1:
            nnz = min(nnz, round((0.3 + 0.7 * (1 - i / i1) ** 3) * total))
        want[t] = nnz
    assert {u["step"]: u["nnz"] for u in out["update_log"]} == want
    assert want[max(want)] > round(0.3 * total)  # GraNet stops one update short of the final density


def imp_config(**opts: Any) -> TrainConfig:
    return tiny(method="imp", method_options={"cycles": 1, **opts}, epochs=2, lr=0.1)


def test_imp_rewind_iteration_equals_the_epoch_form() -> None:
    by_step, _, _ = run_method(imp_config(rewind=f"iteration:{SPE}"))
    by_epoch, _, _ = run_method(imp_config(rewind="epoch", rewind_epoch=1))
    at_init, _, _ = run_method(imp_config(rewind="iteration:0"))
    init, _, _ = run_method(imp_config(rewind="init"))
    for name, p in by_step.model.named_parameters():
        assert torch.equal(p, dict(by_epoch.model.named_parameters())[name])
        assert torch.equal(dict(at_init.model.named_parameters())[name], dict(init.model.named_parameters())[name])
    assert not all(torch.equal(p, q) for p, q in zip(by_step.model.parameters(), init.model.parameters(), strict=True))
    with pytest.raises(ValueError, match="rewind"):
        get_method("imp").from_config(imp_config(rewind="iteration:x"))


@pytest.mark.parametrize("final_retrain", [True, False])
def test_imp_cycle_epochs_and_final_retrain(final_retrain: bool) -> None:
    cfg = imp_config(cycles=2, cycle_epochs=1, final_retrain=final_retrain)
    trainer, _, out = run_method(cfg)
    last = 2 if final_retrain else 1
    assert [sum(r["fit"] == f for r in trainer.history) for f in range(3)] == [1, 1, last]
    lrs = [r["lr"] for r in trainer.history if r["fit"] == 2]
    lr_min = 0.1 * 0.1
    assert lrs == pytest.approx([lr_min + 0.5 * (0.1 - lr_min) * (1 + math.cos(math.pi * e / last))
                                 for e in range(last)], rel=1e-9)
    assert out["train_steps"] == (2 + last) * SPE


@pytest.mark.parametrize("reset", [True, False])
def test_imp_keeps_the_optimizer_without_reset(monkeypatch: pytest.MonkeyPatch, reset: bool) -> None:
    trainer = Trainer.from_config(imp_config(cycles=2, reset_optimizer=reset), progress=False)
    seen: list[tuple[int, bool]] = []
    fit = trainer.fit

    def spy(epochs: int, **kw: Any) -> Any:
        seen.append((id(kw["optimizer"]), bool(kw["optimizer"].state)))
        assert kw["optimizer"].param_groups[0]["lr"] == pytest.approx(0.1, rel=1e-12)  # each cycle starts at lr
        return fit(epochs, **kw)

    monkeypatch.setattr(trainer, "fit", spy)
    get_method("imp").from_config(trainer.config).run(trainer)
    assert len({i for i, _ in seen}) == (3 if reset else 1)
    assert [has_momentum for _, has_momentum in seen] == [False, not reset, not reset]


def edgepopup_config(**opts: Any) -> TrainConfig:
    return tiny(method="edgepopup", method_options={"levels": 2, "final_density": 0.1, **opts}, epochs=2,
                density=0.5)


def test_edgepopup_constant_scores_and_code_levels() -> None:
    cfg = edgepopup_config(score_init="constant", level_start_density=0.6, levels=3)
    trainer = Trainer.from_config(cfg, progress=False)
    method = EdgePopup.from_config(cfg)
    assert isinstance(method, EdgePopup) and trainer.masking is not None
    method.start(trainer)
    assert all(bool((p.scores == 0.5).all()) for p in method.params)
    total = trainer.masking.numel()
    d0 = trainer.masking.nnz() / total
    b, d, want = (0.1 / 0.6) ** (1 / 3), 0.6, []
    for _ in range(3):
        d = max(min(d * b, d0), 0.1)
        want.append(round(d * total))
    want[-1] = round(0.1 * total)
    assert method.counts == want


@pytest.mark.parametrize("restart", [True, False])
def test_edgepopup_schedule_restart_per_level(restart: bool) -> None:
    cfg = edgepopup_config(lr_restart_per_level=restart)
    cfg = TrainConfig(**{**cfg.__dict__, "schedule": "step", "schedule_options": {"step_size": 1, "gamma": 0.5},
                         "lr": 0.1})
    trainer, _, _ = run_method(cfg)
    want = [0.1 * 0.5 ** (e % 2 if restart else e) for e in range(4)]
    assert [r["lr"] for r in trainer.history] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_str_threshold_under_warmup(monkeypatch: pytest.MonkeyPatch, nesterov: bool) -> None:
    cfg = tiny(method="str", epochs=2, warmup_epochs=2, lr=0.1, weight_decay=0.05, nesterov=nesterov,
               schedule="cosine", lr_min=0.01, density_scheme="dense", density=1.0)
    trainer = Trainer.from_config(cfg, progress=False)
    method = get_method("str").from_config(cfg)
    seen: list[float] = []
    end_epoch = method.end_epoch

    def spy(tr: Trainer, epoch: int, record: dict[str, Any]) -> None:
        end_epoch(tr, epoch, record)
        seen.append(next(iter(method.state.s.values())))

    monkeypatch.setattr(method, "end_epoch", spy)
    method.run(trainer)
    lrs = [0.05, 0.1, 0.1, 0.01 + 0.5 * 0.09 * (1 + math.cos(math.pi / 2))]  # warm-up, then STR's cosine
    s, _ = str_threshold_trajectory(-200.0, lrs, SPE, 0.05, momentum=0.9, nesterov=nesterov)
    np.testing.assert_allclose(seen, s, rtol=1e-5)
    assert s[1] > s[0] > -200.0


# ---------------------------------------------------------------------------------------------- paper-code


@pytest.mark.slow
@pytest.mark.parametrize("method", ["static", "imp", "str", "rigl", "set", "edgepopup"])
def test_paper_code_builds_and_trains_every_method(method: str, tmp_path: Path) -> None:
    per_method: dict[str, dict[str, Any]] = {
        "imp": {"cycles": 1, "cycle_epochs": 1},
        "edgepopup": {"levels": 1, "final_density": 0.1},
    }
    fields: dict[str, Any] = {
        "model": "resnet20", "dataset": "synthetic-cifar", "protocol": "paper-code", "method": method,
        "data_options": {"n_train": 32, "n_test": 16}, "epochs": 1, "batch_size": 16, "select_from_epoch": 0,
        "warmup_epochs": 0, "density_scheme": "erk", "density": 0.2, "device": "cpu",
        "method_options": per_method.get(method, {}), "width": 0.25,
    }
    cfg = TrainConfig.build(fields)
    assert cfg.protocol == "paper-code" and cfg.select == "best_test"
    result = run(cfg, tmp_path, progress=False)
    assert result["select"] == "best_test" and result["test_accuracy"] is not None
    assert result["epochs_done"] == (2 if method == "imp" else 1)


def test_edgepopup_rescales_its_redrawn_weights() -> None:
    weights = []
    for scale in (False, True):
        cfg = TrainConfig(**{**edgepopup_config().__dict__, "init_scale_fan": scale})
        trainer = Trainer.from_config(cfg, progress=False)
        method = EdgePopup.from_config(cfg)
        assert isinstance(method, EdgePopup)
        method.start(trainer)
        weights.append(dict(method.random_weights))
        masks = {n: m.detach() for (n, _), m in zip(method.layers, method.start_masks, strict=True)}
    for name, mask in masks.items():
        kept = mask.sum(dim=1).double()
        factor = torch.where(kept > 0, (mask.shape[1] / kept.clamp(min=1)).sqrt(), torch.ones_like(kept))
        torch.testing.assert_close(weights[1][name].double(), weights[0][name].double() * factor[:, None],
                                   rtol=1e-6, atol=0)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize(("method", "options", "stop"), [
    ("static", {}, 1),  # inside the warm-up
    ("imp", {"cycles": 2, "rewind": "iteration:3", "cycle_epochs": 1, "final_retrain": True,
             "reset_optimizer": False}, 2),  # between two cycles
])
def test_paper_code_options_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str,
                                   options: dict[str, Any], stop: int) -> None:
    import ertrain.rundir as rundir_mod

    warmup = 1 if method == "static" else 0
    cfg = tiny(method=method, method_options=options, epochs=2, warmup_epochs=warmup, nesterov=True, lr=0.1,
               schedule="multistep", schedule_options={"milestones": [0.5]}, val_fraction=0.2, select="best_val")
    reference = run(cfg, tmp_path / "a", progress=False)
    real_save, calls = rundir_mod.save_checkpoint, {"n": 0}

    def save_then_stop(run_dir: Path, state: dict[str, Any], run_hash: str | None = None) -> Path:
        path = real_save(run_dir, state, run_hash)
        calls["n"] += 1
        if calls["n"] == stop:
            raise Interrupt
        return path

    monkeypatch.setattr(rundir_mod, "save_checkpoint", save_then_stop)
    with pytest.raises(Interrupt):
        run(cfg, tmp_path / "b", progress=False)
    monkeypatch.setattr(rundir_mod, "save_checkpoint", real_save)
    resumed = run(cfg, tmp_path / "b", progress=False)
    for key in ("test_accuracy", "final_test_accuracy", "selected_epoch", "test_loss", "epochs_done", "global_step"):
        assert resumed[key] == reference[key], key


def test_selection_past_the_last_phase_is_refused_before_training() -> None:
    with pytest.raises(ValueError, match="select_from_epoch 5"):
        get_method("static").from_config(tiny(select="best_test", select_from_epoch=5, epochs=3, warmup_epochs=2))
    get_method("static").from_config(tiny(select="best_test", select_from_epoch=4, epochs=3, warmup_epochs=2))

    def imp(select_from_epoch: int = 0, warmup_epochs: int = 0, **opts: Any) -> TrainConfig:
        return tiny(method="imp", method_options={"cycle_epochs": 1, **opts}, epochs=2, select="best_test",
                    select_from_epoch=select_from_epoch, warmup_epochs=warmup_epochs)

    with pytest.raises(ValueError, match="last cycle"):
        get_method("imp").from_config(imp(select_from_epoch=1))
    get_method("imp").from_config(imp(select_from_epoch=1, final_retrain=True))
    with pytest.raises(ValueError, match="warm-up"):
        get_method("imp").from_config(imp(warmup_epochs=1))
