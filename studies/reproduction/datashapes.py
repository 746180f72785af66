"""Model keyword arguments that follow from a configuration's dataset (declared, else loaded once per process)."""

from __future__ import annotations

import functools
import json
from typing import Any

from ertrain.config import TrainConfig


@functools.lru_cache(maxsize=8)
def _load(dataset: str, data_dir: str | None, data_seed: int, options: str) -> Any:
    from ertrain.data import load_dataset

    return load_dataset(dataset, data_dir, seed=data_seed, **json.loads(options))


def dataset_of(config: TrainConfig) -> Any:
    """The :class:`~ertrain.data.DataBundle` of ``config`` (cached: the study asks for the same few many times)."""
    return _load(config.dataset, config.data_dir, config.data_seed, json.dumps(config.data_options, sort_keys=True))


def model_kwargs(config: TrainConfig) -> dict[str, Any]:
    """``build_model`` keyword arguments (classes, input size) of ``config``'s dataset: from the shape and the
    number of classes the dataset declares, so that no data file is needed; else from the loaded data."""
    from ertrain.data import declared_classes, declared_shape
    from ertrain.trainer import model_kwargs_for, model_kwargs_for_shape

    shape = declared_shape(config.dataset, config.data_options)
    classes = declared_classes(config.dataset)
    if shape is not None and classes is not None and all(s is not None for s in shape):
        return model_kwargs_for_shape(tuple(int(s) for s in shape if s is not None), classes)
    return model_kwargs_for(dataset_of(config))


def majority_share(config: TrainConfig) -> float | None:
    """Fraction of the test examples (test nodes) in the most frequent class; None for regression."""
    import torch

    data = dataset_of(config)
    if data.task != "classification":
        return None
    y = data.y_test[data.test_index] if data.test_index is not None else data.y_test
    return float(torch.bincount(y).max()) / float(y.numel())


__all__ = ["dataset_of", "majority_share", "model_kwargs"]
