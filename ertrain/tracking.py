"""Experiment tracking: a run's per-epoch metrics and its resolved config, sent to TensorBoard or W&B.

``metrics.jsonl`` in the run directory is always the record of a run; trackers copy it to the tools
researchers look at.  ``open_trackers(kinds, run_dir, hparams)`` returns one :class:`Tracker` that
fans out to every kind asked for:

- ``none``: nothing beyond ``metrics.jsonl``;
- ``tensorboard``: event files in ``<run_dir>/tensorboard/`` (torch's ``SummaryWriter``; scalars as
  float64 tensors, so they read back equal to the JSON values), the config as hyper-parameters
  (the HParams dashboard) and as JSON text;
- ``wandb``: a Weights & Biases run in offline mode (never the network) whose files live in
  ``<run_dir>/wandb/offline-run-*``; ``wandb sync <that directory>`` uploads it later.

``Tracker.log(step, metrics)`` takes one epoch's record as the trainer keeps it: nested dicts and
lists are flattened into scalar keys joined by ``/`` (``{"density": {"layer3": 0.1}}`` gives
``density/layer3``), booleans become 0/1, and text or missing (``None``) values are left out.

Resuming: pass ``start_step`` (the first step the resumed run will log) so that TensorBoard drops
the events a previous attempt logged from that step on; call ``log`` before the epoch's
checkpoint is written (every ``log`` is flushed), so steps before a checkpoint are never lost.
In multi-process (DDP) training only rank 0 opens trackers.

The trackers are the optional extra ``track``: ``pip install 'ertoolkit[track]'``.
"""

from __future__ import annotations

import importlib.util
import json
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ertrain.registry import Registry

#: Sub-directory of the run directory holding TensorBoard's event files.
TENSORBOARD_DIR = "tensorboard"
#: W&B project name of offline runs.
WANDB_PROJECT = "ertrain"


class Tracker:
    """Receives a run's metrics step by step; ``close`` flushes and releases it (also a context manager)."""

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Record ``metrics`` (flattened to scalars, see :func:`flatten_metrics`) at ``step`` (the epoch)."""

    def close(self) -> None:
        """Flush and release the tracker's files."""

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Tracker factories by name: ``factory(run_dir: Path, hparams: dict, start_step: int) -> Tracker``.
TRACKERS: Registry[Callable[..., Tracker]] = Registry("trackers", builtins=("ertrain.tracking",))

#: The Python package each tracker needs (installed by the ``track`` extra).
PACKAGES: dict[str, str] = {"tensorboard": "tensorboard", "wandb": "wandb"}


# ---------------------------------------------------------------------------------------------- flattening


