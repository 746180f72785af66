"""Where every directory under a runs directory stands, so that a report leaves nothing out unsaid.

Each folder ``ertrain report`` is pointed at (every non-hidden sub-folder of the runs directory, or every run
of a sweep file) is one :class:`RunAccount` in one of :data:`RUN_STATES`:

==============  ==============================================================================================
``finished``    a readable ``result.json`` and ``config.json``: the run enters the table
``unfinished``  a run directory without a result (interrupted, or being trained now: ``detail`` says which)
``failed``      ``error.json`` and no result: ``detail`` holds the error's type and message
``torn``        a ``result.json`` (or ``config.json``) that exists but cannot be read, or one set aside as
                ``result.json.torn`` and not finished again since
``foreign``     a folder that is not a run directory (no ``config.json``, no run files)
``missing``     a run of the sweep file (``--sweep``) whose directory does not exist
==============  ==============================================================================================

:func:`summary_line` names every run that is not ``finished``, by state; reports print it on stderr and
write it into the saved Markdown, LaTeX, HTML and long-form CSV.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ertrain.rundir import (
    CHECKPOINT,
    CONFIG,
    DATA_IDENTITY,
    LOCK,
    METRICS,
    PREVIOUS_CHECKPOINT,
    PROVENANCE,
    RESULT,
    TORN_SUFFIX,
    RunDir,
)

#: The states of :class:`RunAccount`, in the order :func:`summary_line` lists them.
RUN_STATES: tuple[str, ...] = ("finished", "unfinished", "failed", "torn", "foreign", "missing")

#: Files whose presence makes a folder without ``config.json`` a run directory (one that stopped before writing
#: it, or a broken one) rather than a foreign folder.
_RUN_FILES = (METRICS, CHECKPOINT, PREVIOUS_CHECKPOINT, RESULT, RESULT + TORN_SUFFIX, DATA_IDENTITY, PROVENANCE, LOCK)


@dataclass(frozen=True)
class RunAccount:
    """One folder a report was pointed at: its name, its state (one of :data:`RUN_STATES`) and why."""

    name: str
    state: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.state not in RUN_STATES:
            raise ValueError(f"unknown run state {self.state!r}; valid: {', '.join(RUN_STATES)}")


def account_run(path: str | Path) -> RunAccount:
    """The :class:`RunAccount` of the folder ``path`` (see the module docstring)."""
    path = Path(path)
    rd = RunDir(path)
    if not path.is_dir():
        return RunAccount(path.name, "missing", "no run directory")
    result = rd.result_state()
    config_present = rd.file(CONFIG).exists()
    config = rd.read_config()
    if result == "torn":
        return RunAccount(path.name, "torn", f"{RESULT} unreadable (torn or corrupt)")
    if config_present and config is None:
        return RunAccount(path.name, "torn", f"{CONFIG} unreadable (torn or corrupt)")
    if result == "finished":
        if config is None:
            return RunAccount(path.name, "torn", f"{RESULT} without {CONFIG}")
        return RunAccount(path.name, "finished")
    error = rd.read_error()
    if error is not None:
        message = " ".join(f"{error.get('type', 'Error')}: {error.get('message', '')}".split())
        return RunAccount(path.name, "failed", message if len(message) <= 160 else message[:159] + "…")
    if config is None and not any(rd.file(name).exists() for name in _RUN_FILES):
        return RunAccount(path.name, "foreign", f"not a run directory (no {CONFIG})")
    if rd.is_locked():
        return RunAccount(path.name, "unfinished", "being trained now")
    return RunAccount(path.name, "unfinished", f"no {RESULT} (interrupted or not finished)")


def account_runs(runs_dir: str | Path, run_hashes: Sequence[str] | None = None) -> list[RunAccount]:
    """The accounts of every non-hidden folder of ``runs_dir`` or, given ``run_hashes``, of those runs
    (a run without a directory is ``missing``), sorted by name."""
    runs_dir = Path(runs_dir)
    if run_hashes is not None:
        return [account_run(runs_dir / name) for name in sorted(set(run_hashes))]
    folders = sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [account_run(p) for p in folders]


def not_finished(accounts: Iterable[RunAccount]) -> list[RunAccount]:
    """The accounts that are not ``finished``, ordered by state (as :data:`RUN_STATES`) and name."""
    rank = {s: k for k, s in enumerate(RUN_STATES)}
    return sorted((a for a in accounts if a.state != "finished"), key=lambda a: (rank[a.state], a.name))


def summary_line(accounts: Sequence[RunAccount]) -> str:
    """One line: how many runs the table holds and, by state, the name (and reason) of every other run."""
    others = not_finished(accounts)
    finished = len(accounts) - len(others)
    head = f"{finished} of {len(accounts)} runs finished and in the table"
    if not others:
        return head
    parts = []
    for state in RUN_STATES[1:]:
        named = [f"{a.name} ({a.detail})" if a.detail else a.name for a in others if a.state == state]
        if named:
            parts.append(f"{len(named)} {state}: {', '.join(named)}")
    return f"{head}; not in the table: " + "; ".join(parts)


__all__ = ["RUN_STATES", "RunAccount", "account_run", "account_runs", "not_finished", "summary_line"]
