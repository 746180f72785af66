"""Speed of the training fast path (``ertrain.trainer.Trainer``) on CUDA or the CPU, against a plain loop.

Sections (``--only`` picks some; every ratio is measured within one run, variants interleaved in
rotating order after a warm-up):

* ``masking``: one training step of ResNet18 and VGG16 on CIFAR-shaped batches, dense vs ER-masked
  (``--sparsity``, default 0.9; ``Masking.apply_`` after every step) vs a second dense copy (the
  run's noise floor, "A/A"); plus RiGL's mask update (``ertrain.methods.dst``: dense gradients,
  magnitude drop, gradient growth, momentum reset) timed on its own and amortised over
  ``--rigl-every`` (100) steps.  Steps run through the trainer's own loop (on-device batches,
  crop+flip, bf16 autocast and channels_last on CUDA).
* ``epoch``: one epoch of ResNet18 on CIFAR-shaped synthetic data with crop+flip: the trainer
  (sparse and dense; with and without ``torch.compile`` when ``--compile both``; on CUDA also with
  autocast and channels_last off) against ``reference_loop.py`` (DataLoader with per-image CPU
  augmentation, float32, ``torch.nn.utils.prune`` masks, ``.item()`` per batch) on the same masks,
  model and batch size.  Images/s for each, and the GPU's utilisation during the trainer's epochs.
* ``memory``: peak CUDA memory of a dense and a sparse epoch; the sparse excess against the bytes
  of the masks as bool (the target) and of ``Masking``'s float copies of the masks.
* ``sampling``: ER mask sampling (``sample_er_masks``) and flow repair (both modes) for ResNet50 at
  ``--sampling-sparsity`` (0.99), and ``Masking.from_scheme`` end to end onto the device.
* ``montecarlo``: the proofs' count sampler, ``ertheory.montecarlo.count_sample_proof`` (numpy) vs
  ``ertrain.montecarlo_torch.count_sample_proof_torch`` on the device, Figure 2's setting.

Sizes: the full sizes on CUDA (batches 128/512, 50,000 images, width 1); small ones on the CPU
(width 0.25, batches 16/64, 512 images); ``--quick`` is smaller still (a smoke run).

    python benchmarks/bench_gpu_training.py --device cuda --only masking memory sampling montecarlo --out a.json
    python benchmarks/bench_gpu_training.py --device cuda --only epoch --out b.json
    OMP_NUM_THREADS=1 python benchmarks/bench_gpu_training.py --device cpu --quick --threads 1 --compile both
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_loop import make_images, make_loader, make_reference_model, reference_epoch  # noqa: E402

from ertheory import bounds, montecarlo  # noqa: E402
from ertrain.config import TrainConfig  # noqa: E402
from ertrain.data import DataBundle, load_dataset  # noqa: E402
from ertrain.density import layer_densities  # noqa: E402
from ertrain.masks import Masking, flow_repair, sample_er_masks  # noqa: E402
from ertrain.models import build_model, layer_weight, maskable_layers  # noqa: E402
from ertrain.montecarlo_torch import count_sample_proof_torch  # noqa: E402
from ertrain.trainer import Trainer, resolve_device  # noqa: E402

SECTIONS = ("masking", "epoch", "memory", "sampling", "montecarlo")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Problem sizes of one run."""

    width: float  # channel multiplier of ResNet18 / VGG16
    batches: tuple[int, ...]  # batch sizes of the masking section
    step_rounds: int  # interleaved rounds of the masking section
    steps_per_round: int  # training steps per variant per round
    epoch_images: int  # images of the epoch section
    epoch_batch: int
    epoch_rounds: int
    ref_workers: int  # DataLoader workers of the reference loop
    memory_images: int
    sampling_repeats: int
    mc_trials: int


SIZES = {
    "cuda": Sizes(width=1.0, batches=(128, 512), step_rounds=7, steps_per_round=20, epoch_images=50_000,
                  epoch_batch=128, epoch_rounds=3, ref_workers=4, memory_images=128 * 20, sampling_repeats=5,
                  mc_trials=10**7),
    "cpu": Sizes(width=0.25, batches=(16, 64), step_rounds=5, steps_per_round=2, epoch_images=512,
                 epoch_batch=64, epoch_rounds=3, ref_workers=0, memory_images=0, sampling_repeats=3,
                 mc_trials=10**6),
    "quick": Sizes(width=0.125, batches=(8, 16), step_rounds=3, steps_per_round=1, epoch_images=128,
                   epoch_batch=32, epoch_rounds=2, ref_workers=0, memory_images=64, sampling_repeats=1,
                   mc_trials=10**5),
}


