"""The training loop, run directories, checkpoints, resume and the ``ertrain train`` command."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

import ertrain.rundir as rundir_mod
from ertrain.config import TrainConfig
from ertrain.rundir import CHECKPOINT, PREVIOUS_CHECKPOINT, RunDir, read_checkpoint, save_checkpoint
from ertrain.runner import load_run, run
from ertrain.trainer import Trainer


def load_latest_checkpoint(run_dir: Path) -> tuple[dict[str, Any] | None, list[str]]:
    return RunDir(Path(run_dir)).load_checkpoint()


def flip_byte(path: Path) -> None:
    """Change one byte in the middle of a file (a loadable-looking but corrupted copy)."""
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def tiny(**changes: Any) -> TrainConfig:
    base: dict[str, Any] = dict(
        model="mlp", dataset="teacher", data_options={"n_train": 200, "n_test": 100}, model_options={"hidden": [24]},
        epochs=3, batch_size=32, lr=0.05, density_scheme="balanced", density=0.3, device="cpu",
    )
    base.update(changes)
    return TrainConfig(**base)


def test_masked_training_learns_and_keeps_pruned_weights_zero() -> None:
    trainer = Trainer.from_config(tiny(epochs=6, density=0.5, lr=0.2), progress=False)
    assert trainer.masking is not None
    masks = {k: v.clone() for k, v in trainer.masking.masks.items()}
    before = trainer.evaluate()["accuracy"]
    records = trainer.fit(6)
    assert [r["epoch"] for r in records] == list(range(6))
    assert records[-1]["test_accuracy"] > max(0.5, before + 0.2)  # 4 classes: chance is about 0.25
    layers = dict(trainer.model.named_modules())
    for name, mask in masks.items():
        w = layers[name].weight.detach()
        assert torch.count_nonzero(w[~mask]) == 0
        assert torch.count_nonzero(w[mask]) > 0.9 * int(mask.sum())
    nnz = sum(int(m.sum()) for m in masks.values())
    assert records[-1]["density"] == pytest.approx(nnz / sum(m.numel() for m in masks.values()), abs=0)
    assert trainer.global_step == 6 * math.ceil(200 / 32)


def test_cosine_schedule_and_sgd_settings() -> None:
    cfg = tiny(epochs=4, lr=0.2, lr_min=0.02, weight_decay=1e-3, momentum=0.8)
    trainer = Trainer.from_config(cfg, progress=False)
    records = trainer.fit(4)
    expected = [0.02 + (0.2 - 0.02) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert [r["lr"] for r in records] == pytest.approx(expected, rel=1e-12)
    group = trainer.optimizer.param_groups[0]  # type: ignore[union-attr]
    assert (group["momentum"], group["weight_decay"]) == (0.8, 1e-3)
    steps = trainer.make_scheduler(trainer.make_optimizer(), 8)
    assert isinstance(steps, torch.optim.lr_scheduler.CosineAnnealingLR)
    multi = Trainer.from_config(tiny(schedule="multistep", epochs=8), progress=False)
    lrs = [r["lr"] for r in multi.fit(8)]
    assert lrs == pytest.approx([0.05] * 4 + [0.005] * 2 + [0.0005] * 2)


def test_same_seed_same_run_different_seed_different_masks() -> None:
    a = Trainer.from_config(tiny(), progress=False)
    b = Trainer.from_config(tiny(), progress=False)
    c = Trainer.from_config(tiny(seed=1), progress=False)
    assert a.masking is not None and b.masking is not None and c.masking is not None
    for k in a.masking.masks:
        assert torch.equal(a.masking.masks[k], b.masking.masks[k])
    assert any(not torch.equal(a.masking.masks[k], c.masking.masks[k]) for k in a.masking.masks)
    ra, rb = a.fit(2), b.fit(2)
    assert [r["train_loss"] for r in ra] == [r["train_loss"] for r in rb]


def test_hooks_are_called() -> None:
    calls: dict[str, int] = {"after_backward": 0, "after_step": 0, "end_epoch": 0}

    class Hook:
        def after_backward(self, trainer: Trainer, step: int) -> None:
            calls["after_backward"] += 1
            assert all(p.grad is not None for p in trainer.model.parameters())

        def after_step(self, trainer: Trainer, step: int) -> None:
            calls["after_step"] += 1

        def end_epoch(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
            calls["end_epoch"] += 1
            metrics["seen_by_hook"] = epoch

    class OnlyEnd:
        def end_epoch(self, trainer: Trainer, epoch: int, metrics: dict[str, Any]) -> None:
            calls["end_epoch"] += 1

    trainer = Trainer.from_config(tiny(epochs=2), progress=False)
    records = trainer.fit(2, hooks=[Hook(), OnlyEnd()])
    steps = 2 * math.ceil(200 / 32)
    assert calls == {"after_backward": steps, "after_step": steps, "end_epoch": 4}
    assert [r["seen_by_hook"] for r in records] == [0, 1]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = read_checkpoint(run_dir / CHECKPOINT)
    return state["model"]  # type: ignore[no-any-return]


def test_run_writes_the_run_directory_and_never_reruns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tiny()
    result = run(cfg, tmp_path, progress=False)
    run_dir = tmp_path / cfg.run_hash()
    for name in ("config.json", "metrics.jsonl", "result.json", CHECKPOINT):
        assert (run_dir / name).exists(), name
    assert TrainConfig.from_json((run_dir / "config.json").read_text()) == cfg
    on_disk = json.loads((run_dir / "result.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["epochs_done"] == 3
    assert result["method"] == "static" and result["run_hash"] == cfg.run_hash()
    lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1, 2]
    assert result["test_accuracy"] == lines[-1]["test_accuracy"]
    # realised density from the saved masks
    masks = read_checkpoint(run_dir / CHECKPOINT)["masks"]
    assert result["density"] == sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    # the loaded run reproduces the reported accuracy
    config, model, masking, loaded = load_run(run_dir)
    assert config == cfg and loaded == on_disk and masking is not None
    trainer = Trainer(config, model, Trainer.from_config(cfg, progress=False).data, masking=masking, progress=False)
    assert trainer.evaluate()["accuracy"] == result["test_accuracy"]

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(Trainer, "fit", boom)
    assert run(cfg, tmp_path) == on_disk


class Interrupt(Exception):
    pass


def interrupted_run(cfg: TrainConfig, runs_dir: Path, after: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``cfg`` but fail right after the ``after``-th checkpoint was written."""
    real = rundir_mod.save_checkpoint
    count = {"n": 0}

    def save_then_fail(run_dir: Path, state: dict[str, Any], run_hash: str | None = None) -> Path:
        path = real(run_dir, state, run_hash)
        count["n"] += 1
        if count["n"] == after:
            raise Interrupt("stopped")
        return path

    monkeypatch.setattr(rundir_mod, "save_checkpoint", save_then_fail)
    with pytest.raises(Interrupt):
        run(cfg, runs_dir, progress=False)
    monkeypatch.setattr(rundir_mod, "save_checkpoint", real)


