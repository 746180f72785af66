"""The study's results: one small JSON file per finished run, committed under ``results/reproduction/<variant>/``.

A file ``<run hash>.json`` holds the run's configuration, its test accuracy and final density, the CPU
seconds it took, a few method results (IMP's layerwise densities, flow repair's added edges) and its epoch
records (losses and accuracies, nothing else).  Files are matched to the design by recomputing the hash of
the configuration they hold, so a file stays valid when the run-naming scheme changes; a file whose
configuration no longer parses is reported, never silently skipped.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ertrain.config import TrainConfig

#: Result fields copied from ``result.json`` when present.
RESULT_KEYS = ("test_accuracy", "test_loss", "density", "requested_density", "epochs_done", "global_step",
               "wall_time_s", "layer_densities", "layer_order", "final_density", "start_density",
               "flow_repair_edges_added_total", "training_flops", "inference_flops")
#: Epoch-record fields kept.
EPOCH_KEYS = ("epoch", "fit", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_accuracy")


def compact(config: TrainConfig, result: Mapping[str, Any], epochs: Sequence[Mapping[str, Any]],
            cpu_s: float) -> dict[str, Any]:
    """The record written for one finished run."""
    record: dict[str, Any] = {"config": json.loads(config.to_json()), "cpu_s": round(float(cpu_s), 3),
                              "machine": machine_name()}
    record.update({k: result[k] for k in RESULT_KEYS if k in result})
    record["epochs"] = [{k: e[k] for k in EPOCH_KEYS if k in e} for e in epochs]
    return record


def machine_name() -> str:
    """The CPU model from ``/proc/cpuinfo`` (else the platform's processor name)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class ResultStore:
    """The folder of result files of one variant."""

    path: Path

    def file(self, run_hash: str) -> Path:
        return self.path / f"{run_hash}.json"

    def write(self, config: TrainConfig, record: Mapping[str, Any]) -> Path:
        """Write ``record`` as ``<hash>.json`` atomically (the folder is created)."""
        from ertheory.fileio import atomic_write_text

        self.path.mkdir(parents=True, exist_ok=True)
        target = self.file(config.run_hash())
        atomic_write_text(target, json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n")
        return target

    def index(self) -> dict[str, dict[str, Any]]:
        """Run hash (recomputed from each file's configuration) -> record.  Unreadable files raise."""
        out: dict[str, dict[str, Any]] = {}
        for file in sorted(self.path.glob("*.json")) if self.path.is_dir() else []:
            try:
                record = json.loads(file.read_text())
                config = TrainConfig.from_json(record["config"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{file}: not a study result file ({exc}); move it away or delete it") from exc
            out[config.run_hash()] = record
        return out


__all__ = ["EPOCH_KEYS", "RESULT_KEYS", "ResultStore", "compact", "machine_name"]
