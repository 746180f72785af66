"""Sweeps: a grid over :class:`ertrain.config.TrainConfig` fields, read from a TOML file, run resumably.

A sweep file names a ``[base]`` table (fields shared by every run) and one or more grids::

    name = "t01_vgg16_cifar10_ratios"
    reproduces = "Table 1, Table 10"
    table = "ratios"                       # layout used by ``ertrain report`` (see ertrain.report.TABLES)

    [base]
    model = "vgg16"
    dataset = "cifar10"
    epochs = 160

    [grid]                                 # or [[grid]] several times: the sweep is their union
    density_scheme = ["uniform", "erk", "balanced", "pyramidal"]
    sparsity = [0.9, 0.95, 0.98, 0.99]     # ``sparsity`` is accepted and stored as density = 1 - sparsity
    seed = [0, 1, 2]
    method_options.rewind_epoch = [0, 5]   # one key of a dict field is an axis of its own
    zip = [{method = "imp"}, {method = "static", epochs = 10}]   # entries that vary together

    [slurm]                                # defaults for ``--executor slurm``; flags override them
    partition = "gpu"
    time_min = 1440

Every key must be a ``TrainConfig`` field (or ``sparsity``, or ``<dict field>.<key>``); anything else
raises ``ValueError`` naming the key and the valid ones.  Runs with the same hyper-parameters have the
same :meth:`TrainConfig.run_hash` and are run once.  Each run lives in ``runs_dir/<run_hash>``; a run
with ``result.json`` is *done*, one with ``error.json`` and no result *failed*, one with a directory
and neither *partial* (it resumes from its checkpoint), and the rest are *new*.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, packaged as tomli
    import tomli as tomllib

from ertrain.config import Resolved, TrainConfig, resolve
from ertrain.typecheck import check_types

#: Execution-only fields a caller may override without changing any run's hash (as in TrainConfig).
EXECUTION_FIELDS: tuple[str, ...] = ("data_dir", "device", "compile", "channels_last", "log")

#: Status of one run directory.
STATES: tuple[str, ...] = ("done", "failed", "partial", "new")

#: Keys of the top level of a sweep file.
_TOP_KEYS = frozenset({"name", "description", "reproduces", "table", "base", "grid", "slurm"})


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of one array task on SLURM (submitit's names in parentheses)."""

    partition: str | None = None  # slurm_partition
    time_min: int = 24 * 60  # timeout_min: wall time of one task, after which it is requeued
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: float | None = None
    array_parallelism: int = 32  # slurm_array_parallelism: tasks of the array running at once
    max_requeue: int = 3  # slurm_max_num_timeout: requeues after a time-out (preemptions do not count)
    account: str | None = None
    qos: str | None = None

    def __post_init__(self) -> None:
        for name in ("time_min", "cpus_per_task", "array_parallelism"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"slurm {name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("gpus_per_node", "max_requeue"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"slurm {name} must be >= 0, got {getattr(self, name)!r}")

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> SlurmOptions:
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - valid)
        if unknown:
            raise ValueError(f"unknown [slurm] key(s) {unknown}; valid keys: {', '.join(sorted(valid))}")
        check_types(cls, table, "[slurm]")
        return cls(**dict(table))


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file: the base fields and the grids, before they become configs."""

    name: str
    base: dict[str, Any]
    grids: tuple[dict[str, Any], ...]
    description: str = ""
    reproduces: str = ""
    table: str | None = None
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    path: Path | None = None

    def assignments(self) -> list[dict[str, Any]]:
        """Every run's fields as a flat dict (``base`` updated by one point of one grid), in file order."""
        out: list[dict[str, Any]] = []
        for grid in self.grids or ({},):
            for point in expand_grid(grid):
                out.append(apply_assignment(self.base, point))
        return out


@dataclass(frozen=True)
class RunStatus:
    """Where one run of a sweep stands."""

    run_hash: str
    state: str  # one of STATES
    run_dir: Path
    error: str = ""  # "<type>: <message>" from error.json for failed runs; why it is not done for the others


