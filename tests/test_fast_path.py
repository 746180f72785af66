"""The training fast path: bf16 autocast, channels_last and ``torch.compile`` keep pruned weights exactly
zero and stay close to the plain float32 path; the benchmarks' reference loop (per-image DataLoader,
``torch.nn.utils.prune`` masks) trains the same network; the torch count sampler matches the exact
probability of the proofs' event.

Every test runs on the CPU and again on CUDA (``@pytest.mark.gpu``, skipped without CUDA).  On CUDA the
trainer switches autocast and channels_last on from its config; on the CPU, where the trainer keeps
float32 and the default layout, the tests switch them on through the trainer's ``amp`` and
``channels_last`` attributes (bf16 autocast works on the CPU), so the same loop code is exercised.

Tolerances (relative Frobenius errors; comparisons of trajectories train one epoch of 2 SGD steps at
learning rate 0.01, where rounding differences are not yet amplified by the training dynamics):
bf16 keeps 8 significant bits (unit roundoff ``u = 2**-8 ~ 3.9e-3``), so logits at initialisation,
the epoch's loss and the trained weights of the bf16 path are within ``4u ~ 1.6e-2`` of float32.
Float32 paths that only reorder the same arithmetic (channels_last, compilation, the reference loop)
agree to ``2e-4`` on the CPU and ``1e-2`` on CUDA, where cuDNN convolutions use TF32 by default
(10 significant bits).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ertheory import montecarlo
from ertrain.config import TrainConfig
from ertrain.data import DataBundle, load_dataset
from ertrain.models import build_model, layer_weight, maskable_layers
from ertrain.montecarlo_torch import count_sample_proof_torch
from ertrain.trainer import Trainer

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
BF16_U = 2.0**-8
FP32_TOL = {"cpu": 2e-4, "cuda": 1e-2}
SMALL_LR = 0.01
N_TRAIN, BATCH = 32, 16


def _reference_loop() -> Any:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_loop.py"
    spec = importlib.util.spec_from_file_location("reference_loop", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("reference_loop", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data() -> DataBundle:
    return load_dataset("synthetic-cifar", None, seed=0, n_train=N_TRAIN, n_test=16)


def make(data: DataBundle, device: str, *, amp: bool, channels_last: bool, density: float = 0.1,
         compile: bool = False, lr: float = 0.1, model: str = "resnet20") -> Trainer:
    """A small masked trainer (ResNet20 at width 1/4) with the fast-path switches set as asked, on any device."""
    cfg = TrainConfig(model=model, dataset="synthetic-cifar", width=0.25, batch_size=BATCH, epochs=1, lr=lr,
                      density_scheme="erk" if density < 1 else "dense", density=density, seed=3,
                      amp=amp, channels_last=channels_last, compile=compile, device=device)
    trainer = Trainer.from_config(cfg, data=data, progress=False)
    if trainer.device.type == "cpu":
        trainer.amp = amp
        if channels_last and not trainer.channels_last:
            trainer.channels_last = True
            trainer.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    assert trainer.amp == amp and trainer.channels_last == channels_last
    return trainer


def run_epochs(trainer: Trainer, epochs: int) -> list[float]:
    opt = trainer.make_optimizer()
    losses = []
    for _ in range(epochs):
        loss, _ = trainer._train_epoch(opt, ())
        trainer.epoch += 1
        losses.append(loss)
    return losses


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().cpu().contiguous().clone() for k, v in trainer.model.state_dict().items()
            if v.is_floating_point()}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def assert_pruned_exactly_zero(trainer: Trainer, start_masks: dict[str, torch.Tensor]) -> None:
    masking = trainer.masking
    assert masking is not None
    for name, module in masking.layers.items():
        mask = masking.masks[name].cpu()
        assert torch.equal(mask, start_masks[name]), f"mask of {name} changed"
        w = layer_weight(module).detach().cpu()
        assert w.dtype == torch.float32
        assert int(w[~mask].count_nonzero()) == 0, f"pruned weights of {name} are not zero"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("amp", "channels_last"), [(True, False), (False, True), (True, True)])
def test_pruned_weights_stay_exactly_zero_on_fast_path(data: DataBundle, device: str, amp: bool,
                                                       channels_last: bool) -> None:
    trainer = make(data, device, amp=amp, channels_last=channels_last)
    assert trainer.masking is not None
    start = {k: v.cpu().clone() for k, v in trainer.masking.masks.items()}
    before = weights(trainer)
    x = trainer.data.x_train[:BATCH]
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with trainer.placement.autocast():
        assert trainer.net(x).dtype == (torch.bfloat16 if amp else torch.float32)  # the path is really taken
    losses = run_epochs(trainer, 2)  # SGD with momentum 0.9 and weight decay: both would revive pruned weights
    assert all(math.isfinite(v) for v in losses)
    assert_pruned_exactly_zero(trainer, start)
    after = weights(trainer)
    for name, mask in start.items():  # the kept weights did train
        key = f"{name}.weight"
        assert not torch.equal(before[key][mask], after[key][mask])
    if channels_last:
        for module in trainer.masking.layers.values():
            w = layer_weight(module)
            if w.dim() == 4:  # in-place re-masking keeps the layout
                assert w.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("device", DEVICES)
def test_fast_path_close_to_float32_path(data: DataBundle, device: str) -> None:
    fast = make(data, device, amp=True, channels_last=True, lr=SMALL_LR)
    plain = make(data, device, amp=False, channels_last=False, lr=SMALL_LR)
    ref = weights(plain)
    for key, value in weights(fast).items():  # same initialisation and masks
        assert torch.equal(value, ref[key])
    x = data.x_train[:32].to(fast.device)
    fast.model.eval()
    plain.model.eval()
    with torch.no_grad(), fast.placement.autocast():
        out_fast = fast.model(x.contiguous(memory_format=torch.channels_last)).float()
    with torch.no_grad():
        out_plain = plain.model(x)
    err = rel_err(out_fast.cpu(), out_plain.cpu())
    assert 0 < err <= 4 * BF16_U  # bf16 really used (err > 0), and within tolerance
    loss_fast = run_epochs(fast, 1)
    loss_plain = run_epochs(plain, 1)
    np.testing.assert_allclose(loss_fast, loss_plain, rtol=4 * BF16_U)
    wf, wp = weights(fast), weights(plain)
    masking = plain.masking
    assert masking is not None
    for name in masking.layers:
        assert rel_err(wf[f"{name}.weight"], wp[f"{name}.weight"]) <= 4 * BF16_U, name


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_float32_matches_default_layout(data: DataBundle, device: str) -> None:
    a = make(data, device, amp=False, channels_last=True, lr=SMALL_LR)
    b = make(data, device, amp=False, channels_last=False, lr=SMALL_LR)
    loss_a, loss_b = run_epochs(a, 1), run_epochs(b, 1)
    np.testing.assert_allclose(loss_a, loss_b, rtol=FP32_TOL[device])
    wa, wb = weights(a), weights(b)
    assert b.masking is not None
    for name in b.masking.layers:
        assert rel_err(wa[f"{name}.weight"], wb[f"{name}.weight"]) <= FP32_TOL[device], name


@pytest.mark.parametrize("device", DEVICES)
def test_compile_option_keeps_zeros_and_matches_eager(
    data: DataBundle, device: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``TrainConfig(compile=True)``: the loop runs the compiled model and re-masks after each step.

    On the CPU the compiler's backend is ``aot_eager`` (Dynamo's graph capture and AOTAutograd, no
    C++ code generation, which would take minutes on a cold cache); on CUDA it is the default (Inductor).
    """
    import torch._dynamo

    torch._dynamo.reset()
    if device == "cpu":
        real_compile: Callable[..., Any] = torch.compile
        monkeypatch.setattr(torch, "compile", lambda model, **kw: real_compile(model, backend="aot_eager", **kw))
    amp = device == "cuda"
    model = "resnet20" if amp else "mlp"  # on the CPU a small model keeps the graph capture short
    compiled = make(data, device, amp=amp, channels_last=amp, compile=True, lr=SMALL_LR, model=model)
    eager = make(data, device, amp=amp, channels_last=amp, lr=SMALL_LR, model=model)
    assert compiled.net is not compiled.model  # the loop runs the compiled wrapper
    assert compiled.masking is not None
    start = {k: v.cpu().clone() for k, v in compiled.masking.masks.items()}
    run_epochs(compiled, 1)
    run_epochs(eager, 1)
    assert_pruned_exactly_zero(compiled, start)
    wc, we = weights(compiled), weights(eager)
    tol = 4 * BF16_U if amp else FP32_TOL[device]
    for name in start:
        assert rel_err(wc[f"{name}.weight"], we[f"{name}.weight"]) <= tol, name
    torch._dynamo.reset()


