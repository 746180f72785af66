"""Atomic file writes that respect the user's umask (one implementation for both packages).

A write goes to a temporary file in the target's folder, is flushed, and replaces the target with
one ``os.replace``: a reader sees the old file or the new one, never a torn one, whatever kills the
writer.  ``tempfile.mkstemp`` creates files with mode 0600; the final file gets ``0666 & ~umask``
like any file the user creates.  Temporary names start with ``.`` and end with ``.tmp`` so that
:func:`remove_stale_temporaries` can clean what an interrupted write left behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()
TMP_SUFFIX = ".tmp"


def current_umask() -> int:
    """The process umask (read without changing it for longer than two system calls)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[Any]], object], *, binary: bool = False,
                 durable: bool = True, keep_previous: str | Path | None = None) -> Path:
    """Write ``path`` atomically: ``write(fh)`` fills a temporary file that then replaces ``path``.

    ``durable`` also fsyncs the data before the rename (survives a power cut, not only a kill);
    ``keep_previous`` renames the existing ``path`` there just before the new file takes its place.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # name the file a full disk failed to take
            raise named_os_error(exc, path) from exc
        raise
    return path


def named_os_error(exc: OSError, path: str | Path) -> OSError:
    """``exc`` (an ``OSError`` without a file name, e.g. from a write) as the same error naming ``path``."""
    strerror = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__)
    return OSError(exc.errno, strerror, str(path))


def atomic_write_text(path: str | Path, text: str, *, durable: bool = True) -> Path:
    """:func:`atomic_write` of a string."""
    return atomic_write(path, lambda fh: fh.write(text), durable=durable)


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> Path:
    """:func:`atomic_write` of bytes."""
    return atomic_write(path, lambda fh: fh.write(data), binary=True, durable=durable)


def remove_stale_temporaries(folder: str | Path) -> list[str]:
    """Delete the temporary files that interrupted atomic writes left in ``folder``; return their names.

    Call it only while holding the folder's lock (a concurrent writer's temporary looks the same).
    """
    removed = []
    for entry in Path(folder).glob(f".*{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            removed.append(entry.name)
    return sorted(removed)


__all__ = [
    "atomic_write", "atomic_write_bytes", "atomic_write_text", "current_umask", "named_os_error",
    "remove_stale_temporaries",
]