@dataclass(frozen=True)
class SweepSummary:
    """Counts over a sweep's runs (``exist`` = a run directory exists)."""

    total: int
    exist: int
    done: int
    failed: int
    partial: int
    new: int
    failures: tuple[RunStatus, ...] = ()
    unfinished: tuple[RunStatus, ...] = ()  # partial and new runs, each with why it is not done

    @property
    def remain(self) -> int:
        return self.total - self.done

    def line(self) -> str:
        return (
            f"{self.total} runs: {self.exist} exist, {self.done} done, {self.remain} remain"
            f" ({self.failed} failed, {self.partial} partial, {self.new} new)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "exist": self.exist,
            "done": self.done,
            "remain": self.remain,
            "failed": self.failed,
            "partial": self.partial,
            "new": self.new,
            "failures": [{"run_hash": f.run_hash, "run_dir": str(f.run_dir), "error": f.error} for f in self.failures],
            "unfinished": [
                {"run_hash": u.run_hash, "run_dir": str(u.run_dir), "state": u.state, "reason": u.error}
                for u in self.unfinished
            ],
        }


# ---------------------------------------------------------------------------------------------- parsing


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep file (TOML).  Raises ``ValueError`` naming the file and the bad key/value."""
    path = Path(path)
    if path.suffix != ".toml":
        raise ValueError(f"sweep file must be a .toml file, got {str(path)!r}")
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ValueError(f"sweep file {str(path)!r} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"sweep file {str(path)!r} is not valid TOML: {exc}") from exc
    try:
        return parse_sweep(doc, default_name=path.parent.name + "/" + path.stem, path=path)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def parse_sweep(doc: Mapping[str, Any], *, default_name: str = "sweep", path: Path | None = None) -> SweepSpec:
    """Build a :class:`SweepSpec` from the mapping a TOML file parses to."""
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"unknown top-level key(s) {unknown}; valid keys: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("name", "description", "reproduces", "table"):
        if key in doc and not isinstance(doc[key], str):
            raise ValueError(f"top-level key {key!r} must be a string, got {doc[key]!r}")
    base = doc.get("base", {})
    if not isinstance(base, dict):
        raise ValueError(f"[base] must be a table, got {base!r}")
    raw_grid = doc.get("grid", [])
    grids = [raw_grid] if isinstance(raw_grid, dict) else list(raw_grid)
    for grid in grids:
        if not isinstance(grid, dict):
            raise ValueError(f"[grid] must be a table or an array of tables, got {grid!r}")
        for axis in _axes(grid):  # fail early on malformed grids
            if not axis:
                raise ValueError(f"a grid axis is empty in {grid!r}")
    slurm = SlurmOptions.from_mapping(doc.get("slurm", {}))
    table = doc.get("table")
    return SweepSpec(
        name=str(doc.get("name", default_name)),
        base=dict(base),
        grids=tuple(grids),
        description=str(doc.get("description", "")),
        reproduces=str(doc.get("reproduces", "")),
        table=None if table is None else str(table),
        slurm=slurm,
        path=path,
    )


def _flatten(prefix: str, value: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in value.items()}


def _axes(grid: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """One list of partial assignments per axis of ``grid``."""
    axes: list[list[dict[str, Any]]] = []
    for key, values in grid.items():
        if key == "zip":
            if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
                raise ValueError(f"grid key 'zip' must be an array of tables, got {values!r}")
            axes.append([_flat_point(v) for v in values])
        elif isinstance(values, dict):
            for sub, sub_values in values.items():
                axes.append([{f"{key}.{sub}": v} for v in _as_list(f"{key}.{sub}", sub_values)])
        else:
            axes.append([{key: v} for v in _as_list(key, values)])
    return axes


def _flat_point(entry: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if isinstance(value, dict) and key.endswith("_options"):
            out.update(_flatten(key, value))
        else:
            out[key] = value
    return out


def _as_list(key: str, values: Any) -> list[Any]:
    if not isinstance(values, list):
        raise ValueError(f"grid values must be arrays; key {key!r} has {values!r}")
    return values


#: The most runs one sweep may expand to (a typo like ``seed = [0, ..., 999999]`` fails fast instead of hanging).
MAX_RUNS = 100_000


def grid_size(grid: Mapping[str, Any]) -> int:
    """The number of points of ``grid`` (the product of its axis lengths), computed without expanding it."""
    return math.prod(len(axis) for axis in _axes(grid))


def expand_grid(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Cartesian product of the axes of ``grid`` as flat assignments (``zip`` entries move together).

    >>> expand_grid({"seed": [0, 1], "zip": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]})  # doctest: +NORMALIZE_WHITESPACE
    [{'seed': 0, 'a': 1, 'b': 2}, {'seed': 0, 'a': 3, 'b': 4},
     {'seed': 1, 'a': 1, 'b': 2}, {'seed': 1, 'a': 3, 'b': 4}]
    """
    size = grid_size(grid)
    if size > MAX_RUNS:
        raise ValueError(f"the grid expands to {size:,} runs; at most {MAX_RUNS:,} per sweep (split it)")
    points: list[dict[str, Any]] = []
    for combo in itertools.product(*_axes(grid)):
        point: dict[str, Any] = {}
        for part in combo:
            clash = sorted(set(point) & set(part))
            if clash:
                raise ValueError(f"grid sets {clash} twice in one run")
            point.update(part)
        points.append(point)
    return points


