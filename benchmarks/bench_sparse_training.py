"""Sparse vs masked training steps on CPU: step time and peak memory, ratios measured within one run.

A training step is forward + backward + SGD step (momentum 0.9, weight decay 5e-4), and for the
masked engine the re-zeroing of the pruned weights (:class:`ertrain.masks.Masking`).  Engines and
kernels compared on the same layer and the same input in the same process:

* ``masked``: the dense ``nn.Linear`` / ``nn.Conv2d`` with its mask (``--engine masked``);
* ``sparse``: :mod:`ertrain.sparse_train` with the numba kernel (``--engine sparse``);
* ``sparse-torch``: the same layer with torch's CSR products and ``sampled_addmm`` (the fallback kernel);
* ``sparseprop``: SparseProp's own layer (package ``sparseprop``; the anchor), when it is installed;
* ``auto``: :func:`ertrain.engines.use_engine` with ``engine="auto"``: whatever it picks, timed.

Variants alternate within every round (interleaved repeats, after a warm-up round) so all see the same
machine load; a ratio is the median over rounds of ``masked / variant`` with its range.  Settings:
(a) one 4096x4096 ``Linear`` at batch 256, (b) the paper's MLP 784-300-100-10 and a wide MLP
784-2048-2048-10 on Fashion-MNIST-shaped input (ERK masks, batch 256, cross-entropy), (c) the three
ResNet-20 convolution shapes (3x3, 16/32/64 channels at 32/16/8 pixels, batch 128); densities 0.5, 0.1,
0.05, 0.01; each thread count runs in its own process (``OMP_NUM_THREADS``, torch and numba threads).

Peak memory (4096x4096 layer, batch 256, one thread): in a fresh process per engine and density (glibc's
mmap threshold fixed, so freed blocks leave the process), the peak resident memory (``VmHWM``, reset with
``/proc/self/clear_refs`` once the layer is built) over three steps, minus the resident memory before the layer
was built: weights, gradients, optimizer state, masks or index arrays, and the step's activations (the same for
both); and the bytes of the tensors a step keeps (parameters, gradients, optimizer state, masks / index arrays).

    python3 benchmarks/bench_sparse_training.py                 # everything, writes results/readme/sparse_training.json
    python3 benchmarks/bench_sparse_training.py --quick         # a smoke run (small, few repeats)
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = ROOT / "results" / "readme" / "sparse_training.json"
DENSITIES = (0.5, 0.1, 0.05, 0.01)


def _sgd(params: Any) -> Any:
    import torch

    return torch.optim.SGD([p for p in params if p.requires_grad], lr=0.01, momentum=0.9, weight_decay=5e-4)


def _mask(shape: tuple[int, ...], density: float, seed: int = 0) -> Any:
    import torch

    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < density


def _variants(layer: Any, mask: Any, make_input: Callable[[], Any], loss: Callable[[Any], Any], kinds: list[str]
              ) -> dict[str, Callable[[], None]]:
    """name -> one training step, for a dense ``layer`` (weights already masked) and its ``mask``."""
    import torch

    from ertrain.masks import Masking
    from ertrain.sparse_train import sparse_layer_for

    x = make_input()
    steps: dict[str, Callable[[], None]] = {}

    def stepper(module: Any, after: Callable[[], None] | None = None) -> Callable[[], None]:
        opt = _sgd(module.parameters())

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            loss(module(x)).backward()
            opt.step()
            if after is not None:
                after()
        return step

    for kind in kinds:
        if kind == "masked":
            dense = copy.deepcopy(layer)
            masking = Masking(torch.nn.Sequential(dense), [mask], [("0", dense)])
            steps[kind] = stepper(dense, masking.apply_)
        elif kind in ("sparse", "sparse-torch"):
            steps[kind] = stepper(sparse_layer_for(layer, mask, "numba" if kind == "sparse" else "torch"))
        elif kind == "sparseprop":
            from sparseprop.modules.conv2d import SparseConv2d as SPConv
            from sparseprop.modules.linear import SparseLinear as SPLinear

            module = copy.deepcopy(layer)
            steps[kind] = stepper(SPLinear.from_dense(module) if isinstance(layer, torch.nn.Linear)
                                  else SPConv.from_dense(module))
    return steps


def _interleave(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(repeats + 1):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            if r:  # round 0 warms up (numba compiles, allocator caches fill)
                times[name].append(time.perf_counter() - t0)
    return times


def _summary(times: dict[str, list[float]]) -> dict[str, Any]:
    base = times["masked"]
    out: dict[str, Any] = {}
    for name, ts in times.items():
        ratios = [b / t for b, t in zip(base, ts, strict=True)]
        out[name] = {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts),
                     "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}
    return out


def _auto_choice(module: Any, mask: Any, input_shape: tuple[int, ...]) -> str:
    from ertrain.engines import measure_step

    t = measure_step(module, mask, input_shape)
    return "sparse" if t["sparse_s"] < t["masked_s"] else "masked"


def bench_linear(densities: list[float], repeats: int, size: int, batch: int, kinds: list[str]) -> list[dict[str, Any]]:
    import torch

    rows = []
    gy = torch.randn(batch, size, generator=torch.Generator().manual_seed(2))
    for d in densities:
        layer = torch.nn.Linear(size, size)
        mask = _mask((size, size), d)
        with torch.no_grad():
            layer.weight.mul_(mask)
        steps = _variants(layer, mask, lambda: torch.randn(batch, size, generator=torch.Generator().manual_seed(1)),
                          lambda y: (y * gy).sum(), kinds)
        auto = _auto_choice(layer, mask, (batch, size))
        summary = _summary(_interleave({k: v for k, v in steps.items() if k != "auto"}, repeats))
        summary["auto"] = {**summary[auto], "picked": auto}
        rows.append({"setting": f"linear {size}x{size}", "batch": batch, "density": d, "results": summary})
        print(json.dumps(rows[-1]), file=sys.stderr)
        del steps
        gc.collect()
    return rows


def bench_convs(densities: list[float], repeats: int, batch: int, kinds: list[str]) -> list[dict[str, Any]]:
    import torch

    rows = []
    for channels, pixels in ((16, 32), (32, 16), (64, 8)):
        for d in densities:
            conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            mask = _mask(tuple(conv.weight.shape), d)
            with torch.no_grad():
                conv.weight.mul_(mask)
            shape = (batch, channels, pixels, pixels)
            gy = torch.randn(shape, generator=torch.Generator().manual_seed(2))
            steps = _variants(conv, mask, lambda shape=shape: torch.randn(shape), lambda y, gy=gy: (y * gy).sum(),
                              kinds)
            auto = _auto_choice(conv, mask, shape)
            summary = _summary(_interleave(steps, repeats))
            summary["auto"] = {**summary[auto], "picked": auto}
            rows.append({"setting": f"conv3x3 {channels}ch {pixels}px", "batch": batch, "density": d,
                         "results": summary})
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


MLPS = {"paper MLP 784-300-100-10": (300, 100), "wide MLP 784-2048-2048-10": (2048, 2048)}


def bench_mlps(densities: list[float], repeats: int, batch: int) -> list[dict[str, Any]]:
    import torch

    from ertrain.config import TrainConfig
    from ertrain.engines import engine_layers, use_engine
    from ertrain.masks import Masking
    from ertrain.models import build_model

    rows = []
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(batch, 784, generator=g), torch.randint(0, 10, (batch,), generator=g)
    for label, hidden in MLPS.items():
        for d in densities:
            steps, picks = {}, {}
            for engine in ("masked", "sparse", "auto"):
                torch.manual_seed(0)
                model = build_model("mlp", num_classes=10, in_features=784, hidden=hidden)
                masking = Masking.from_scheme(model, "erk", d, torch.Generator().manual_seed(0))
                cfg = TrainConfig(model="mlp", dataset="fashion-mnist", density_scheme="erk", density=d,
                                  batch_size=batch, engine=engine)
                model, masking = use_engine(cfg, model, masking, torch.device("cpu"))
                picks[engine] = engine_layers(masking)
                opt = _sgd(model.parameters())

                def step(model: Any = model, masking: Any = masking, opt: Any = opt) -> None:
                    opt.zero_grad(set_to_none=True)
                    torch.nn.functional.cross_entropy(model(x), y).backward()
                    opt.step()
                    masking.apply_()
                steps[engine] = step
            summary = _summary(_interleave(steps, repeats))
            summary["auto"]["picked"] = picks["auto"]
            rows.append({"setting": label, "batch": batch, "density": d, "results": summary})
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def speed_worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads_one)
    kinds = ["masked", "sparse", "sparse-torch"] + (["sparseprop"] if _has_sparseprop() else [])
    rows = []
    if "linear" in args.only:
        rows += bench_linear(args.densities, args.repeats, args.size, args.batch, kinds)
    if "mlp" in args.only:
        rows += bench_mlps(args.densities, args.repeats, args.batch)
    if "conv" in args.only:
        rows += bench_convs(args.densities, max(3, args.repeats // 2), args.conv_batch,
                            [k for k in kinds if k != "sparse-torch"])
    return {"threads": args.threads_one, "rows": rows}


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _tensor_bytes(module: Any, opt: Any) -> int:
    import torch

    tensors: dict[int, Any] = {}
    for t in [*module.parameters(), *module.buffers()]:
        tensors[id(t)] = t
        if t.grad is not None:
            tensors[id(t.grad)] = t.grad
    for state in opt.state.values():
        tensors.update({id(v): v for v in state.values() if isinstance(v, torch.Tensor)})
    pattern = getattr(module, "pattern", None)
    extra = pattern.nbytes() if pattern is not None else 0
    return extra + sum(t.numel() * t.element_size() for t in tensors.values())


def memory_worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ertrain.masks import Masking
    from ertrain.sparse_train import sparse_layer_for

    torch.set_num_threads(1)
    size, batch, d = args.size, args.batch, args.densities[0]
    warm = sparse_layer_for(torch.nn.Linear(8, 8), torch.ones(8, 8, dtype=torch.bool))
    warm_opt = _sgd(warm.parameters())  # before the baseline: compiled kernels, the optimizer's lazy imports
    warm(torch.randn(2, 8)).sum().backward()
    warm_opt.step()
    g = torch.Generator().manual_seed(1)
    x, gy = torch.randn(batch, size, generator=g), torch.randn(batch, size, generator=g)
    gc.collect()
    baseline = _status_kib("VmRSS")
    layer = torch.nn.Linear(size, size)
    mask = _mask((size, size), d)
    after: Callable[[], None] | None = None
    if args.engine == "masked":
        masking = Masking(torch.nn.Sequential(layer), [mask], [("0", layer)])
        module: Any = layer
        after = masking.apply_
    else:
        module = sparse_layer_for(layer, mask)
        del layer
    del mask
    gc.collect()
    opt = _sgd(module.parameters())
    Path("/proc/self/clear_refs").write_text("5")  # the peak from here on
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        (module(x) * gy).sum().backward()
        opt.step()
        if after is not None:
            after()
    peak = _status_kib("VmHWM")
    return {"engine": args.engine, "density": d, "peak_mib": (peak - baseline) / 1024,
            "tensor_mib": _tensor_bytes(module, opt) / 2**20}


def _has_sparseprop() -> bool:
    import importlib.util

    return importlib.util.find_spec("sparseprop") is not None


#: glibc's fixed mmap threshold: freed large blocks go back to the system at once (without it the dynamic threshold
#: keeps freed blocks of the layer's construction in the heap, and the resident memory measures the allocator).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _worker(extra: list[str], threads: int) -> Any:
    """Run a worker process; only memory workers get :data:`MALLOC_ENV` (in a timed step it would turn every
    activation into fresh pages: an mmap, page faults and an munmap per tensor and step)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "NUMBA_NUM_THREADS": str(threads), **(MALLOC_ENV if "memory" in extra else {})}
    out = subprocess.run([sys.executable, __file__, *extra, "--threads-one", str(threads)], env=env, check=True,
                         stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout)


