"""The sparse training engine: kernels against dense products, 100 training steps against the masked engine,
kept-weights-only storage and optimizer state, run identity, refusals and ``auto``'s choice."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from ertrain import engines
from ertrain.config import TrainConfig
from ertrain.data._common import make_bundle
from ertrain.engines import EngineMasking, use_engine
from ertrain.sparse_kernels import Pattern, available_kernels, get_kernel
from ertrain.sparse_train import SparseTrainConv2d, SparseTrainLinear, sparse_layer_for
from ertrain.trainer import Trainer


@pytest.mark.parametrize("kernel", available_kernels())
@pytest.mark.parametrize(("rows", "cols", "batch", "density"), [(7, 5, 3, 0.4), (40, 33, 17, 0.1), (16, 16, 9, 1.0),
                                                                (6, 9, 4, 0.0)])
def test_kernels_equal_dense_products(kernel: str, rows: int, cols: int, batch: int, density: float) -> None:
    g = torch.Generator().manual_seed(rows * cols + batch)
    mask = torch.rand(rows, cols, generator=g) < density
    w = torch.randn(rows, cols, generator=g, dtype=torch.float64) * mask
    xt = torch.randn(cols, batch, generator=g, dtype=torch.float64)
    gyt = torch.randn(rows, batch, generator=g, dtype=torch.float64)
    p, k = Pattern.from_mask(mask), get_kernel(kernel)
    values = w[mask]
    assert p.nnz == int(mask.sum()) and torch.equal(p.to_mask(), mask)
    torch.testing.assert_close(k.forward(p, values, xt), w @ xt)
    torch.testing.assert_close(k.input_grad(p, values, gyt), w.t() @ gyt)
    torch.testing.assert_close(k.weight_grad(p, gyt, xt), (gyt @ xt.t())[mask])  # dense dW, read at the kept entries


def test_kernel_names_are_checked() -> None:
    with pytest.raises(ValueError, match="'blas'.*valid: numba, torch"):
        get_kernel("blas")


@pytest.mark.parametrize("module", [nn.Linear(12, 7), nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Conv2d(5, 3, 1),
                                    nn.Conv2d(2, 3, (3, 1), dilation=2)])
def test_layer_gradients_equal_the_masked_dense_layer(module: nn.Module) -> None:
    torch.manual_seed(0)
    mask = torch.rand_like(module.weight) < 0.3
    with torch.no_grad():
        module.weight.mul_(mask)
    sparse = sparse_layer_for(module, mask)
    x = torch.randn(5, 12) if isinstance(module, nn.Linear) else torch.randn(4, module.in_channels, 9, 8)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = module(xa), sparse(xb)
    gy = torch.randn_like(ya)
    ya.backward(gy)
    yb.backward(gy)
    torch.testing.assert_close(yb, ya)
    torch.testing.assert_close(xb.grad, xa.grad)
    torch.testing.assert_close(sparse.values.grad, module.weight.grad[mask])
    torch.testing.assert_close(sparse.bias.grad, module.bias.grad)
    assert [n for n, _ in sparse.named_parameters()] == ["values", "bias"]
    assert sparse.values.numel() == int(mask.sum())
    state = sparse.state_dict()
    assert set(state) == {"weight", "bias"} and torch.equal(state["weight"], module.weight.detach())
    other = sparse_layer_for(module, mask)
    with torch.no_grad():
        other.values.zero_()
    other.load_state_dict(state)
    assert torch.equal(other.values, sparse.values)


def _bundle(shape: tuple[int, ...], n: int = 96, seed: int = 0) -> Any:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n + 32, *shape)).astype(np.float32)
    y = rng.integers(0, 4, n + 32)
    return make_bundle(x[:n], y[:n], x[n:], y[n:], num_classes=4, name="toy")


CASES = {
    "mlp-sgd-nesterov": ("mlp", (20,), {"model_options": {"hidden": [48, 32]}, "nesterov": True,
                                        "weight_decay": 5e-3}),
    "mlp-adamw": ("mlp", (20,), {"model_options": {"hidden": [48, 32]}, "optimizer": "adamw", "lr": 3e-3,
                                 "weight_decay": 0.05}),
    "smallcnn-sgd": ("smallcnn", (1, 10, 10), {"width": 0.25}),
}


def _train(case: str, engine: str, steps: int = 100) -> Trainer:
    model, shape, extra = CASES[case]
    data = _bundle(shape)
    options = {"lr": 0.05, **extra}
    dataset = "teacher" if model == "mlp" else "synthetic-cifar"  # the name only: the data is the bundle above
    cfg = TrainConfig(model=model, dataset=dataset, density_scheme="erk", density=0.3, batch_size=24, epochs=1,
                      schedule="constant", augment=False, seed=5, engine=engine, device="cpu", **options)
    trainer = Trainer.from_config(cfg, data=data, progress=False)
    epochs = steps // trainer.steps_per_epoch
    assert epochs * trainer.steps_per_epoch == steps
    trainer.fit(epochs)
    return trainer


@pytest.mark.parametrize("case", sorted(CASES))
def test_sparse_training_matches_masked_after_100_steps(case: str) -> None:
    masked, sparse = _train(case, "masked"), _train(case, "sparse")
    assert masked.global_step == sparse.global_step == 100
    assert isinstance(sparse.masking, EngineMasking) and set(sparse.masking.engine_layers.values()) == {"sparse"}
    assert masked.masking is not None
    for name, mask in masked.masking.masks.items():
        assert torch.equal(sparse.masking.masks[name].cpu(), mask.cpu())
    dense_state, sparse_state = masked.model.state_dict(), sparse.model.state_dict()
    assert set(dense_state) == set(sparse_state)
    for key, value in dense_state.items():
        torch.testing.assert_close(sparse_state[key], value, rtol=1e-4, atol=1e-5, msg=key)
    for name, mask in masked.masking.masks.items():  # pruned weights exactly zero
        assert not sparse_state[f"{name}.weight"][~mask].any()
    assert sparse.density() == pytest.approx(masked.density(), abs=0)
    assert sparse.history[-1]["train_loss"] == pytest.approx(masked.history[-1]["train_loss"], rel=1e-4)


def test_sparse_storage_and_optimizer_state_hold_kept_weights_only() -> None:
    trainer = _train("mlp-sgd-nesterov", "sparse", steps=4)
    layers = [m for m in trainer.model.modules() if isinstance(m, SparseTrainLinear)]
    assert layers and trainer.masking is not None
    assert sum(m.values.numel() for m in layers) == trainer.masking.nnz()
    assert not any(p.dim() >= 2 for p in trainer.model.parameters())  # no dense weight anywhere
    assert trainer.optimizer is not None
    for param, state in trainer.optimizer.state.items():
        buf = state["momentum_buffer"]
        assert buf.shape == param.shape


def test_engine_does_not_change_the_run_hash() -> None:
    base = TrainConfig(model="mlp", dataset="digits", density_scheme="erk", density=0.1)
    hashes = {base.replace(engine=e).run_hash() for e in ("masked", "sparse", "auto")}
    assert hashes == {base.run_hash()}
    assert "engine" not in base.replace(engine="sparse").canonical()


def test_sparse_engine_refuses_methods_that_need_dense_weights() -> None:
    with pytest.raises(ValueError, match=r"'rigl'.*--engine masked"):
        TrainConfig(model="mlp", dataset="digits", density_scheme="erk", density=0.1, method="rigl", engine="sparse")
    with pytest.raises(ValueError, match="'fast'.*masked, sparse, auto|engine must be one of"):
        TrainConfig(model="mlp", dataset="digits", engine="fast")
    TrainConfig(model="mlp", dataset="digits", density_scheme="erk", density=0.1, method="rigl", engine="auto")


def test_auto_picks_the_measured_faster_engine_per_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    from ertrain.masks import Masking

    masking = Masking(model, {"0": torch.rand(16, 8) < 0.5, "2": torch.rand(4, 16) < 0.5})
    fake = {16 * 8: {"masked_s": 1.0, "sparse_s": 0.5}, 4 * 16: {"masked_s": 0.5, "sparse_s": 1.0}}
    monkeypatch.setattr(engines, "measure_step", lambda module, mask, shape, repeats=5: dict(fake[mask.numel()]))
    cfg = TrainConfig(model="mlp", dataset="digits", density_scheme="erk", density=0.5, engine="auto", batch_size=8)
    out, chosen = use_engine(cfg, model, masking, torch.device("cpu"))
    assert isinstance(chosen, EngineMasking)
    assert chosen.engine_layers == {"0": "sparse", "2": "masked"}
    assert isinstance(out[0], SparseTrainLinear) and type(out[2]) is nn.Linear
    assert chosen.timings["0"] == {"masked_s": 1.0, "sparse_s": 0.5}
    before = out[2].weight.detach().clone()
    with torch.no_grad():
        out[2].weight.add_(1.0)
    chosen.apply_()  # re-zeroes the layer left dense
    assert torch.equal(out[2].weight != 0, chosen.masks["2"]) and not torch.equal(out[2].weight, before)


def test_auto_measures_real_layers() -> None:
    layer = nn.Linear(64, 64)
    timing = engines.measure_step(layer, torch.rand(64, 64) < 0.05, (32, 64), repeats=2)
    assert set(timing) == {"masked_s", "sparse_s"} and all(v > 0 for v in timing.values())


def test_sparse_conv_is_what_smallcnn_trains() -> None:
    trainer = _train("smallcnn-sgd", "sparse", steps=4)
    kinds = {type(m).__name__ for m in trainer.model.modules()}
    assert {SparseTrainConv2d.__name__, SparseTrainLinear.__name__} <= kinds and "Conv2d" not in kinds


def test_a_sparse_run_is_the_masked_run_and_records_its_engines(tmp_path: Any) -> None:
    from ertrain.runner import run

    base = TrainConfig(model="mlp", dataset="digits", density_scheme="erk", density=0.1, epochs=1, batch_size=64,
                       model_options={"hidden": [32]}, seed=1, device="cpu")
    sparse = run(base.replace(engine="sparse"), tmp_path / "sparse", progress=False)
    masked = run(base, tmp_path / "masked", progress=False)
    assert sparse["run_hash"] == masked["run_hash"]
    assert sparse["engine_layers"] == {"hidden.0": "sparse", "classifier": "sparse"} and "engine_layers" not in masked
    assert sparse["density"] == masked["density"]
    assert sparse["test_loss"] == pytest.approx(masked["test_loss"], rel=1e-4)
