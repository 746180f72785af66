"""Data-pipeline overhead: an epoch with the on-device loader vs the same steps on ready-made batches.

The loader shuffles with a seeded generator, gathers each batch by indexing the whole dataset held
on the device and (for CIFAR-shaped data) crops and flips it on the device.  The reference epoch
runs the identical training step (forward, backward, SGD step, mask re-application) on the same
number of batches gathered and augmented beforehand, so the ratio of the two medians is the
loader's share of an epoch.
Both are measured in the same process, interleaved, after a warm-up.

    python benchmarks/bench_data.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch

from ertrain.config import TrainConfig
from ertrain.trainer import Trainer

CASES: dict[str, dict[str, Any]] = {
    "mlp / fashion-mnist (12800 examples, no augmentation)": dict(
        model="mlp", dataset="fashion-mnist", data_options={"limit_train": 12800},
    ),
    "resnet20 / synthetic-cifar (640 examples, crop+flip)": dict(
        model="resnet20", dataset="synthetic-cifar", data_options={"n_train": 640, "n_test": 128},
    ),
}


def time_epoch(trainer: Trainer, opt: torch.optim.Optimizer) -> float:
    t0 = time.perf_counter()
    trainer._train_epoch(opt, ())
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure(case: dict[str, Any], repeats: int, device: str) -> dict[str, float]:
    cfg = TrainConfig(density_scheme="balanced", density=0.1, epochs=1, device=device, **case)
    trainer = Trainer.from_config(cfg, progress=False)
    opt = trainer.make_optimizer()
    real_batches = trainer.train_batches
    ready = [(x.clone(), y.clone(), n) for x, y, n in real_batches()]
    steps = len(ready)

    def fixed() -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        yield from ready

    def loader_only() -> float:
        t0 = time.perf_counter()
        for _batch in real_batches():
            pass
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with_loader: list[float] = []
    without: list[float] = []
    alone: list[float] = []
    time_epoch(trainer, opt)  # warm-up
    for _ in range(repeats):
        trainer.train_batches = real_batches  # type: ignore[method-assign]
        with_loader.append(time_epoch(trainer, opt))
        trainer.train_batches = fixed  # type: ignore[method-assign]
        without.append(time_epoch(trainer, opt))
        alone.append(loader_only())
    a, b = statistics.median(with_loader), statistics.median(without)
    return {"epoch_with_loader_s": a, "epoch_fixed_batch_s": b, "ratio": a / b,
            "loader_alone_s": statistics.median(alone), "steps": steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"device {args.device}, {args.threads} thread(s), median of {args.repeats}; density 0.1 balanced ER")
    print(f"{'case':58} {'steps':>5} {'loader ep s':>11} {'fixed ep s':>10} {'ratio':>7} {'loader alone s':>14}")
    for name, case in CASES.items():
        r = measure(case, args.repeats, args.device)
        print(f"{name:58} {r['steps']:5d} {r['epoch_with_loader_s']:11.3f} {r['epoch_fixed_batch_s']:10.3f} "
              f"{r['ratio']:7.3f} {r['loader_alone_s']:14.4f}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
