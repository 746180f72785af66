"""Cost of the data fingerprint: sampled blocks (version 1) against every byte (version 2), cold and warm,
and version 2 served from its digest cache, on synthetic files the size of the real data sets.

    OMP_NUM_THREADS=1 python benchmarks/bench_data_identity.py --repeats 3

Data sets (random bytes, the real layouts' file counts and sizes):

* ``cifar10``: 6 files of 30,730,000 bytes (``cifar-10-batches-bin``: 5 training batches and the test batch);
* ``cifar100``: ``train.bin`` (153,650,000 bytes) and ``test.bin`` (30,730,000 bytes);
* ``tiny-imagenet``: 110,000 files of 2,300 bytes (100,000 training and 10,000 validation JPEGs; 253 MB).

"cold" drops each file's pages from the page cache first (``posix_fadvise(DONTNEED)``), as after a reboot or
when the data set is larger than the memory left; "warm" reads from the page cache.  "cached" is version 2
after a first call filled the digest cache (one ``stat`` per file, a JSON cache to read).  Medians of
``--repeats`` calls, with the range; ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ertrain.data import _files

SETS: dict[str, list[tuple[str, int]]] = {
    "cifar10": [(f"data_batch_{k}.bin", 30_730_000) for k in range(1, 6)] + [("test_batch.bin", 30_730_000)],
    "cifar100": [("train.bin", 153_650_000), ("test.bin", 30_730_000)],
    "tiny-imagenet": [(f"{'train' if k < 100_000 else 'val'}/{k // 1000:03d}/img_{k}.JPEG", 2_300)
                      for k in range(110_000)],
}


def make_set(root: Path, files: list[tuple[str, int]]) -> list[Path]:
    """Write ``files`` (name, size) of random bytes under ``root``; return their paths."""
    paths = []
    rng_block = os.urandom(1 << 22)
    for k, (name, size) in enumerate(files):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            left, offset = size, (k * 7919) % (1 << 20)
            while left:
                chunk = rng_block[offset : offset + min(left, (1 << 22) - offset)]
                fh.write(chunk)
                left -= len(chunk)
                offset = 0
            fh.write(k.to_bytes(8, "little"))  # every file differs
        paths.append(path)
    return paths


def drop_cache(paths: list[Path]) -> None:
    """Drop the (clean: written back by ``os.sync`` after creation) pages of ``paths`` from the page cache."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(fn: Callable[[], object], repeats: int, before: Callable[[], None] | None = None) -> list[float]:
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def fmt(times: list[float]) -> str:
    return f"{statistics.median(times):.3f} s ({min(times):.3f}-{max(times):.3f})"


def bench_set(name: str, base: Path, repeats: int) -> dict[str, object]:
    root = base / name
    paths = make_set(root, SETS[name])
    total = sum(p.stat().st_size for p in paths)
    os.sync()
    time.sleep(_files.RACY_SECONDS + 0.5)  # the files are old enough to be cached
    cache = base / "cache"
    os.environ["ERTRAIN_CACHE_DIR"] = ""  # no cache: every call reads every byte

    def sampled() -> object:
        return _files.describe_files(root, paths, digest="sampled")

    def full() -> object:
        return _files.describe_files(root, paths, digest="full")

    out: dict[str, object] = {"set": name, "files": len(paths), "bytes": total}
    for key, fn, before in (("sampled_cold", sampled, lambda: drop_cache(paths)), ("sampled_warm", sampled, None),
                            ("full_cold", full, lambda: drop_cache(paths)), ("full_warm", full, None)):
        out[key] = timed(fn, repeats, before)
        print(f"#   {name} {key}: {fmt(out[key])}", flush=True)  # type: ignore[arg-type]
    os.environ["ERTRAIN_CACHE_DIR"] = str(cache)
    full()  # fills the cache
    out["full_cached"] = timed(full, repeats)
    out["cache_bytes"] = sum(p.stat().st_size for p in cache.rglob("*.json"))
    shutil.rmtree(cache)
    shutil.rmtree(root)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--dir", default=None, help="folder for the synthetic files (default: a temporary one)")
    parser.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-data-identity-", dir=args.dir))
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"python {platform.python_version()}, files in {base}")
    print("| data set | files | MB | sampled (v1) cold | sampled warm | full (v2) cold | full warm | v2 cached |"
          " cold full / sampled |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = []
    try:
        for name in args.sets:
            r = bench_set(name, base, args.repeats)
            results.append(r)
            ratio = statistics.median(r["full_cold"]) / statistics.median(r["sampled_cold"])  # type: ignore[arg-type]
            print(f"| {name} | {r['files']:,} | {r['bytes'] / 1e6:.0f} | {fmt(r['sampled_cold'])} | "  # type: ignore[arg-type]
                  f"{fmt(r['sampled_warm'])} | {fmt(r['full_cold'])} | {fmt(r['full_warm'])} | "  # type: ignore[arg-type]
                  f"{fmt(r['full_cached'])} | {ratio:.1f}x |", flush=True)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"# load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
