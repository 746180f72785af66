"""One configuration → one finished run directory.

:func:`run` names the run ``runs_dir/<run hash>`` (:meth:`~ertrain.config.TrainConfig.run_hash`),
takes its lock, resumes from the newest good checkpoint of *this* run, lets the method train
(``ertrain.methods.METHODS[config.method]``), checkpoints after every epoch and writes
``result.json`` last.  Everything about the folder's files goes through :mod:`ertrain.rundir`.

* A finished run is returned without training (``cached=True`` in the returned :class:`RunOutcome`);
  ``resume=False`` trains it again from scratch (its result is replaced when the new one is written).
* A run directory named by release 0.1's hash is renamed to the current name and resumed.
* Invalid configurations fail before anything is created on disk.
* Under ``torchrun`` only rank 0 writes; the other ranks train and wait at the barriers.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ertrain import __version__
from ertrain.config import TrainConfig
from ertrain.protocol_notes import note_lines, notes_record
from ertrain.rundir import RunDir

if TYPE_CHECKING:
    from torch import nn

    from ertrain.masks import Masking
    from ertrain.methods.base import Method
    from ertrain.trainer import Trainer


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_config` did: the result, where it lives, and whether it was already there."""

    result: dict[str, Any]
    run_dir: Path
    cached: bool


def run(
    config: TrainConfig,
    runs_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool | None = None,
    device: Any = None,
) -> dict[str, Any]:
    """Train ``config`` in ``runs_dir/<run_hash>`` and return its ``result.json`` (see the module docstring)."""
    return run_config(config, runs_dir, resume=resume, progress=progress, device=device).result


def run_config(
    config: TrainConfig,
    runs_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool | None = None,
    device: Any = None,
) -> RunOutcome:
    """:func:`run` with the run directory and whether the result came from the cache."""
    rd = locate(config, runs_dir)
    identity = data_identity(config)  # missing or changed data fail here, before anything is written
    rd.check_data_identity(identity, lambda version: data_identity(config, version))
    finished = rd.read_result()
    if finished is not None and resume:
        return RunOutcome(finished, rd.path, cached=True)
    data = _load_data(config)
    if not _is_root():
        return RunOutcome(_train(config, rd, data, resume, progress, device), rd.path, cached=False)
    with rd.lock():
        finished = rd.read_result()  # another process may have finished it while we waited
        if finished is not None and resume:
            return RunOutcome(finished, rd.path, cached=True)
        if rd.set_aside_torn_result():
            sys.stderr.write(f"ertrain: {rd.path}: unreadable result.json set aside; finishing the run again\n")
        rd.write_data_identity(identity)
        return RunOutcome(_train(config, rd, data, resume, progress, device), rd.path, cached=False)


def data_identity(config: TrainConfig, version: int | None = None) -> dict[str, Any]:
    """The dataset, its options and the fingerprint of its files (``ertrain.data.data_fingerprint``; the
    current version unless ``version`` asks for another, which an older run recorded)."""
    from ertrain.data.identity import FINGERPRINT_VERSION, data_fingerprint

    version = FINGERPRINT_VERSION if version is None else version
    fingerprint = data_fingerprint(config.dataset, config.data_dir, config.data_options, version=version)
    identity: dict[str, Any] = {"dataset": config.dataset, "data_options": config.data_options,
                                "fingerprint": fingerprint}
    if version != 1:  # version 1 identities have no version field
        identity["fingerprint_version"] = version
    return identity


def _load_data(config: TrainConfig) -> Any:
    from ertrain.data import load_dataset

    return load_dataset(config.dataset, config.data_dir, seed=config.data_seed, **config.data_options)


def locate(config: TrainConfig, runs_dir: str | Path) -> RunDir:
    """The run directory of ``config``; one named by release 0.1's hash is renamed to the current name."""
    rd = RunDir.of(runs_dir, config.run_hash())
    legacy_hash = config.legacy_run_hash()
    if rd.path.exists() or legacy_hash is None or legacy_hash == rd.path.name:
        return rd
    old = RunDir.of(runs_dir, legacy_hash)
    stored = old.read_config()
    if stored is not None and _same_config(stored, config):
        with contextlib.suppress(FileNotFoundError, FileExistsError):
            os.rename(old.path, rd.path)
            sys.stderr.write(f"ertrain: renamed {old.path} to {rd.path} (current run-name scheme)\n")
    return rd


