"""What the figure scripts share: a caption line under every figure and deterministic PNG/CSV files.

Files are written atomically with the user's umask (:mod:`ertheory.fileio`).  A PNG carries no
``Software`` entry (matplotlib's version) and no time stamp, and a CSV writes floats as their shortest
round-trip decimal, so the same inputs give byte-identical files.  A write that fails (a full disk) raises
``ValueError`` naming the file and the cause, which the scripts print as one line (exit status 2); nothing
half-written is left.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ertheory.fileio import atomic_write_bytes, atomic_write_text

#: PNG metadata for ``savefig``: ``None`` drops matplotlib's default ``Software`` entry.
PNG_METADATA: dict[str, str | None] = {"Software": None}

#: Fraction of the figure height kept free at the bottom for the caption.
CAPTION_HEIGHT = 0.07


def check_out_dir(text: str | Path) -> Path:
    """An output directory that can be created or written, checked without creating anything.

    Refused with a ``ValueError``: an empty path (it would silently mean the current directory), an existing
    file, a path under a file, a directory (or nearest existing parent) that the user cannot write.
    """
    from ertheory.cli_util import out_dir

    return out_dir(str(text))


def cell(value: Any) -> str:
    """One CSV cell: ``None`` empty, numpy scalars as Python numbers, floats by ``repr`` (shortest round trip)."""
    if value is None:
        return ""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The CSV document (``\\n`` line ends) of ``header`` and ``rows``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a CSV row has {len(row)} cells, the header {len(header)}: {list(row)!r}")
        writer.writerow([cell(v) for v in row])
    return buf.getvalue()


def _failed_save(path: Path, exc: OSError) -> ValueError:
    return ValueError(f"cannot save {path}: {exc.strerror or exc}")


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write ``header`` and ``rows`` to ``path`` atomically."""
    try:
        return atomic_write_text(path, csv_text(header, rows), durable=False)
    except OSError as exc:
        raise _failed_save(path, exc) from exc


def layout(fig: Any, caption: str, height: float = CAPTION_HEIGHT) -> None:
    """``tight_layout`` above a strip of ``height`` (figure fraction) holding ``caption``, one wrapped line."""
    fig.tight_layout(rect=(0.0, height, 1.0, 1.0))
    fig.text(0.01, 0.012, caption, ha="left", va="bottom", fontsize=7.5, wrap=True, color="0.25")


def save_png(fig: Any, path: Path, dpi: int) -> Path:
    """Render ``fig`` to PNG without metadata that changes between runs and write it to ``path`` atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata=PNG_METADATA)
    try:
        return atomic_write_bytes(path, buf.getvalue(), durable=False)
    except OSError as exc:
        raise _failed_save(path, exc) from exc