def sparsity_to_density(sparsity: float) -> float:
    """``1 - sparsity``, rounded to 12 decimals so that ``0.99`` gives ``0.01`` (and a stable run hash)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    s = float(sparsity)
    if not (math.isfinite(s) and 0.0 <= s < 1.0):
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    return round(1.0 - s, 12)


def apply_assignment(base: Mapping[str, Any], point: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``point``: ``a.b`` keys go into dict field ``a``; ``sparsity`` becomes ``density``."""
    fields: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    if "sparsity" in fields:
        if "density" in fields:
            raise ValueError("[base] sets both 'sparsity' and 'density'; set one of them")
        fields["density"] = sparsity_to_density(fields.pop("sparsity"))
    if "sparsity" in point and "density" in point:
        raise ValueError(f"a grid point sets both 'sparsity' and 'density': {dict(point)!r}")
    for key, value in point.items():
        if key == "sparsity":
            fields["density"] = sparsity_to_density(value)
        elif "." in key:
            name, sub = key.split(".", 1)
            inner = fields.get(name) or {}
            if not isinstance(inner, dict):
                raise ValueError(f"{name!r} is not a table, cannot set {key!r}")
            fields[name] = {**inner, sub: value}
        else:
            fields[key] = dict(value) if isinstance(value, dict) else value
    return fields


# ---------------------------------------------------------------------------------------------- configs


def resolve_point(fields: Mapping[str, Any]) -> Resolved:
    """One run of a sweep through the resolver (:func:`ertrain.config.resolve`), as ``ertrain train`` resolves
    the same fields: explicit > protocol > recipe > defaults, each field's source recorded."""
    try:
        return resolve(fields)
    except TypeError as exc:  # a value of the wrong type that the dataclass could not take
        raise ValueError(f"cannot build a TrainConfig from {dict(fields)!r}: {exc}") from exc


def make_config(fields: Mapping[str, Any]) -> TrainConfig:
    """The resolved ``TrainConfig`` of a flat dict (:func:`resolve_point`)."""
    return resolve_point(fields).config


def build_resolved(spec: SweepSpec, overrides: Mapping[str, Any] | None = None) -> list[Resolved]:
    """The sweep's distinct resolved runs (first occurrence of each run hash kept), in file order.

    ``overrides`` sets execution-only fields (``data_dir``, ``device``) on every run; they do not
    change run hashes.
    """
    overrides = dict(overrides or {})
    bad = sorted(set(overrides) - set(EXECUTION_FIELDS))
    if bad:
        raise ValueError(f"only {EXECUTION_FIELDS} can be overridden, got {bad}")
    runs: list[Resolved] = []
    seen: set[str] = set()
    for fields in spec.assignments():
        resolved = resolve_point({**fields, **overrides})
        run_hash = resolved.run_hash()
        if run_hash not in seen:
            seen.add(run_hash)
            runs.append(resolved)
    return runs


def build_configs(spec: SweepSpec, overrides: Mapping[str, Any] | None = None) -> list[TrainConfig]:
    """The configs of :func:`build_resolved`."""
    return [r.config for r in build_resolved(spec, overrides)]


def validate_config(config: TrainConfig, *, check_device: bool = True) -> None:
    """Check what a config cannot check alone, before any run is launched: the device and the data options.

    (Registry names and method options are checked when the config is built.)  Raises ``ValueError``
    naming the bad value and the valid ones.  Imports torch.
    """
    from ertrain.data import DATASETS
    from ertrain.trainer import resolve_device

    if check_device:
        resolve_device(config.device)
    entry = DATASETS.entry(config.dataset) if hasattr(DATASETS, "entry") else None
    if entry is not None and entry.options is not None:
        entry.make_options(config.data_options)