def _same_config(stored: dict[str, Any], config: TrainConfig) -> bool:
    try:
        return TrainConfig.from_json(stored).run_hash() == config.run_hash()
    except ValueError:
        return False


def _is_root() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _train(
    config: TrainConfig, rd: RunDir, data: Any, resume: bool, progress: bool | None, device: Any
) -> dict[str, Any]:
    from ertrain.methods import get_method
    from ertrain.trainer import Trainer

    method = get_method(config.method).from_config(config)
    t_start = time.perf_counter()
    root = _is_root()
    try:
        if root:
            rd.write_config(config.to_json())
            rd.write_provenance()
            for line in note_lines(config):  # the paper's code's bugs this run reproduces, missing code paths
                sys.stderr.write(line + "\n")
        trainer = Trainer.from_config(config, device=device, data=data, progress=progress)
        wall_before = _restore(rd, trainer, method, config, resume)
        with _trackers(config, rd, trainer) as tracker:

            def checkpoint(tr: Trainer, _fit_index: int, _done: int) -> None:
                if tr.rank == 0:
                    rd.append_metrics(tr.history[-1])
                    tracker.log(tr.history[-1]["epoch"], tr.history[-1])
                    _save(rd, tr, method, config, wall_before + time.perf_counter() - t_start)
                tr.barrier()

            trainer.on_epoch_end = checkpoint
            extra = method.run(trainer)
        result = _result(config, trainer, extra, wall_before + time.perf_counter() - t_start)
        if trainer.rank == 0:
            _save(rd, trainer, method, config, result["wall_time_s"])
            rd.write_result(result)
        trainer.barrier()
        return result
    except Exception as exc:
        if root:
            rd.write_error(exc)
        raise


def _trackers(config: TrainConfig, rd: RunDir, trainer: Trainer) -> Any:
    """The run's experiment trackers (``config.log``; rank 0 only), which log every epoch record."""
    import json

    from ertrain.tracking import Tracker, open_trackers

    if trainer.rank != 0:
        return Tracker()
    return open_trackers(config.log, rd.path, json.loads(config.to_json()), start_step=trainer.epoch)


def _restore(rd: RunDir, trainer: Trainer, method: Method, config: TrainConfig, resume: bool) -> float:
    """Load this run's newest good checkpoint into ``trainer`` and ``method``; the wall time already spent."""
    state, problems = rd.load_checkpoint(config.run_hash()) if resume else (None, [])
    for problem in problems:
        if trainer.rank == 0:
            sys.stderr.write(f"ertrain: skipping bad checkpoint: {problem}\n")
    wall_before = 0.0
    if state is not None:
        trainer.load_state_dict(state)
        method.load_state_dict(state.get("method", {}))
        wall_before = float(state.get("wall_time_s", 0.0))
    if trainer.rank == 0:
        rd.rewrite_metrics(trainer.history)
    return wall_before


def _save(rd: RunDir, trainer: Trainer, method: Method, config: TrainConfig, wall: float) -> None:
    full = trainer.state_dict()
    full["method"] = method.state_dict()
    full["wall_time_s"] = wall
    rd.save_checkpoint(full, config.run_hash())


def _result(config: TrainConfig, trainer: Trainer, extra: dict[str, Any] | None, wall: float) -> dict[str, Any]:
    final = trainer.evaluate("test")
    result: dict[str, Any] = {
        "run_hash": config.run_hash(), "method": config.method, "model": config.model, "dataset": config.dataset,
        "density_scheme": config.density_scheme, "requested_density": config.density, "seed": config.seed,
        "test_accuracy": final["accuracy"], "test_loss": final["loss"], "density": trainer.density(),
        "epochs_done": trainer.epoch, "global_step": trainer.global_step, "wall_time_s": wall,
        "device": str(trainer.device), "world_size": trainer.world_size, "model_kwargs": trainer.model_kwargs,
    }
    result.update(_selection(config, trainer, final))
    if config.engine != "masked":  # which engine trained each masked layer (auto decides per layer)
        result["engine_layers"] = dict(getattr(trainer.masking, "engine_layers", {}))
    if trainer.masking is not None and trainer.masking.planned_density is not None:
        # the overall density the scheme's per-layer densities give (below the request for paper-code variants)
        result["planned_density"] = trainer.masking.planned_density
    if trainer.masking is not None and config.flow_repair is not None:
        # Edges added by flow repair per layer (the paper's Tables 6 and 7).
        result["flow_repair_edges_added"] = dict(trainer.masking.edges_added)
        result["flow_repair_edges_added_total"] = sum(trainer.masking.edges_added.values())
    result.update(notes_record(config))  # code_bugs_reproduced / code_path_warnings (ertrain.protocol_notes)
    result.update(what_ran(config, trainer))
    result.update(extra or {})
    out: dict[str, Any] = jsonable(result)  # plain JSON types; NaN/inf (a diverged run) become null
    return out