def log(msg: str) -> None:
    sys.stderr.write(f"[bench_gpu_training {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def rotating(keys: list[str], rounds: int) -> Iterator[tuple[int, str]]:
    """``(round, key)`` with the order rotated each round, so that no variant always runs first."""
    for r in range(rounds):
        k = r % len(keys)
        for key in keys[k:] + keys[:k]:
            yield r, key


def paired(times: dict[str, list[float]], num: str, den: str) -> float:
    """Median over rounds of the per-round ratio ``num / den`` (both ran under the same load)."""
    return statistics.median(a / b for a, b in zip(times[num], times[den], strict=True))


class Utilisation:
    """Samples the GPU's utilisation (percent) every ``period`` seconds in a thread while active.

    Uses ``torch.cuda.utilization`` (NVML) and falls back to ``nvidia-smi``; ``mean`` is None when
    neither works or the device is not CUDA.
    """

    def __init__(self, device: torch.device, period: float = 0.1) -> None:
        self.device, self.period = device, period
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._query = self._pick_query() if device.type == "cuda" else None

    def _pick_query(self) -> Callable[[], float] | None:
        index = self.device.index or 0
        try:
            torch.cuda.utilization(index)
            return lambda: float(torch.cuda.utilization(index))
        except Exception:
            pass
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return None

        def query() -> float:
            out = subprocess.run([smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i",
                                  str(index)], capture_output=True, text=True, timeout=5, check=True)
            return float(out.stdout.strip().splitlines()[0])

        try:
            query()
        except Exception:
            return None
        return query

    def _loop(self) -> None:
        assert self._query is not None
        while not self._stop.wait(self.period):
            with contextlib.suppress(Exception):
                self.samples.append(self._query())

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        if self._query is None:
            yield
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


# ------------------------------------------------------------------------------------------------
# trainers


def synthetic(n: int, seed: int) -> DataBundle:
    return load_dataset("synthetic-cifar", None, seed=seed, n_train=n, n_test=16)


def make_trainer(model: str, data: DataBundle, *, batch: int, width: float, density: float, scheme: str,
                 device: torch.device, seed: int, **overrides: Any) -> Trainer:
    """A trainer for ``model`` on ``data``: dense when ``density == 1``, else ER masks from ``scheme``."""
    sparse = density < 1.0
    cfg = TrainConfig(model=model, dataset="synthetic-cifar", epochs=1, batch_size=batch, width=width,
                      density_scheme=scheme if sparse else "dense", density=density, seed=seed,
                      device=str(device), **overrides)
    trainer = Trainer.from_config(cfg, data=data, progress=False)
    trainer.optimizer = trainer.make_optimizer()
    return trainer


def train_epoch(trainer: Trainer) -> None:
    """One epoch of the trainer's own loop (no evaluation, no checkpoint)."""
    assert trainer.optimizer is not None
    trainer._train_epoch(trainer.optimizer, ())
    trainer.epoch += 1


def mask_bytes(masking: Masking | None) -> tuple[int, int]:
    """(bytes of the bool mask buffers, bytes of ``Masking``'s cached float copies)."""
    if masking is None:
        return 0, 0
    bool_bytes = sum(m.numel() * m.element_size() for m in masking.masks.values())
    cache = getattr(masking, "_cache", [])
    return bool_bytes, sum(c.numel() * c.element_size() for c in cache)


# ------------------------------------------------------------------------------------------------
# sections


def bench_masking(sizes: Sizes, args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    out = []
    for model in ("resnet18", "vgg16"):
        for batch in sizes.batches:
            log(f"masking: {model} batch {batch}")
            out.append(masking_case(model, batch, sizes, args, device))
            gc.collect()
    return out


def masking_case(model: str, batch: int, sizes: Sizes, args: argparse.Namespace,
                 device: torch.device) -> dict[str, Any]:
    """Dense, dense copy and masked steps of ``model`` at ``batch``, and RiGL's update on the masked one."""
    from ertrain.methods.dst import RigL

    density = round(1.0 - args.sparsity, 12)
    data = synthetic(batch * sizes.steps_per_round, args.seed)
    common = dict(batch=batch, width=sizes.width, scheme=args.scheme, device=device, seed=args.seed)
    trainers = {
        "dense": make_trainer(model, data, density=1.0, **common),
        "dense_copy": make_trainer(model, data, density=1.0, **common),
        "masked": make_trainer(model, data, density=density, **common),
    }
    for tr in trainers.values():
        train_epoch(tr)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in trainers}
    for _, key in rotating(list(trainers), sizes.step_rounds):
        times[key].append(timed(functools.partial(train_epoch, trainers[key]), device) / sizes.steps_per_round)
    # RiGL's update: dense gradients kept after backward, drop-and-grow, momentum reset
    masked = trainers["masked"]
    hook = RigL(RigL.Options(update_every=args.rigl_every))
    hook.start(masked)
    hook.t_end = 10**12  # no stop: every update_every-th step updates
    step = args.rigl_every - 1  # the first update, where the drop fraction is largest

    def update() -> None:
        hook.after_backward(masked, step)
        hook.after_step(masked, step)

    update_times = []
    for _ in range(max(2, sizes.step_rounds // 2) + 1):
        train_epoch(masked)  # fresh gradients
        update_times.append(timed(update, device))
    t_update = statistics.median(update_times[1:])  # the first one is a warm-up
    med = {k: statistics.median(v) for k, v in times.items()}
    masked_ratio = paired(times, "masked", "dense")
    update_share = t_update / (args.rigl_every * med["dense"])
    assert masked.masking is not None
    return {
        "model": model, "batch": batch, "width": sizes.width, "density": density,
        "realised_density": masked.masking.overall_density(),
        "step_ms": {k: 1e3 * v for k, v in med.items()},
        "masked_over_dense": masked_ratio,
        "aa_dense_copy_over_dense": paired(times, "dense_copy", "dense"),
        "rigl_update_ms": 1e3 * t_update,
        "rigl_update_over_steps": update_share,
        "rigl_amortised_over_dense": masked_ratio + update_share,
        "rigl_every": args.rigl_every,
        "target_masked_le_1.03": masked_ratio <= 1.03,
        "target_rigl_update_le_0.02": update_share <= 0.02,
    }


def bench_epoch(sizes: Sizes, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    density = round(1.0 - args.sparsity, 12)
    n, batch = sizes.epoch_images, sizes.epoch_batch
    log(f"epoch: resnet18 width {sizes.width}, {n} images, batch {batch}")
    data = synthetic(n, args.seed)
    common = dict(batch=batch, width=sizes.width, scheme=args.scheme, device=device, seed=args.seed)
    trainers: dict[str, Trainer] = {
        "fast_sparse": make_trainer("resnet18", data, density=density, **common),
        "fast_dense": make_trainer("resnet18", data, density=1.0, **common),
    }
    compile_s: dict[str, float] = {}
    if args.compile in ("on", "both"):
        for key, dens in (("fast_sparse_compiled", density), ("fast_dense_compiled", 1.0)):
            trainers[key] = make_trainer("resnet18", data, density=dens, compile=True, **common)
    if device.type == "cuda":
        trainers["fast_sparse_fp32"] = make_trainer("resnet18", data, density=density, amp=False,
                                                    channels_last=False, **common)
    if args.compile == "on":
        del trainers["fast_sparse"], trainers["fast_dense"]
    sparse_key = "fast_sparse" if "fast_sparse" in trainers else "fast_sparse_compiled"
    masking = trainers[sparse_key].masking
    assert masking is not None
    masks = {name: m.detach().cpu() for name, m in masking.masks.items()}
    images, labels = make_images(n, args.seed)
    loader = make_loader(images, labels, batch_size=batch, num_workers=sizes.ref_workers, seed=args.seed)
    ref_model = make_reference_model("resnet18", masks, num_classes=10, width=sizes.width).to(device)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    runs: dict[str, Callable[[], Any]] = {k: functools.partial(train_epoch, tr) for k, tr in trainers.items()}
    runs["reference_sparse"] = lambda: reference_epoch(ref_model, loader, ref_opt, device)
    for key, fn in runs.items():  # warm-up (includes compilation)
        t = timed(fn, device)
        if "compiled" in key:
            compile_s[key] = t
        log(f"epoch: warm-up {key} {t:.2f} s")
    util = {k: Utilisation(device) for k in trainers}
    times: dict[str, list[float]] = {k: [] for k in runs}
    peaks: dict[str, int] = {}
    for _, key in rotating(list(runs), sizes.epoch_rounds):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with util[key].active() if key in util else contextlib.nullcontext():
            times[key].append(timed(runs[key], device))
        if device.type == "cuda":
            peaks[key] = max(peaks.get(key, 0), torch.cuda.max_memory_allocated(device))
        log(f"epoch: {key} {times[key][-1]:.2f} s")
    med = {k: statistics.median(v) for k, v in times.items()}
    res: dict[str, Any] = {
        "model": "resnet18", "width": sizes.width, "images": n, "batch": batch, "density": density,
        "reference_workers": sizes.ref_workers,
        "epoch_s": med,
        "images_per_s": {k: n / v for k, v in med.items()},
        "seconds_per_50k_images": {k: v * 50_000 / n for k, v in med.items()},
        "gpu_utilisation_percent": {k: u.mean for k, u in util.items()},
        "compile_warmup_epoch_s": compile_s,
    }
    ratios: dict[str, float] = {}
    fast = sparse_key
    ratios["reference_over_fast_sparse"] = paired(times, "reference_sparse", fast)
    if "fast_dense" in times and "fast_sparse" in times:
        ratios["fast_sparse_over_fast_dense"] = paired(times, "fast_sparse", "fast_dense")
    if "fast_sparse_compiled" in times and "fast_sparse" in times:
        ratios["compiled_over_eager_sparse"] = paired(times, "fast_sparse_compiled", "fast_sparse")
        ratios["compiled_over_eager_dense"] = paired(times, "fast_dense_compiled", "fast_dense")
        ratios["reference_over_best_fast_sparse"] = max(
            ratios["reference_over_fast_sparse"], paired(times, "reference_sparse", "fast_sparse_compiled"))
    if "fast_sparse_fp32" in times:
        ratios["fp32_over_fast_sparse"] = paired(times, "fast_sparse_fp32", fast)
    res["ratios"] = ratios
    res["target_reference_ge_3x"] = max(v for k, v in ratios.items() if k.startswith("reference_over")) >= 3.0
    if peaks:
        res["peak_cuda_mib_during_epoch"] = {k: v / 2**20 for k, v in peaks.items()}
    return res


def bench_memory(sizes: Sizes, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    density = round(1.0 - args.sparsity, 12)
    res: dict[str, Any] = {"model": "resnet18", "width": sizes.width, "batch": sizes.epoch_batch, "density": density}
    n = max(sizes.memory_images, sizes.epoch_batch)
    data = synthetic(n, args.seed)
    common = dict(batch=sizes.epoch_batch, width=sizes.width, scheme=args.scheme, device=device, seed=args.seed)
    peaks: dict[str, float | None] = {}
    for key, dens in (("dense", 1.0), ("sparse", density)):
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        trainer = make_trainer("resnet18", data, density=dens, **common)
        train_epoch(trainer)
        train_epoch(trainer)
        sync(device)
        peaks[key] = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else None
        if dens < 1.0:
            b, f = mask_bytes(trainer.masking)
            res["mask_bool_mib"], res["mask_float_cache_mib"] = b / 2**20, f / 2**20
            res["apply_ms"] = apply_times(trainer, device)
        del trainer
    res["peak_mib"] = peaks
    if peaks["dense"] is not None and peaks["sparse"] is not None:
        excess = peaks["sparse"] - peaks["dense"]
        res["sparse_excess_mib"] = excess
        res["target_excess_le_bool_masks"] = excess <= res["mask_bool_mib"]
    return res


def apply_times(trainer: Trainer, device: torch.device, repeats: int = 21) -> dict[str, float]:
    """Median time of ``Masking.apply_`` (float copies of the masks) and of the same multiply by the bool masks."""
    masking = trainer.masking
    assert masking is not None
    weights = [layer_weight(m) for m in masking.layers.values()]
    bool_masks = list(masking.masks.values())

    def with_bool() -> None:
        with torch.no_grad():
            torch._foreach_mul_(weights, bool_masks)

    out = {}
    for key, fn in (("float_cache", masking.apply_), ("bool_foreach", with_bool)):
        fn()
        out[key] = 1e3 * statistics.median(timed(fn, device) for _ in range(repeats))
    return out


def bench_sampling(sizes: Sizes, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    density = round(1.0 - args.sampling_sparsity, 12)
    log(f"sampling: resnet50 at density {density}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = build_model("resnet50", num_classes=100).to(device)
    shapes = [tuple(layer_weight(m).shape) for _, m in maskable_layers(model)]
    p = layer_densities(args.scheme, shapes, density)
    gen = torch.Generator().manual_seed(args.seed)
    masks = sample_er_masks(shapes, p, gen, device=device)
    results: dict[str, list[float]] = {"sample_er_masks": [], "flow_repair_random_add": [],
                                       "flow_repair_rejection": [], "from_scheme_random_add_total": []}
    for r in range(sizes.sampling_repeats + 1):  # the first round is a warm-up
        t = {
            "sample_er_masks": timed(lambda: sample_er_masks(shapes, p, gen, device=device), device),
            "flow_repair_random_add": timed(lambda: flow_repair(masks, "random_add", gen, densities=p), device),
            "flow_repair_rejection": timed(lambda: flow_repair(masks, "rejection", gen, densities=p), device),
        }

        def end_to_end() -> None:
            m = Masking.from_scheme(model, args.scheme, density, gen, flow_repair="random_add")
            for layer in m.layers.values():
                del layer._buffers[Masking.BUFFER]

        t["from_scheme_random_add_total"] = timed(end_to_end, device)
        if r:
            for k, v in t.items():
                results[k].append(v)
    med = {k: statistics.median(v) for k, v in results.items()}
    return {"model": "resnet50", "density": density, "scheme": args.scheme,
            "weights": int(sum(np.prod(s) for s in shapes)), "seconds": med,
            "target_total_lt_1s": med["from_scheme_random_add_total"] < 1.0}


def bench_montecarlo(sizes: Sizes, args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    return [montecarlo_case(s, sizes.mc_trials, args.seed, device) for s in (0.9, 0.99)]


def montecarlo_case(sparsity: float, trials: int, seed: int, device: torch.device) -> dict[str, Any]:
    """numpy vs torch count sampler in Figure 2's setting (784-128-10, delta 0.001, Theorem 2.1's q)."""
    d, n1, n2, delta = 784, 128, 10, 0.001
    p = round(1.0 - sparsity, 12)
    q = [int(v) for v in bounds.theorem_2_1(d, n1, n2, p, delta).q_int]
    m_T = [d * n1, n1 * n2]
    log(f"montecarlo: sparsity {sparsity}, {trials} trials")
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    runs: dict[str, Callable[[], Any]] = {
        "numpy": lambda: montecarlo.count_sample_proof(q, m_T, p, trials, rng, progress=False),
        "torch": lambda: count_sample_proof_torch(q, m_T, p, trials, gen),
    }
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _, key in rotating(list(runs), 3):
        times[key].append(timed(runs[key], device))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"sparsity": sparsity, "q": q, "trials": trials,
            "trials_per_s": {k: trials / v for k, v in med.items()},
            "torch_speedup_over_numpy": paired(times, "numpy", "torch")}


# ------------------------------------------------------------------------------------------------


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(Exception):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def summary(res: dict[str, Any]) -> str:
    lines = [f"{res['meta']['machine']} ({res['meta']['device']}), torch {res['meta']['torch']}, "
             f"sizes {res['meta']['sizes_name']}, {res['meta']['date']}"]
    for r in res.get("masking", []):
        ms = r["step_ms"]
        lines.append(
            f"masking {r['model']:<8} batch {r['batch']:>4}: dense {ms['dense']:.2f} ms, masked/dense "
            f"{r['masked_over_dense']:.3f} (A/A {r['aa_dense_copy_over_dense']:.3f}), RiGL update "
            f"{r['rigl_update_ms']:.1f} ms = {100 * r['rigl_update_over_steps']:.2f}% of {r['rigl_every']} dense steps")
    if "epoch" in res:
        e = res["epoch"]
        ips = ", ".join(f"{k} {v:.0f}" for k, v in e["images_per_s"].items())
        lines.append(f"epoch resnet18 width {e['width']} ({e['images']} images, batch {e['batch']}): images/s {ips}")
        lines.append("epoch ratios (paired): " + ", ".join(f"{k} {v:.2f}" for k, v in e["ratios"].items()))
        util = {k: v for k, v in e["gpu_utilisation_percent"].items() if v is not None}
        if util:
            lines.append("GPU utilisation %: " + ", ".join(f"{k} {v:.0f}" for k, v in util.items()))
        if e["compile_warmup_epoch_s"]:
            lines.append("compile (first epoch, s): " + ", ".join(
                f"{k} {v:.1f}" for k, v in e["compile_warmup_epoch_s"].items()))
    if "memory" in res:
        m = res["memory"]
        lines.append(f"memory: peak MiB {m['peak_mib']}, masks bool {m.get('mask_bool_mib', 0):.2f} MiB, "
                     f"float cache {m.get('mask_float_cache_mib', 0):.2f} MiB; apply_ ms {m.get('apply_ms')}")
    if "sampling" in res:
        s = res["sampling"]
        lines.append(f"sampling resnet50 density {s['density']}: " + ", ".join(
            f"{k} {v:.3f} s" for k, v in s["seconds"].items()))
    for r in res.get("montecarlo", []):
        lines.append(f"montecarlo sparsity {r['sparsity']}: trials/s numpy {r['trials_per_s']['numpy']:.3g}, "
                     f"torch {r['trials_per_s']['torch']:.3g} (torch speed-up {r['torch_speedup_over_numpy']:.2f}x)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="'auto' (CUDA if present), 'cpu', 'cuda', 'cuda:1'")
    parser.add_argument("--quick", action="store_true", help="smallest sizes (a smoke run on any device)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--sparsity", type=float, default=0.9, help="sparsity of the trained masks")
    parser.add_argument("--sampling-sparsity", type=float, default=0.99, help="sparsity of the sampling section")
    parser.add_argument("--scheme", default="erk", help="layer-wise density scheme of the ER masks")
    parser.add_argument("--rigl-every", type=int, default=100, help="steps between RiGL mask updates")
    parser.add_argument("--compile", choices=("off", "on", "both"), default=None,
                        help="torch.compile the trainer's model (default: both on CUDA, off on the CPU)")
    parser.add_argument("--ref-workers", type=int, default=None,
                        help="DataLoader workers of the reference loop (default: 4 on CUDA, 0 on the CPU)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON object to this file")
    args = parser.parse_args(argv)
    for name in ("sparsity", "sampling_sparsity"):
        if not 0.0 <= getattr(args, name) < 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1), got {getattr(args, name)!r}")
    if args.rigl_every < 1:
        raise ValueError(f"--rigl-every must be positive, got {args.rigl_every!r}")
    device = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.compile is None:
        args.compile = "both" if device.type == "cuda" else "off"
    sizes_name = "quick" if args.quick else device.type
    sizes = SIZES[sizes_name]
    if args.ref_workers is not None:
        if args.ref_workers < 0:
            raise ValueError(f"--ref-workers must be non-negative, got {args.ref_workers!r}")
        sizes = dataclasses.replace(sizes, ref_workers=args.ref_workers)
    res: dict[str, Any] = {"meta": {
        "machine": machine(device), "device": str(device), "torch": torch.__version__,
        "python": platform.python_version(), "threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "sizes_name": sizes_name, "sizes": dataclasses.asdict(sizes), "compile": args.compile,
        "scheme": args.scheme, "sparsity": args.sparsity, "argv": sys.argv[1:] if argv is None else argv,
    }}
    benches: dict[str, Callable[[Sizes, argparse.Namespace, torch.device], Any]] = {
        "masking": bench_masking, "epoch": bench_epoch, "memory": bench_memory,
        "sampling": bench_sampling, "montecarlo": bench_montecarlo,
    }
    t0 = time.perf_counter()
    for name in SECTIONS:
        if name in args.only:
            res[name] = benches[name](sizes, args, device)
    res["meta"]["wall_s"] = time.perf_counter() - t0
    text = json.dumps(res, indent=2, sort_keys=True)
    if args.out is not None:
        write_atomic(args.out, text + "\n")
    print(text if args.json else summary(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