def check_data(config: TrainConfig) -> None:
    """The files of ``config``'s dataset can be found and read (``ValueError`` saying where it looked)."""
    _data_present(config.dataset, config.data_dir, json.dumps(config.data_options, sort_keys=True))


@functools.lru_cache(maxsize=256)
def _data_present(dataset: str, data_dir: str | None, options_json: str) -> None:
    """The dataset's files can be found and read (once per dataset, folder and options)."""
    from ertrain.data.identity import data_fingerprint

    data_fingerprint(dataset, data_dir, json.loads(options_json))


# ---------------------------------------------------------------------------------------------- status


def run_status(run_hash: str, runs_dir: str | Path) -> RunStatus:
    """State of ``runs_dir/run_hash`` from the files in it (see the module docstring).

    A torn ``result.json`` does not count as done: the run is launched again and finishes from its
    last checkpoint.
    """
    from ertrain.rundir import RunDir

    rd = RunDir.of(runs_dir, run_hash)
    if rd.read_result() is not None:
        return RunStatus(run_hash, "done", rd.path)
    err = rd.read_error()
    if err is not None:
        message = f"{err.get('type', 'Error')}: {err.get('message', '(unreadable error.json)')}"
        return RunStatus(run_hash, "failed", rd.path, " ".join(message.split()))
    if rd.path.is_dir():
        return RunStatus(run_hash, "partial", rd.path)
    return RunStatus(run_hash, "new", rd.path)


def sweep_status(configs: Sequence[TrainConfig], runs_dir: str | Path) -> tuple[list[RunStatus], SweepSummary]:
    """Per-run states and their counts."""
    states = [run_status(c.run_hash(), runs_dir) for c in configs]
    return states, summarize(states)


def summarize(states: Sequence[RunStatus]) -> SweepSummary:
    counts = {s: sum(st.state == s for st in states) for s in STATES}
    return SweepSummary(
        total=len(states),
        exist=sum(st.run_dir.is_dir() for st in states),
        done=counts["done"],
        failed=counts["failed"],
        partial=counts["partial"],
        new=counts["new"],
        failures=tuple(st for st in states if st.state == "failed"),
        unfinished=tuple(st for st in states if st.state in ("partial", "new")),
    )


def describe(config: TrainConfig, keys: Sequence[str]) -> str:
    """``key=value`` for the fields that vary across a sweep (for listings)."""
    parts = []
    for key in keys:
        value = getattr(config, key)
        if key == "density":
            parts.append(f"sparsity={round(1.0 - value, 12):g}")
        else:
            parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


def varying_fields(configs: Sequence[TrainConfig]) -> list[str]:
    """Names of the fields whose value differs between at least two configs."""
    if not configs:
        return []
    names = [f.name for f in dataclasses.fields(configs[0]) if f.name not in EXECUTION_FIELDS]
    return [n for n in names if len({json.dumps(getattr(c, n), sort_keys=True, default=str) for c in configs}) > 1]


# ---------------------------------------------------------------------------------------------- running


def run_sweep(
    configs: Sequence[TrainConfig],
    runs_dir: str | Path,
    executor: Any,
) -> SweepSummary:
    """Launch every config whose run is not done on ``executor`` (see :mod:`ertrain.executors`).

    Failed and partial runs are launched again (partial ones resume from their checkpoint).  Returns
    the counts after the executor returns; a failure of one run never stops the others.  Each run that
    is still not done carries why (``SweepSummary.unfinished``: e.g. trained by another process).
    """
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    todo = [c for c in configs if run_status(c.run_hash(), runs_dir).state != "done"]
    outcomes = executor.launch(todo, runs_dir) if todo else []
    why = {o.run_hash: o.error for o in outcomes or () if not o.ok and o.error}
    summary = sweep_status(configs, runs_dir)[1]
    unfinished = tuple(
        dataclasses.replace(st, error=why.get(st.run_hash) or _UNFINISHED_WHY[st.state]) for st in summary.unfinished
    )
    return dataclasses.replace(summary, unfinished=unfinished)


