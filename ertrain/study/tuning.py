"""Recipe tuning on a validation split held out from the training split (dense networks only).

The test split is never used: :func:`validation_bundle` cuts the last ``n_val`` training examples
off as the evaluation split, so the per-epoch ``test_accuracy`` of the trainer's records is the
*validation* accuracy.  Input standardisation keeps the loader's statistics (pixel or feature means
over the whole training split; no label is involved).

Example::

    from ertrain.study.tuning import tune
    records = tune(TrainConfig(model="mlp", dataset="digits", epochs=15, lr=0.05, batch_size=32), n_val=300)
    records[-1]["val_accuracy"]
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from ertrain.config import TrainConfig
from ertrain.data import DataBundle, load_dataset


def validation_bundle(data: DataBundle, n_val: int) -> DataBundle:
    """``data`` with its last ``n_val`` training examples as the evaluation split (the test split dropped)."""
    if data.is_graph:
        raise ValueError(f"dataset {data.name!r} is a graph: use its own validation nodes")
    n = int(data.x_train.shape[0])
    if not 0 < n_val < n:
        raise ValueError(f"n_val must be in (0, {n}) for dataset {data.name!r}, got {n_val!r}")
    return dataclasses.replace(data, x_train=data.x_train[: n - n_val], y_train=data.y_train[: n - n_val],
                               x_test=data.x_train[n - n_val:], y_test=data.y_train[n - n_val:])


def tune(config: TrainConfig, n_val: int) -> list[dict[str, Any]]:
    """Train the dense ``config`` on the training split minus ``n_val`` examples; per-epoch validation records.

    Each record has ``epoch``, ``train_loss``, ``val_loss``, ``val_accuracy`` and ``cpu_s`` (process CPU time of
    the epoch, evaluation included).
    """
    from ertrain.train import Trainer

    if config.density_scheme != "dense":
        raise ValueError(f"recipes are tuned on dense networks, got density_scheme {config.density_scheme!r}")
    data = load_dataset(config.dataset, config.data_dir, seed=config.data_seed, **config.data_options)
    trainer = Trainer.from_config(config, data=validation_bundle(data, n_val), progress=False)
    records: list[dict[str, Any]] = []
    clock = time.process_time()

    def record(tr: Trainer, fit_index: int, fit_epochs_done: int) -> None:
        nonlocal clock
        rec = tr.history[-1]
        now = time.process_time()
        records.append({"epoch": rec["epoch"], "train_loss": rec["train_loss"], "val_loss": rec["test_loss"],
                        "val_accuracy": rec["test_accuracy"], "cpu_s": now - clock})
        clock = now

    trainer.on_epoch_end = record
    trainer.fit(config.epochs, desc="tune")
    return records


__all__ = ["tune", "validation_bundle"]