@pytest.mark.parametrize("device", DEVICES)
def test_reference_loop_trains_the_same_network(data: DataBundle, device: str) -> None:
    """The benchmarks' baseline (``prune.custom_from_mask``, mean loss, ``.item()`` per batch) on the
    trainer's own batches of epoch 0 gives the trainer's float32 weights: the speed comparison is fair."""
    ref_loop = _reference_loop()
    trainer = make(data, device, amp=False, channels_last=False, lr=SMALL_LR)
    masking = trainer.masking
    assert masking is not None
    batches = [(x.clone(), y.clone()) for x, y, _ in trainer.train_batches()]
    ref_model = ref_loop.make_reference_model(
        "resnet20", {k: v.cpu() for k, v in masking.masks.items()}, num_classes=10, width=0.25
    )
    init = {k: v for k, v in trainer.model.state_dict().items()}
    for name, mask in masking.masks.items():  # prune renamed weight -> weight_orig (+ weight_mask buffer)
        init[f"{name}.weight_orig"] = init.pop(f"{name}.weight")
        init[f"{name}.weight_mask"] = mask.float()
    ref_model.load_state_dict(init)
    ref_model.to(trainer.device)
    c = trainer.config
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
    stats = ref_loop.reference_epoch(ref_model, batches, ref_opt, trainer.device)
    losses = run_epochs(trainer, 1)
    assert stats["images"] == N_TRAIN
    assert stats["loss"] == pytest.approx(losses[0], rel=FP32_TOL[device])
    modules = dict(ref_model.named_modules())
    for name, module in masking.layers.items():
        ref_w = (modules[name].weight_orig * modules[name].weight_mask).detach().cpu()
        assert rel_err(layer_weight(module).detach().cpu(), ref_w) <= FP32_TOL[device], name


