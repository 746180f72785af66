"""Dense vs sparse (torch CSR) batch inference on CPU: time, memory, file size; crossover sparsity.

For each model and sparsity the masked network (uniform ER masks, so every layer has the
requested density) is run dense (``nn.Linear`` / ``nn.Conv2d`` full of zeros) and after
``ertrain.sparse.to_sparse(max_density=1)`` (every eligible layer in CSR, int32 indices; convs
through ``unfold`` with ``convs="all"``).  Dense and sparse forwards alternate within each repeat,
after a warm-up, so both see the same machine load; we report medians and the median of the
per-repeat ratios.

Memory: bytes of the model's tensors (sparse ones by indices + values).  The activations are the
same in both; the sparse convolutions add an ``unfold`` buffer of ``kh * kw`` times their input.
File size: safetensors of the dense state dict vs ``ertrain.sparse.pack_state_dict`` (bitmask or
CSR per tensor, whichever is smaller), each raw and zlib-compressed (level 6).

Every speed-up is the median of the per-repeat dense/sparse ratios with their range over the repeats,
at the stated batch size(s) and torch thread count.

``--plan`` measures the conversion rule of ``to_sparse`` on the MLP 784-2048x3 at sparsity 0.9 (ER masks
from the ``erk`` scheme: the layers get different densities): for each layer its own speed-up (timed here,
independently of the rule's measurement), whether the fixed rule ``max_density=0.1`` converts it and whether
the measured rule does, and the whole model dense vs converted by either rule, interleaved.

    python3 benchmarks/bench_sparse_inference.py            # the default grid (a few minutes on 1 core)
    python3 benchmarks/bench_sparse_inference.py --models mlp-784-300-100,mlp-784-2048x3 --batches 1,256
    python3 benchmarks/bench_sparse_inference.py --plan --batches 1,256
    python3 benchmarks/bench_sparse_inference.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ertrain.masks import Masking
from ertrain.models import build_model
from ertrain.sparse import (
    SparseLinear,
    clear_timing_cache,
    conversion_plan,
    fold_masks,
    pack_state_dict,
    sparse_layers,
    storage_nbytes,
    to_sparse,
)

MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    # name -> (factory, per-example input shape)
    "mlp-784-300-100": (lambda: build_model("mlp", num_classes=10, in_features=784, hidden=(300, 100)), (784,)),
    "mlp-784-2048x3": (lambda: build_model("mlp", num_classes=10, in_features=784, hidden=(2048, 2048, 2048)),
                       (784,)),
    "resnet20": (lambda: build_model("resnet20", num_classes=10), (3, 32, 32)),
}


def file_sizes(state: dict[str, torch.Tensor]) -> dict[str, int]:
    dense = safetensors_bytes({k: v.contiguous() for k, v in state.items()})
    packed_tensors, _ = pack_state_dict(state)
    packed = safetensors_bytes(packed_tensors)
    return {"dense": len(dense), "dense_zlib": len(zlib.compress(dense, 6)), "packed": len(packed),
            "packed_zlib": len(zlib.compress(packed, 6))}


@torch.no_grad()
def bench_one(name: str, sparsity: float, batch: int, repeats: int, seed: int) -> dict[str, Any]:
    factory, shape = MODELS[name]
    with torch.random.fork_rng():  # the models initialise from torch's global generator: seed a private copy
        torch.manual_seed(seed)
        model = factory().eval()
    masking = Masking.from_scheme(model, "uniform", 1.0 - sparsity, torch.Generator().manual_seed(seed))
    dense = fold_masks(model, masking.masks)
    sparse = to_sparse(dense, max_density=1.0, convs="all")
    x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(seed + 1))
    err = float((sparse(x) - dense(x)).abs().max())
    for _ in range(2):  # warm-up
        dense(x)
        sparse(x)
    t_dense, t_sparse, ratios = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dense(x)
        t1 = time.perf_counter()
        sparse(x)
        t2 = time.perf_counter()
        t_dense.append(t1 - t0)
        t_sparse.append(t2 - t1)
        ratios.append((t1 - t0) / (t2 - t1))
    return {
        "model": name, "sparsity": sparsity, "batch": batch, "repeats": repeats, "max_abs_diff": err,
        "dense_ms": 1e3 * statistics.median(t_dense), "sparse_ms": 1e3 * statistics.median(t_sparse),
        "speedup": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios),
        "dense_model_bytes": storage_nbytes(dense), "sparse_model_bytes": storage_nbytes(sparse),
        "files": file_sizes(dense.state_dict()),
    }


def _time_pair(a: Callable[[], Any], b: Callable[[], Any], repeats: int) -> tuple[float, float, list[float]]:
    """Median times of ``a`` and ``b`` (alternating, after a warm-up) and the per-repeat ratios a/b."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return statistics.median(ta), statistics.median(tb), [x / y for x, y in zip(ta, tb, strict=True)]


