"""Checkpoint write (and read) against plain ``torch``: ResNet18 (CIFAR) weights + SGD momentum, interleaved repeats.

    python benchmarks/bench_checkpoint.py [--repeats 7] [--read-repeats 3]

Prints the median times, their ranges and the ratios, measured in one run: ``save_checkpoint`` against
``torch.save`` into an open file that overwrites the previous one (the floor is <= 1.2x) and against
``torch.save`` into a new file (the previous one removed first: no truncation to pay), and
``read_checkpoint`` (every check) against ``torch.load``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch


def state() -> dict[str, object]:
    from ertrain.models import build_model

    model = build_model("resnet18", num_classes=10, stem="cifar")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 1}


def interleaved(repeats: int, *fns: Callable[[], object]) -> list[list[float]]:
    """Wall times of ``repeats`` rounds, each calling every function once in turn."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return times


def report(what: str, rows: dict[str, list[float]]) -> None:
    """One line per function (median and range); then the last one's ratio to each of the others."""
    for name, times in rows.items():
        print(f"{what}: {name:<26} median {statistics.median(times):.3f} s "
              f"(range {min(times):.3f}-{max(times):.3f})")
    *plain, (ours_name, ours) = rows.items()
    for name, times in plain:
        print(f"{what}: ratio {ours_name} / {name}: {statistics.median(ours) / statistics.median(times):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved writes of each (default 7)")
    parser.add_argument("--read-repeats", type=int, default=3, help="interleaved reads of each; 0: no reads")
    args = parser.parse_args()
    if args.repeats < 1 or args.read_repeats < 0:
        parser.error(f"--repeats must be >= 1 and --read-repeats >= 0 (got {args.repeats}, {args.read_repeats})")
    from ertrain.rundir import CHECKPOINT, read_checkpoint, save_checkpoint

    st = state()
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)

        def plain_save() -> None:
            with open(folder / "plain.pt", "wb") as fh:
                torch.save(st, fh)

        def fresh_save() -> None:
            (folder / "fresh.pt").unlink(missing_ok=True)
            with open(folder / "fresh.pt", "wb") as fh:
                torch.save(st, fh)

        writes = interleaved(args.repeats, plain_save, fresh_save, lambda: save_checkpoint(folder, st, "0" * 16))
        size = (folder / "plain.pt").stat().st_size
        reads = interleaved(args.read_repeats, lambda: torch.load(folder / "plain.pt", weights_only=True),
                            lambda: read_checkpoint(folder / CHECKPOINT))
    print(f"checkpoint of {size / 2**20:.1f} MiB, {torch.get_num_threads()} threads, "
          f"{args.repeats} interleaved writes, {args.read_repeats} interleaved reads")
    report("write", dict(zip(["torch.save (overwrite)", "torch.save (new file)", "save_checkpoint"], writes,
                             strict=True)))
    if args.read_repeats:
        report("read", dict(zip(["torch.load", "read_checkpoint"], reads, strict=True)))


if __name__ == "__main__":
    main()
