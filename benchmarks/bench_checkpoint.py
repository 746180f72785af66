"""Checkpoint write against plain ``torch.save``: ResNet18 (CIFAR) weights + SGD momentum, interleaved repeats.

    python benchmarks/bench_checkpoint.py [--repeats 7]

Prints the median times and their ratio, measured in one run (the floor is ``ertrain`` <= 1.2x ``torch.save``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def state() -> dict[str, object]:
    from ertrain.models import build_model

    model = build_model("resnet18", num_classes=10, stem="cifar")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    from ertrain.rundir import save_checkpoint

    st = state()
    plain, ours = [], []
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for _ in range(args.repeats):
            t = time.perf_counter()
            with open(folder / "plain.pt", "wb") as fh:
                torch.save(st, fh)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            save_checkpoint(folder, st, "0" * 16)
            ours.append(time.perf_counter() - t)
        size = (folder / "plain.pt").stat().st_size
    p, o = statistics.median(plain), statistics.median(ours)
    print(f"checkpoint of {size / 2**20:.1f} MiB, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved repeats")
    print(f"torch.save      median {p:.3f} s (range {min(plain):.3f}-{max(plain):.3f})")
    print(f"save_checkpoint median {o:.3f} s (range {min(ours):.3f}-{max(ours):.3f})")
    print(f"ratio {o / p:.2f}")


if __name__ == "__main__":
    main()