#: Why a run is not done when its executor said nothing about it (SLURM without waiting, a killed worker).
_UNFINISHED_WHY = {
    "partial": "not finished (still queued or running, or interrupted: it resumes from its checkpoint next time)",
    "new": "not started (still queued, or its worker ended before it)",
}


# ---------------------------------------------------------------------------------------------- one call


def load_configs(
    path: str | Path, overrides: Mapping[str, Any] | None = None, slurm_changes: Mapping[str, Any] | None = None
) -> tuple[SweepSpec, list[Resolved], SlurmOptions]:
    """The sweep file ``path``, its distinct resolved runs (``overrides`` as in :func:`build_resolved`) and its
    SLURM options with ``slurm_changes`` applied (and checked)."""
    spec = load_sweep(path)
    try:
        runs = build_resolved(spec, overrides)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    slurm = SlurmOptions.from_mapping({**dataclasses.asdict(spec.slurm), **(slurm_changes or {})})
    return spec, runs, slurm


@dataclass(frozen=True)
class SweepPlan:
    """A sweep ready to launch: its file, its resolved runs, the SLURM options, where every run stands, and
    (for a dry run) what this machine lacks to run it."""

    spec: SweepSpec
    runs: tuple[Resolved, ...]
    slurm: SlurmOptions
    runs_dir: Path
    states: tuple[RunStatus, ...]
    before: SweepSummary
    keys: tuple[str, ...]  # the fields that vary across the configs (for listings)
    missing_data: tuple[dict[str, str], ...] = ()

    @property
    def configs(self) -> tuple[TrainConfig, ...]:
        return tuple(r.config for r in self.runs)

    @property
    def title(self) -> str:
        return f"sweep {self.spec.name}" + (f" ({self.spec.reproduces})" if self.spec.reproduces else "")

    @property
    def todo(self) -> list[tuple[TrainConfig, RunStatus]]:
        """The configs whose run is not done, with their status."""
        return [(c, s) for c, s in zip(self.configs, self.states, strict=True) if s.state != "done"]

    def report(self, executor: str, dry_run: bool) -> dict[str, Any]:
        """The plan as a JSON-able dict (``ertrain sweep --json`` adds ``after`` and ``job_ids`` once it ran).

        ``runs`` lists every run (done or not) as ``{"run_hash", "state", "config", "sources"}``: the
        resolved config and each field's source (``explicit``, ``protocol``, ``recipe``, ``default``).
        """
        return {
            "name": self.spec.name,
            "reproduces": self.spec.reproduces,
            "runs_dir": str(self.runs_dir),
            "executor": executor,
            "dry_run": bool(dry_run),
            "before": self.before.to_dict(),
            "to_launch": [
                {"run_hash": s.run_hash, "state": s.state, "fields": describe(c, self.keys)} for c, s in self.todo
            ],
            "runs": [{**r.to_dict(), "state": s.state} for r, s in zip(self.runs, self.states, strict=True)],
            "missing_data": [dict(m) for m in self.missing_data],
        }


def plan_sweep(
    spec: SweepSpec, runs: Sequence[Resolved], slurm: SlurmOptions, runs_dir: str | Path, *, validate: bool = True,
    dry_run: bool = False,
) -> SweepPlan:
    """Check every config and its data (:func:`validate_config`, :func:`check_data`; unless ``validate`` is
    False) and read where its run stands.  A ``dry_run`` lists missing datasets (``missing_data``) instead
    of refusing, and checks no device: it needs neither the data nor a GPU."""
    missing: dict[tuple[str, str], dict[str, str]] = {}
    if validate:
        for r in runs:
            validate_config(r.config, check_device=not dry_run)
            try:
                check_data(r.config)
            except ValueError as exc:
                if not dry_run:
                    raise
                key = (r.config.dataset, str(r.config.data_dir))
                missing.setdefault(key, {"dataset": r.config.dataset, "data_dir": str(r.config.data_dir or ""),
                                         "error": " ".join(str(exc).split())})
    configs = [r.config for r in runs]
    states, before = sweep_status(configs, runs_dir)
    keys = varying_fields(configs)
    return SweepPlan(spec, tuple(runs), slurm, Path(runs_dir), tuple(states), before, tuple(keys),
                     tuple(missing.values()))