@pytest.mark.parametrize("corrupt", ["none", "truncate", "bitflip"])
def test_resume_equals_an_uninterrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corrupt: str) -> None:
    cfg = tiny(epochs=4)
    whole = run(cfg, tmp_path / "whole", progress=False)
    expected = final_weights(tmp_path / "whole" / cfg.run_hash())

    runs = tmp_path / "resumed"
    interrupted_run(cfg, runs, after=3, monkeypatch=monkeypatch)
    run_dir = runs / cfg.run_hash()
    error = json.loads((run_dir / "error.json").read_text())
    assert error["type"] == "Interrupt" and "stopped" in error["traceback"]
    assert not (run_dir / "result.json").exists()
    assert read_checkpoint(run_dir / CHECKPOINT)["epoch"] == 3
    assert read_checkpoint(run_dir / PREVIOUS_CHECKPOINT)["epoch"] == 2
    if corrupt == "truncate":
        raw = (run_dir / CHECKPOINT).read_bytes()
        (run_dir / CHECKPOINT).write_bytes(raw[: len(raw) // 2])
    elif corrupt == "bitflip":
        # change one byte of the payload: only the digest can tell
        flip_byte(run_dir / CHECKPOINT)
    if corrupt != "none":
        state, problems = load_latest_checkpoint(run_dir)
        assert state is not None and state["epoch"] == 2 and len(problems) == 1 and CHECKPOINT in problems[0]

    resumed = run(cfg, runs, progress=False)
    assert not (run_dir / "error.json").exists()
    for k, v in final_weights(run_dir).items():
        assert torch.equal(v, expected[k]), k
    for key in ("test_accuracy", "density", "epochs_done", "global_step"):
        assert resumed[key] == whole[key], key
    lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    wlines = [json.loads(s) for s in (tmp_path / "whole" / cfg.run_hash() / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1, 2, 3]
    assert [r["train_loss"] for r in lines] == [r["train_loss"] for r in wlines]


def test_save_checkpoint_keeps_two_and_detects_tampering(tmp_path: Path) -> None:
    for epoch in range(3):
        save_checkpoint(tmp_path, {"epoch": epoch, "w": torch.full((3,), float(epoch)), "nested": {"k": [1, "a"]}})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CHECKPOINT, PREVIOUS_CHECKPOINT])
    assert read_checkpoint(tmp_path / CHECKPOINT)["epoch"] == 2
    assert read_checkpoint(tmp_path / PREVIOUS_CHECKPOINT)["epoch"] == 1
    flip_byte(tmp_path / CHECKPOINT)
    with pytest.raises(ValueError, match="digest mismatch"):
        read_checkpoint(tmp_path / CHECKPOINT)
    (tmp_path / PREVIOUS_CHECKPOINT).write_bytes(b"not a zip")
    state, problems = load_latest_checkpoint(tmp_path)
    assert state is None and len(problems) == 2


def test_missing_data_fails_before_creating_the_run_directory(tmp_path: Path) -> None:
    cfg = tiny(model="gcn", model_options={}, dataset="cora", data_dir=str(tmp_path / "missing"), data_options={})
    with pytest.raises(ValueError, match="cora.content"):
        run(cfg, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_dense_run_and_graph_data(tmp_path: Path) -> None:
    content = "".join(f"{i} " + " ".join("1" if (i + j) % 3 == 0 else "0" for j in range(6)) + f" c{i % 2}\n"
                      for i in range(12))
    (tmp_path / "cora.content").write_text(content)
    (tmp_path / "cora.cites").write_text("".join(f"{i} {(i + 2) % 12}\n" for i in range(12)))
    cfg = TrainConfig(model="gcn", dataset="cora", data_dir=str(tmp_path), epochs=2, lr=0.01, optimizer="adam",
                      data_options={"train": [0, 4], "val": [4, 8], "test": [8, 12]}, device="cpu")
    result = run(cfg, tmp_path / "runs", progress=False)
    assert result["density"] == 1.0 and 0 <= result["test_accuracy"] <= 1
    trainer = Trainer.from_config(cfg, progress=False)
    assert trainer.masking is None and trainer.evaluate("val")["n"] == 4
    with pytest.raises(ValueError, match="split"):
        trainer.evaluate("holdout")


def test_cli_train_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ertrain.cli import main

    argv = ["train", "--model", "mlp", "--dataset", "teacher", "--data-options", '{"n_train": 100, "n_test": 50}',
            "--model-options", '{"hidden": [8]}', "--density-scheme", "uniform", "--sparsity", "0.5", "--epochs", "1",
            "--out", str(tmp_path), "--device", "cpu"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["density"] == pytest.approx(0.5, abs=0.1) and out["epochs_done"] == 1
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"test accuracy: {out['test_accuracy']:.4f}" in text and out["run_hash"] in text
    assert main(["train", "--model", "mlp", "--dataset", "nosuch"]) == 2
    assert main(["train", "--model", "nosuch", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "valid names" in err[-1]


def test_progress_lines_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    """Captured stderr is not a terminal: one concise line per epoch (progress None or True); False is silent."""
    import re

    for progress in (None, True):
        trainer = Trainer.from_config(tiny(epochs=2), progress=progress)
        records = trainer.fit(2, desc="static")
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 2
        for i, (line, rec) in enumerate(zip(lines, records, strict=True)):
            m = re.fullmatch(r"static epoch (\d+)/2 loss (\S+) acc (\S+) test (\S+) (\d+\.\d)s", line)
            assert m is not None, line
            assert int(m[1]) == i + 1
            assert float(m[2]) == pytest.approx(rec["train_loss"], rel=1e-3)
            assert float(m[3]) == pytest.approx(rec["train_accuracy"], abs=6e-4)
            assert float(m[4]) == pytest.approx(rec["test_accuracy"], abs=6e-4)
    quiet = Trainer.from_config(tiny(epochs=1), progress=False)
    quiet.fit(1)
    assert capsys.readouterr().err == ""


def test_progress_bars_on_a_terminal() -> None:
    import io

    from ertrain.progress import Bars, Lines, Silent, epoch_line, progress_for

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    show = progress_for(None, 0, desc="static", epochs=2, start=0, steps=3, stream=term)
    assert isinstance(show, Bars)
    record = {"train_loss": 0.41234, "train_accuracy": 0.8731, "test_accuracy": None, "time_s": 2.06}
    show.start_epoch(0)
    for _ in range(3):
        show.step()
    show.end_epoch(0, record)
    show.close()
    text = term.getvalue()
    for needle in ("static", "1/2", "loss=0.4123", "acc=0.873", "test_acc=-", "s_per_epoch=2.06", "epoch 1/2"):
        assert needle in text, needle
    assert isinstance(progress_for(None, 0, desc="", epochs=1, start=0, steps=1, stream=io.StringIO()), Lines)
    assert type(progress_for(False, 0, desc="", epochs=1, start=0, steps=1, stream=term)) is Silent
    assert type(progress_for(True, 1, desc="", epochs=1, start=0, steps=1, stream=term)) is Silent
    assert epoch_line("", 2, 20, record) == "epoch 3/20 loss 0.4123 acc 0.873 test - 2.1s"


@pytest.mark.gpu
def test_cuda_bf16_channels_last_matches_cpu_masks() -> None:
    cfg = tiny(model="resnet20", dataset="synthetic-cifar", data_options={"n_train": 256, "n_test": 64},
               model_options={}, epochs=1, device="cuda")
    gpu = Trainer.from_config(cfg, progress=False)
    cpu = Trainer.from_config(cfg.replace(device="cpu"), progress=False)
    assert gpu.amp and gpu.channels_last
    assert gpu.masking is not None and cpu.masking is not None
    for name, mask in cpu.masking.masks.items():
        assert torch.equal(gpu.masking.masks[name].cpu(), mask)
    records = gpu.fit(1)
    assert math.isfinite(records[0]["train_loss"])
    layers = dict(gpu.model.named_modules())
    for name, mask in gpu.masking.masks.items():
        assert torch.count_nonzero(layers[name].weight.detach()[~mask]) == 0


def test_regression_task_reports_loss_without_accuracy(tmp_path: Path) -> None:
    cfg = tiny(data_options={"n_train": 200, "n_test": 100, "task": "regression", "num_classes": 2},
               density_scheme="dense", density=1.0, epochs=4, lr=0.1)
    trainer = Trainer.from_config(cfg, progress=False)
    start = trainer.evaluate()
    records = trainer.fit(4)
    assert start["accuracy"] is None and records[-1]["test_accuracy"] is None
    # the mean squared error per output falls below predicting zero (the targets' mean square)
    y = trainer.data.y_test
    assert records[-1]["test_loss"] < 0.5 * float((y**2).mean())
    result = run(cfg, tmp_path, progress=False)
    assert result["test_accuracy"] is None and json.loads((tmp_path / cfg.run_hash() / "result.json").read_text())
