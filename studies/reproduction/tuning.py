"""Recipe tuning on a validation split held out from the training split (dense networks only).

A candidate recipe is trained with ``val_fraction`` > 0 (the last rows of the training split, never trained on;
:func:`ertrain.evaluation.hold_out`) and judged by its per-epoch validation accuracy; the test split is never
read here.  The recipe files record the candidates and the validation accuracies that chose them.

Example::

    from studies.reproduction.tuning import tune
    config = TrainConfig.build({"model": "mlp", "dataset": "digits", "recipe": "digits-mlp", "val_fraction": 0.2})
    tune(config)[-1]["val_accuracy"]
"""

from __future__ import annotations

import time
from typing import Any

from ertrain.config import TrainConfig


def tune(config: TrainConfig) -> list[dict[str, Any]]:
    """Train the dense ``config``; per-epoch ``epoch``, ``train_loss``, ``val_loss``, ``val_accuracy``, ``cpu_s``.

    ``cpu_s`` is the process CPU time of the epoch (training and evaluation).
    """
    from ertrain.trainer import Trainer

    if config.density_scheme != "dense":
        raise ValueError(f"recipes are tuned on dense networks, got density_scheme {config.density_scheme!r}")
    if not config.val_fraction > 0.0:
        raise ValueError(f"tuning needs a validation split: val_fraction must be > 0, got {config.val_fraction!r}")
    trainer = Trainer.from_config(config, progress=False)
    records: list[dict[str, Any]] = []
    clock = time.process_time()

    def record(tr: Trainer, fit_index: int, fit_epochs_done: int) -> None:
        nonlocal clock
        rec, now = tr.history[-1], time.process_time()
        records.append({"epoch": rec["epoch"], "train_loss": rec["train_loss"], "val_loss": rec["val_loss"],
                        "val_accuracy": rec["val_accuracy"], "cpu_s": now - clock})
        clock = now

    trainer.on_epoch_end = record
    trainer.fit(config.epochs, desc="tune")
    return records


__all__ = ["tune"]