@torch.no_grad()
def plan_report(batch: int, repeats: int, seed: int) -> str:
    """Per-layer speed-ups and the two conversion rules on the MLP 784-2048x3 at sparsity 0.9 (ERK masks)."""
    factory, shape = MODELS["mlp-784-2048x3"]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = factory().eval()
    masking = Masking.from_scheme(model, "erk", 0.1, torch.Generator().manual_seed(seed))
    dense = fold_masks(model, masking.masks)
    x = torch.randn((batch, *shape), generator=torch.Generator().manual_seed(seed + 1))
    clear_timing_cache()
    t0 = time.perf_counter()
    plan = conversion_plan(dense, masks=masking.masks, example_input=x)
    t_plan = time.perf_counter() - t0
    fixed = set(sparse_layers(to_sparse(dense, masks=masking.masks, max_density=0.1)))
    measured_model = to_sparse(dense, masks=masking.masks, example_input=x)
    measured = set(sparse_layers(measured_model))
    lines = [f"batch {batch}: plan measured in {t_plan:.2f} s",
             "| layer | shape | density | own speed-up (range) | fixed rule (<= 0.1) | measured rule |",
             "|---|---|---|---|---|---|"]
    modules = dict(dense.named_modules())
    agree = 0
    for name in plan:
        layer = modules[name]
        assert isinstance(layer, nn.Linear)
        sparse_layer = SparseLinear.from_dense(layer, masking.masks[name])
        xin = torch.randn(plan[name].input_shape, generator=torch.Generator().manual_seed(seed + 2))

        def run_dense(layer: nn.Module = layer, xin: torch.Tensor = xin) -> Any:
            return layer(xin)

        def run_sparse(layer: nn.Module = sparse_layer, xin: torch.Tensor = xin) -> Any:
            return layer(xin)

        _, _, ratios = _time_pair(run_dense, run_sparse, repeats)
        own = statistics.median(ratios)
        agree += (own > 1.0) == (name in measured)
        density = float(masking.masks[name].float().mean())
        lines.append(f"| {name} | {tuple(layer.weight.shape)} | {density:.3f} | {own:.2f}x "
                     f"({min(ratios):.2f}-{max(ratios):.2f}) | {'sparse' if name in fixed else 'dense'} "
                     f"| {'sparse' if name in measured else 'dense'} |")
    fixed_model = to_sparse(dense, masks=masking.masks, max_density=0.1)
    t_dense, t_measured, r_measured = _time_pair(lambda: dense(x), lambda: measured_model(x), repeats)
    _, t_fixed, r_fixed = _time_pair(lambda: dense(x), lambda: fixed_model(x), repeats)
    lines.append(f"layers where the measured rule agrees with this run's own timing: {agree}/{len(plan)}")
    lines.append(f"whole model: dense {1e3 * t_dense:.2f} ms; fixed rule {1e3 * t_fixed:.2f} ms "
                 f"(speed-up {statistics.median(r_fixed):.2f}x, range {min(r_fixed):.2f}-{max(r_fixed):.2f}); "
                 f"measured rule {1e3 * t_measured:.2f} ms (speed-up {statistics.median(r_measured):.2f}x, range "
                 f"{min(r_measured):.2f}-{max(r_measured):.2f})")
    return "\n".join(lines)


