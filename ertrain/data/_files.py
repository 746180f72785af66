"""Cheap digests of data files, for the data fingerprint that enters a run's identity.

A file is described by its name (relative to the dataset's folder), its size and a SHA-256 of sampled
blocks: the first and last 64 KiB and eight 4 KiB blocks spread evenly between them.  Headers (IDX
dimensions, gzip headers and trailers with their CRC) are always covered; reading costs at most
about 160 KiB per file, whatever its size.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

HEAD = 64 * 1024
TAIL = 64 * 1024
BLOCK = 4 * 1024
BLOCKS = 8


def sampled_digest(path: Path) -> str:
    """SHA-256 (hex) of the head, the tail and ``BLOCKS`` evenly spaced blocks of ``path``."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if size <= HEAD + TAIL + BLOCKS * BLOCK:
                fh.seek(0)
                h.update(fh.read())
            else:
                offsets = [0] + [HEAD + k * (size - HEAD - TAIL) // BLOCKS for k in range(BLOCKS)] + [size - TAIL]
                lengths = [HEAD] + [BLOCK] * BLOCKS + [TAIL]
                for offset, length in zip(offsets, lengths, strict=True):
                    fh.seek(offset)
                    h.update(fh.read(length))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read data file ({exc.strerror or exc})") from exc
    return h.hexdigest()


def describe_files(root: Path, paths: Iterable[Path], *, digests: int = 64) -> list[str]:
    """One line per file, ``<name relative to root>:<size>[:<sampled digest>]``, sorted by name.

    With more than ``digests`` files (Tiny ImageNet's 110k images) only ``digests`` evenly spaced files of
    the most common suffix get a digest, besides every file of another suffix (class lists, annotations).
    """
    ordered = sorted(paths)
    suffixes = Counter(p.suffix for p in ordered)
    common = suffixes.most_common(1)[0][0] if ordered else ""
    step = max(1, len(ordered) // digests)
    lines = []
    for k, path in enumerate(ordered):
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ValueError(f"{path}: cannot read data file ({exc.strerror or exc})") from exc
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        sampled = len(ordered) <= digests or path.suffix != common or k % step == 0
        lines.append(f"{name}:{size}" + (f":{sampled_digest(path)}" if sampled else ""))
    return lines


__all__ = ["describe_files", "sampled_digest"]
