"""Masked training step vs dense step vs ``torch.nn.utils.prune``-style masking, on the CPU.

Three versions of one SGD (momentum 0.9, weight decay 5e-4) training step on the same model and
batch:

* ``dense``:  forward, backward, ``optimizer.step()``;
* ``masked``: the same, then ``Masking.apply_()`` (one fused multiply re-zeroing pruned weights);
* ``dense_copy``: a second copy of ``dense``; its ratio to ``dense`` is the noise floor of the run;
* ``prune``:  ``torch.nn.utils.prune.custom_from_mask`` on every masked layer, i.e. a forward
  pre-hook recomputing ``weight = weight_orig * mask`` in every forward (what users would otherwise use).

The variants are timed interleaved (one round = each variant once, in rotating order) in one
process, so the ratios share the machine's load; the ratio of medians and the median of the
per-round (paired) ratios are reported, with the cost of ``apply_`` alone.

    python benchmarks/bench_masking.py                      # MLP and ResNet20, 1 thread
    python benchmarks/bench_masking.py --threads 2 --json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import prune

from ertrain.masks import Masking
from ertrain.models import build_model, layer_weight


def make_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, after: Callable[[], None] | None
) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if after is not None:
            after()

    return step


def variants(
    name: str, batch: int, density: float, seed: int
) -> tuple[dict[str, Callable[[], None]], int, Callable[[], None]]:
    g = torch.Generator().manual_seed(seed)
    kw: dict = {"num_classes": 10}
    if name == "mlp":
        kw.update(in_features=784)
        x = torch.randn(batch, 784, generator=g)
    else:
        x = torch.randn(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    torch.manual_seed(seed)
    base = build_model(name, **kw)
    dense = copy.deepcopy(base)
    masked = copy.deepcopy(base)
    masking = Masking.from_scheme(masked, "uniform", density, torch.Generator().manual_seed(seed))
    pruned = copy.deepcopy(base)
    modules = dict(pruned.named_modules())
    for layer_name, mask in masking.masks.items():
        prune.custom_from_mask(modules[layer_name], "weight", mask.float())
    steps = {
        "dense": make_step(dense, x, y, None),
        "dense_copy": make_step(copy.deepcopy(base), x, y, None),
        "masked": make_step(masked, x, y, masking.apply_),
        "prune": make_step(pruned, x, y, None),
    }
    n_params = sum(layer_weight(m).numel() for m in masking.layers.values())
    return steps, n_params, masking.apply_


def bench(name: str, batch: int, density: float, repeats: int, steps_per_repeat: int, seed: int) -> dict:
    steps, n_params, apply_ = variants(name, batch, density, seed)
    for fn in steps.values():  # warm-up
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {k: [] for k in steps}
    keys = list(steps)
    for r in range(repeats):
        for key in keys[r % len(keys) :] + keys[: r % len(keys)]:  # rotate the order: no variant always runs first
            t0 = time.perf_counter()
            for _ in range(steps_per_repeat):
                steps[key]()
            times[key].append((time.perf_counter() - t0) / steps_per_repeat)
    med = {k: statistics.median(v) for k, v in times.items()}
    # paired ratios: the variants of one round ran back to back, under the same machine load
    paired = {k: statistics.median(a / b for a, b in zip(times[k], times["dense"], strict=True)) for k in keys}
    apply_times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(20):
            apply_()
        apply_times.append((time.perf_counter() - t0) / 20)
    return {
        "model": name,
        "batch": batch,
        "density": density,
        "masked_params": n_params,
        "median_step_ms": {k: 1e3 * v for k, v in med.items()},
        "masked_over_dense": med["masked"] / med["dense"],
        "prune_over_dense": med["prune"] / med["dense"],
        "prune_over_masked": med["prune"] / med["masked"],
        "paired_masked_over_dense": paired["masked"],
        "noise_floor_dense_copy_over_dense": paired["dense_copy"],
        "paired_prune_over_dense": paired["prune"],
        "apply_ms": 1e3 * statistics.median(apply_times),
        "apply_over_dense_step": statistics.median(apply_times) / med["dense"],
        "spread_ms": {k: [1e3 * min(v), 1e3 * max(v)] for k, v in times.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15, help="rounds for ResNet20 (10x as many for the MLP)")
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--mlp-batch", type=int, default=128)
    parser.add_argument("--resnet-batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [
        bench("mlp", args.mlp_batch, args.density, 10 * args.repeats, 5, args.seed),
        bench("resnet20", args.resnet_batch, args.density, args.repeats, 1, args.seed),
    ]
    meta = {"torch": torch.__version__, "threads": args.threads, "cpu": platform.processor() or platform.machine()}
    if args.json:
        json.dump({"meta": meta, "results": results}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(
        "ratios: of medians (median of paired per-round ratios); apply_ = masking call alone / dense step; "
        "A/A = dense copy / dense (paired), the noise floor"
    )
    print(f"torch {meta['torch']}, {args.threads} thread(s), density {args.density}, medians of {args.repeats}")
    print(
        f"{'model':<9}{'batch':>6}{'dense ms':>10}{'masked ms':>11}{'prune ms':>10}  {'masked/dense':<16}"
        f"{'prune/dense':<16}{'apply_/dense':>12}{'A/A':>7}"
    )
    for r in results:
        ms = r["median_step_ms"]
        md = f"{r['masked_over_dense']:.3f} ({r['paired_masked_over_dense']:.3f})"
        pd = f"{r['prune_over_dense']:.3f} ({r['paired_prune_over_dense']:.3f})"
        print(
            f"{r['model']:<9}{r['batch']:>6}{ms['dense']:>10.3f}{ms['masked']:>11.3f}{ms['prune']:>10.3f}  "
            f"{md:<16}{pd:<16}{r['apply_over_dense_step']:>12.4f}{r['noise_floor_dense_copy_over_dense']:>7.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
