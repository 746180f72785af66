"""Execute the notebooks top to bottom: convert each paired ``NN_*.py`` (jupytext percent format) to a notebook,
run it with nbclient in a fresh ``python3`` kernel, and write the executed ``.ipynb`` beside it (git-ignored).

``--small`` (or ``ERTOOLKIT_SMALL=1`` in the environment) selects the quick settings every notebook reads from
``ERTOOLKIT_SMALL``.  Any cell error stops that notebook and makes the exit status 1.  ``--only STEM`` runs one.

    python3 notebooks/run_all.py --small
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def notebook_sources(folder: Path = HERE) -> list[Path]:
    """The paired notebook sources ``NN_name.py`` of ``folder``, in order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.py"))


def execute(source: Path, *, timeout: int = 900, write: bool = True) -> float:
    """Run one notebook source; return its wall time in seconds.  Raises ``nbclient``'s
    ``CellExecutionError`` on the first failing cell.

    The kernel talks to this process over Unix domain sockets in a private temporary folder (``ipc``
    transport) rather than over TCP on localhost: nothing else on the machine can connect to it, and the
    kernel has no reason to warn about running over TCP without encryption.
    """
    import jupytext
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = jupytext.read(source)
    with tempfile.TemporaryDirectory(prefix="ertoolkit-kernel-") as sockets:
        km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
        client = NotebookClient(
            nb, km=km, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}
        )
        t0 = time.perf_counter()
        client.execute()
        elapsed = time.perf_counter() - t0
    if write:
        out = source.with_suffix(".ipynb")
        tmp = out.with_name(f".{out.stem}.tmp.ipynb")
        jupytext.write(nb, tmp, fmt="ipynb")
        os.replace(tmp, out)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="quick settings (sets ERTOOLKIT_SMALL=1)")
    parser.add_argument("--only", help="run only the notebook with this stem, e.g. 01_bounds_and_figure2")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell (default 900)")
    parser.add_argument("--no-write", action="store_true", help="do not write the executed .ipynb files")
    args = parser.parse_args(argv)
    if args.small:
        os.environ["ERTOOLKIT_SMALL"] = "1"  # the kernels inherit the environment
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    sources = notebook_sources()
    if args.only:
        stems = [p.stem for p in sources]
        if args.only not in stems:
            raise SystemExit(f"unknown notebook {args.only!r}; valid: {', '.join(stems)}")
        sources = [p for p in sources if p.stem == args.only]
    from nbclient.exceptions import CellExecutionError

    failed = []
    for src in sources:
        print(f"[notebooks] {src.name} ...", flush=True)
        try:
            elapsed = execute(src, timeout=args.timeout, write=not args.no_write)
        except CellExecutionError as exc:
            print(f"[notebooks] {src.name} FAILED:\n{exc}", file=sys.stderr, flush=True)
            failed.append(src.name)
            continue
        print(f"[notebooks] {src.name} done in {elapsed:.1f} s", flush=True)
    if failed:
        print(f"[notebooks] failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
