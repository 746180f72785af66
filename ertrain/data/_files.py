"""Digests of data files, for the data fingerprint that enters a run's identity.

Version 2 (current): a file is described by its name (relative to the dataset's folder), its size and the
SHA-256 of every byte (:func:`full_digest`), so a change anywhere in a file is seen.  Reading every byte
costs time once: a digest is cached (:class:`DigestCache`) under the file's ``(size, mtime_ns, ctime_ns,
inode, device)``.  Writing a file changes its mtime and ctime (and ``os.utime`` cannot set the ctime back),
so a cached digest is served only for a file nobody wrote since.  A file written less than
:data:`RACY_SECONDS` before it was hashed is not cached (its timestamps may not tell a second write in the
same clock tick apart).  The cache is a JSON file per dataset folder under ``$ERTRAIN_CACHE_DIR`` (default
``$XDG_CACHE_HOME/ertrain``, else ``~/.cache/ertrain``); ``ERTRAIN_CACHE_DIR=""`` switches it off.  A cache
that cannot be read or written only costs time.  docs/data_identity.md gives the measured costs.

Version 1 (runs trained before; kept so that their stored identity can still be checked): the SHA-256 of
sampled blocks -- the first and last 64 KiB and eight 4 KiB blocks spread evenly between them
(:func:`sampled_digest`) -- and, beyond 64 files, a digest for 64 evenly spaced files only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ertheory.fileio import atomic_write_text

HEAD = 64 * 1024
TAIL = 64 * 1024
BLOCK = 4 * 1024
BLOCKS = 8

#: Bytes read at a time by :func:`full_digest`.
CHUNK = 1 << 20
#: A file modified less than this before it was hashed gets no cache entry (see the module docstring).
RACY_SECONDS = 2.0
#: The digest kinds of :func:`describe_files`: ``full`` (fingerprint version 2) and ``sampled`` (version 1).
DIGESTS = ("full", "sampled")


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


def full_digest(path: Path) -> str:
    """SHA-256 (hex) of every byte of ``path``."""
    h = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as fh:
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while n := fh.readinto(buf):
                h.update(view[:n])
    except OSError as exc:
        raise ValueError(f"{path}: cannot read data file ({exc.strerror or exc})") from exc
    return h.hexdigest()


def cache_dir() -> Path | None:
    """Where digest caches live (``$ERTRAIN_CACHE_DIR``, else ``$XDG_CACHE_HOME/ertrain``, else
    ``~/.cache/ertrain``); None when ``ERTRAIN_CACHE_DIR`` is set empty (no cache)."""
    explicit = os.environ.get("ERTRAIN_CACHE_DIR")
    if explicit is not None:
        return Path(explicit) if explicit.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ertrain"


def _stamp(st: os.stat_result) -> list[int]:
    """What a cached digest is valid for: size, mtime, ctime (ns), inode and device."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class DigestCache:
    """Full digests of the files of one folder, keyed by name and valid for one :func:`_stamp`."""

    def __init__(self, root: Path) -> None:
        where = cache_dir()
        key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        self.path = None if where is None else where / "file-digests" / f"{key}.json"
        self.entries: dict[str, Any] = {}
        self.changed = False
        if self.path is not None:
            with contextlib.suppress(OSError, ValueError):
                loaded = json.loads(self.path.read_text())
                if isinstance(loaded, dict) and loaded.get("root") == str(root.resolve()):
                    self.entries = dict(loaded.get("files") or {})

    def digest(self, name: str, path: Path, st: os.stat_result) -> str:
        """The full digest of ``path`` (named ``name``), from the cache when ``st`` matches its entry."""
        stamp = _stamp(st)
        entry = self.entries.get(name)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == stamp:
            return str(entry[1])
        digest = full_digest(path)
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > RACY_SECONDS * 1e9:
            self.entries[name] = [stamp, digest]
            self.changed = True
        else:
            self.entries.pop(name, None)
        return digest

    def save(self, root: Path) -> None:
        """Write the cache back if it changed (best effort: a cache that cannot be written only costs time)."""
        if self.path is None or not self.changed:
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps({"root": str(root.resolve()), "files": self.entries}, separators=(",", ":"))
            atomic_write_text(self.path, text, durable=False)


def describe_files(root: Path, paths: Iterable[Path], *, digests: int = 64, digest: str = "full") -> list[str]:
    """One line per file, ``<name relative to root>:<size>[:<digest>]``, sorted by name.

    ``digest="full"``: every file's full digest (cached, see the module docstring).  ``digest="sampled"``
    (fingerprint version 1): sampled digests; with more than ``digests`` files (Tiny ImageNet's 110k
    images) only ``digests`` evenly spaced files of the most common suffix get one, besides every file of
    another suffix (class lists, annotations).
    """
    if digest not in DIGESTS:
        raise ValueError(f"unknown digest {digest!r}; valid: {', '.join(DIGESTS)}")
    if digest == "full":
        return _describe_full(root, sorted(paths))
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


def _describe_full(root: Path, ordered: list[Path]) -> list[str]:
    """:func:`describe_files` with full digests."""
    cache = DigestCache(root)
    lines = []
    for path in ordered:
        try:
            st = path.stat()
        except OSError as exc:
            raise ValueError(f"{path}: cannot read data file ({exc.strerror or exc})") from exc
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        lines.append(f"{name}:{st.st_size}:{cache.digest(name, path, st)}")
    cache.save(root)
    return lines


__all__ = ["DIGESTS", "DigestCache", "cache_dir", "describe_files", "full_digest", "sampled_digest"]