def crossover(rows: list[dict[str, Any]]) -> float | None:
    """Smallest measured sparsity from which on sparse inference is faster at every larger measured sparsity."""
    rows = sorted(rows, key=lambda r: r["sparsity"])
    best = None
    for r in reversed(rows):
        if r["speedup"] <= 1.0:
            break
        best = r["sparsity"]
    return best


def _mb(n: int) -> str:
    return f"{n / 2**20:.2f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| model | sparsity | batch | dense ms | sparse ms | speed-up (range) | model MiB dense/sparse (ratio) "
            "| file KiB dense / dense+zlib / packed / packed+zlib | dense/packed+zlib |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        f = r["files"]
        lines.append(
            f"| {r['model']} | {r['sparsity']:g} | {r['batch']} | {r['dense_ms']:.2f} | {r['sparse_ms']:.2f} "
            f"| {r['speedup']:.2f}x ({r['speedup_min']:.2f}-{r['speedup_max']:.2f}) "
            f"| {_mb(r['dense_model_bytes'])}/{_mb(r['sparse_model_bytes'])} "
            f"({r['dense_model_bytes'] / r['sparse_model_bytes']:.1f}x) "
            f"| {f['dense'] / 1024:.0f} / {f['dense_zlib'] / 1024:.0f} / {f['packed'] / 1024:.0f} / "
            f"{f['packed_zlib'] / 1024:.0f} | {f['dense'] / f['packed_zlib']:.1f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--sparsities", default="0.5,0.8,0.9,0.95,0.98,0.99", help="comma-separated sparsities")
    parser.add_argument("--conv-sparsities", default="0.5,0.9,0.99", help="sparsities for the ResNet")
    parser.add_argument("--batches", default="256", help="comma-separated MLP batch sizes (ResNet: a quarter)")
    parser.add_argument("--plan", action="store_true", help="measure to_sparse's conversion rule instead")
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats (ResNet: a third of them)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write all rows to this JSON file")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sparsities = [float(s) for s in args.sparsities.split(",")]
    names = args.models.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; valid: {', '.join(MODELS)}")
    batches = [int(b) for b in args.batches.split(",")]
    print(f"torch {torch.__version__}, {args.threads} thread(s), batches {batches}, {args.repeats} repeats")
    if args.plan:
        for batch in batches:
            print(plan_report(batch, args.repeats, args.seed))
        return 0
    if args.quick:
        sparsities, args.repeats, args.conv_sparsities = [0.5, 0.99], 3, "0.99"
    rows = []
    for name in names:
        conv = name.startswith("resnet")
        for b in batches:
            batch = max(b // 4, 1) if conv else b
            repeats = max(args.repeats // 3, 3) if conv else args.repeats
            for s in [float(v) for v in args.conv_sparsities.split(",")] if conv else sparsities:
                row = bench_one(name, s, batch, repeats, args.seed)
                rows.append(row)
                print(f"{name} sparsity {s:g} batch {batch}: dense {row['dense_ms']:.2f} ms, sparse "
                      f"{row['sparse_ms']:.2f} ms, speed-up {row['speedup']:.2f}x", file=sys.stderr, flush=True)
    print(markdown(rows))
    print()
    for name in names:
        for b in sorted({r["batch"] for r in rows if r["model"] == name}):
            c = crossover([r for r in rows if r["model"] == name and r["batch"] == b])
            print(f"- {name}, batch {b}: sparse CSR inference wins from sparsity "
                  f"{c if c is not None else 'none measured'} on")
    if args.json is not None:
        args.json.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