def flatten_metrics(record: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Scalar leaves of ``record`` keyed by their ``/``-joined path; text and ``None`` leaves are dropped.

    >>> flatten_metrics({"loss": 1.5, "density": {"fc1": 0.25}, "changed": [3, 4], "ok": True, "tag": "x"})
    {'loss': 1.5, 'density/fc1': 0.25, 'changed/0': 3.0, 'changed/1': 4.0, 'ok': 1.0}
    """
    out: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, name))
        elif isinstance(value, list | tuple):
            out.update(flatten_metrics({str(i): v for i, v in enumerate(value)}, name))
        elif isinstance(value, numbers.Real):
            out[name] = float(value)
    return out


def flatten_hparams(config: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """A config as flat hyper-parameters: dicts flattened with ``/``; lists and ``None`` as JSON text."""
    out: dict[str, bool | int | float | str] = {}
    for key, value in config.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten_hparams(value, name))
        elif isinstance(value, bool | int | float | str):
            out[name] = value
        else:
            out[name] = json.dumps(value, sort_keys=True)
    return out


# ---------------------------------------------------------------------------------------------- opening


def check_trackers(kinds: Sequence[str]) -> list[str]:
    """The tracker kinds to open (``[]`` for ``none``); raises ``ValueError`` before anything is created.

    Unknown kinds raise listing the valid ones, repeated kinds and ``none`` mixed with others raise,
    and a kind whose package is missing names the extra to install.
    """
    if isinstance(kinds, str):
        raise ValueError(f"tracker kinds must be a list of names, got the string {kinds!r}")
    kinds = [TRACKERS.check(k) for k in kinds]
    repeated = sorted({k for k in kinds if kinds.count(k) > 1})
    if repeated:
        raise ValueError(f"tracker(s) {repeated} listed more than once in {kinds}")
    if "none" in kinds:
        if len(kinds) > 1:
            raise ValueError(f"'none' cannot be combined with other trackers, got {kinds}")
        return []
    for kind in kinds:
        package = PACKAGES.get(kind)
        if package is not None and importlib.util.find_spec(package) is None:
            raise ValueError(
                f"the {kind!r} tracker needs the {package!r} package: pip install 'ertoolkit[track]' (or {package})"
            )
    return kinds


class Trackers(Tracker):
    """Several trackers as one: ``log`` flattens the record once and passes it to each."""

    def __init__(self, trackers: Sequence[Tracker]) -> None:
        self.trackers = list(trackers)

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        flat = flatten_metrics(metrics)
        for tracker in self.trackers:
            tracker.log(step, flat)

    def close(self) -> None:
        errors = []
        for tracker in self.trackers:
            try:
                tracker.close()
            except Exception as exc:  # close every tracker, then report the first failure
                errors.append(exc)
        self.trackers = []
        if errors:
            raise errors[0]


def open_trackers(
    kinds: Sequence[str], run_dir: str | Path, hparams: Mapping[str, Any], *, start_step: int = 0
) -> Tracker:
    """One :class:`Tracker` logging to every kind in ``kinds`` for the run in ``run_dir``.

    ``hparams`` is the run's resolved config (written once as hyper-parameters); ``start_step`` is
    the first step this process will log (non-zero when a run resumes).  Validates every kind
    (:func:`check_trackers`) before opening any.
    """
    names = check_trackers(kinds)
    if int(start_step) < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step!r}")
    run_dir = Path(run_dir)
    opened: list[Tracker] = []
    try:
        for name in names:
            opened.append(TRACKERS[name](run_dir, dict(hparams), int(start_step)))
    except BaseException:
        Trackers(opened).close()
        raise
    return Trackers(opened)


# ---------------------------------------------------------------------------------------------- backends


@TRACKERS.register("none", help="metrics.jsonl only (always written by the trainer)")
def _none(run_dir: Path, hparams: dict[str, Any], start_step: int) -> Tracker:
    return Tracker()


class TensorBoardTracker(Tracker):
    """Event files in ``<run_dir>/tensorboard``: one float64 scalar per metric and step, the config as hparams."""

    def __init__(self, run_dir: Path, hparams: Mapping[str, Any], start_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        self.writer = SummaryWriter(str(self.log_dir), purge_step=start_step or None)
        if start_step == 0:
            for summary in hparams_summary(flatten_hparams(hparams), {}):
                self.writer._get_file_writer().add_summary(summary)
            self.writer.add_text("config", "```\n" + json.dumps(hparams, indent=2, sort_keys=True) + "\n```")
        self.writer.flush()

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, float(value), int(step), new_style=True, double_precision=True)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    """An offline W&B run in ``<run_dir>/wandb``; the run id is the run directory's name (the run hash)."""

    def __init__(self, run_dir: Path, hparams: Mapping[str, Any], start_step: int = 0) -> None:
        import wandb

        settings = wandb.Settings(
            mode="offline", silent=True, console="off", x_disable_stats=True, disable_git=True, save_code=False
        )
        self.run = wandb.init(
            dir=str(run_dir),
            project=WANDB_PROJECT,
            id=Path(run_dir).name,
            name=Path(run_dir).name,
            config=dict(hparams),
            settings=settings,
            reinit="create_new",
        )

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        self.run.log({k: float(v) for k, v in metrics.items()}, step=int(step))

    def close(self) -> None:
        self.run.finish()


@TRACKERS.register("tensorboard", help="TensorBoard event files in <run_dir>/tensorboard")
def _tensorboard(run_dir: Path, hparams: dict[str, Any], start_step: int) -> Tracker:
    return TensorBoardTracker(run_dir, hparams, start_step)


@TRACKERS.register("wandb", help="an offline Weights & Biases run in <run_dir>/wandb")
def _wandb(run_dir: Path, hparams: dict[str, Any], start_step: int) -> Tracker:
    return WandbTracker(run_dir, hparams, start_step)


__all__ = [
    "PACKAGES", "TENSORBOARD_DIR", "TRACKERS", "TensorBoardTracker", "Tracker", "Trackers", "WandbTracker",
    "check_trackers", "flatten_hparams", "flatten_metrics", "open_trackers",
]