def test_reference_dataset_augments_one_image_at_a_time() -> None:
    ref_loop = _reference_loop()
    images, labels = ref_loop.make_images(6, seed=1)
    ds = ref_loop.PerImageAugmented(images, labels, seed=2)
    mean = torch.tensor(ref_loop.CIFAR_MEAN).view(3, 1, 1)
    std = torch.tensor(ref_loop.CIFAR_STD).view(3, 1, 1)
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 32, 32) and y == labels[i]
        pixels = torch.round((x * std + mean) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
        padded = np.pad(images[i], ((4, 4), (4, 4), (0, 0)))  # brute force: some crop (or its mirror) matches
        found = any(
            np.array_equal(pixels, crop) or np.array_equal(pixels, crop[:, ::-1])
            for top in range(9) for left in range(9)
            for crop in [padded[top:top + 32, left:left + 32]]
        )
        assert found


@pytest.mark.parametrize("device", DEVICES)
def test_torch_count_sampler_matches_exact_probability(device: str) -> None:
    q, m_T, p = [80, 40, 1], [30, 4], 0.1
    trials = 40_000
    qa = np.array(q, dtype=float)
    miss = (1 - p) ** qa[:-1]
    exact = float(np.prod((1 - miss) ** (np.array(m_T) * qa[1:])))  # P(every binomial count is 0)
    assert 0.2 < exact < 0.8
    est = count_sample_proof_torch(q, m_T, p, trials, torch.Generator(device=device).manual_seed(0),
                                   confidence=0.999, batch=15_000)
    assert est.trials == trials
    assert est.contains(exact)
    ref = montecarlo.count_sample_proof(q, m_T, p, trials, 0, confidence=0.999, progress=False)
    assert abs(est.estimate - ref.estimate) <= (est.ci_high - est.ci_low) + (ref.ci_high - ref.ci_low)


def test_torch_count_sampler_rejects_bad_input() -> None:
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="one more entry"):
        count_sample_proof_torch([3, 2], [5, 5], 0.5, 10, gen)
    with pytest.raises(ValueError, match="trials"):
        count_sample_proof_torch([3, 2, 1], [5, 5], 0.5, 0, gen)
    with pytest.raises(ValueError, match="generator"):
        count_sample_proof_torch([3, 2, 1], [5, 5], 0.5, 10, 0)  # type: ignore[arg-type]


def test_benchmark_script_runs_and_writes_json(tmp_path: Path) -> None:
    """The GPU benchmark's wiring, at its smoke-run sizes on the CPU (memory and Monte-Carlo sections)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu_training.py"
    spec = importlib.util.spec_from_file_location("bench_gpu_training", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_gpu_training", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    out = tmp_path / "res.json"
    assert bench.main(["--device", "cpu", "--quick", "--only", "memory", "montecarlo", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["meta"]["sizes_name"] == "quick"
    mem = res["memory"]
    model = build_model("resnet18", num_classes=10, width=res["meta"]["sizes"]["width"])
    n_masked = sum(layer_weight(m).numel() for _, m in maskable_layers(model))
    assert mem["mask_bool_mib"] == pytest.approx(n_masked / 2**20)  # one byte per masked weight
    assert set(mem["apply_ms"]) == {"float_cache", "bool_foreach"}
    assert mem["peak_mib"] == {"dense": None, "sparse": None}  # peak memory is measured on CUDA only
    assert [r["sparsity"] for r in res["montecarlo"]] == [0.9, 0.99]
    assert all(r["trials_per_s"]["torch"] > 0 and r["trials_per_s"]["numpy"] > 0 for r in res["montecarlo"])
    with pytest.raises(ValueError, match="sparsity"):
        bench.main(["--device", "cpu", "--quick", "--sparsity", "1.5"])