def _machine() -> dict[str, Any]:
    import numba
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "numba": numba.__version__, "load_average": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default=f"1,{os.cpu_count()}", help="thread counts, comma-separated")
    parser.add_argument("--densities", default=",".join(map(str, DENSITIES)))
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per setting")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--conv-batch", type=int, default=128)
    parser.add_argument("--only", default="linear,mlp,conv,memory")
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--worker", choices=("speed", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--threads-one", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="masked", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.densities = [float(d) for d in str(args.densities).split(",")]
    args.only = set(str(args.only).split(","))
    if args.worker == "speed":
        print(json.dumps(speed_worker(args)))
        return 0
    if args.worker == "memory":
        print(json.dumps(memory_worker(args)))
        return 0
    if args.quick:
        args.size, args.batch, args.conv_batch, args.repeats = 512, 64, 8, 2
    common = ["--size", str(args.size), "--batch", str(args.batch), "--conv-batch", str(args.conv_batch),
              "--repeats", str(args.repeats)]
    speed_parts = ",".join(sorted(args.only - {"memory"}))
    speed = [_worker(["--worker", "speed", "--only", speed_parts, "--densities", ",".join(map(str, args.densities)),
                      *common], int(t)) for t in str(args.threads).split(",")] if speed_parts else []
    memory = [_worker(["--worker", "memory", "--engine", e, "--densities", str(d), *common], 1)
              for d in args.densities for e in ("masked", "sparse")] if "memory" in args.only else []
    doc = {"machine": _machine(), "repeats": args.repeats, "quick": args.quick, "speed": speed, "memory": memory}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