def what_ran(config: TrainConfig, trainer: Trainer) -> dict[str, Any]:
    """What a result came from, so that a table can be defended from its files alone: the resolved config,
    its protocol and recipe, the realised per-layer densities of the final masks (the overall one is
    ``density``), the epochs and optimizer steps actually done, and the package version."""
    masking = trainer.masking
    return {
        "config": config.to_dict(), "protocol": config.protocol, "recipe": config.recipe,
        "realised_layer_densities": dict(masking.densities()) if masking is not None else {},
        "epochs_done": trainer.epoch, "optimizer_steps": trainer.global_step, "ertoolkit_version": __version__,
    }


def _selection(config: TrainConfig, trainer: Trainer, final: dict[str, Any]) -> dict[str, Any]:
    """The reported accuracy by ``config.select`` (:func:`ertrain.evaluation.select_epoch`) and the final one.

    ``final`` keeps today's fields (``test_accuracy`` is the model's accuracy after training);
    ``best_val``/``best_test`` report the selected epoch's test accuracy and loss.
    """
    out: dict[str, Any] = {"select": config.select, "final_test_accuracy": final["accuracy"],
                           "final_test_loss": final["loss"], "selected_epoch": trainer.epoch - 1}
    if config.select != "final" and trainer.history:
        from ertrain.evaluation import select_epoch

        record = select_epoch(trainer.history, config.select, config.select_from_epoch)
        out.update(test_accuracy=record["test_accuracy"], test_loss=record["test_loss"],
                   selected_epoch=record["epoch"])
        if record.get("val_accuracy") is not None:
            out["selected_val_accuracy"] = record["val_accuracy"]
    return out


def jsonable(obj: Any) -> Any:
    """Plain JSON types (tensors and numpy values converted); non-finite floats become None."""
    import torch

    from ertheory.jsonio import to_jsonable

    if isinstance(obj, torch.Tensor):
        obj = obj.tolist()
    obj = to_jsonable(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [jsonable(v) for v in obj]
    return obj


def load_run(run_dir: str | Path) -> tuple[TrainConfig, nn.Module, Masking | None, dict[str, Any]]:
    """A run's config, its trained model (CPU, eval mode), its Masking (None if dense) and its result.

    Reads ``config.json``, the newest good checkpoint and ``result.json`` (``{}`` if unfinished).
    """
    import json

    from ertrain.masks import Masking
    from ertrain.models import build_model

    rd = RunDir(Path(run_dir))
    stored = rd.read_config()
    if stored is None:
        raise ValueError(f"{rd.path}: no readable config.json holding a JSON object (not a run directory)")
    config = TrainConfig.from_json(stored)
    state, problems = rd.load_checkpoint()
    if state is None:
        raise ValueError(f"{rd.path}: no readable checkpoint" + (f" ({'; '.join(problems)})" if problems else ""))
    model_kwargs = json.loads(state["model_kwargs"])
    model = build_model(config.model, width=config.width, **model_kwargs, **config.model_options)
    masking = None
    if state.get("masks"):
        inner = state["masks"].get("masks", state["masks"])
        masking = Masking(model, {k: v.bool() for k, v in inner.items() if hasattr(v, "bool")})
    model.load_state_dict(state["model"])
    model.eval()
    return config, model, masking, rd.read_result() or {}


__all__ = ["RunOutcome", "jsonable", "load_run", "locate", "run", "run_config"]
