"""Datasets as whole in-memory tensors, a registry by name.

Every loader returns a :class:`DataBundle` holding normalised float inputs and integer labels
(float targets for regression) for the whole train and test splits, so that the training loop can
move them to the device once and batch (and augment) them there.

Registered names: ``fashion-mnist``, ``digits``, ``cifar10``, ``cifar100``, ``tiny-imagenet``,
``cora``, ``synthetic-citation``, ``teacher``, ``synthetic-cifar``, ``modular-addition``, ``tabular``,
``cps1988``.
Each declares typed options, the kind of input it yields and the shape of one example
(:mod:`ertrain.data.registry`); :func:`load_dataset` refuses unknown or mistyped options, empty
splits and shapes other than the declared one.  :func:`data_fingerprint` identifies the files a run
read and :func:`check_compatible` checks a model against a dataset (:mod:`ertrain.data.identity`).
Add a dataset with the :func:`register_dataset` decorator.

Example::

    from ertrain.data import load_dataset
    data = load_dataset("digits", None)
    data.x_train.shape, data.num_classes        # (torch.Size([1437, 1, 8, 8]), 10)
"""

from __future__ import annotations

from ertrain.data.bundle import TASKS, DataBundle
from ertrain.data.identity import IncompatibleError, check_compatible, data_fingerprint, model_inputs
from ertrain.data.registry import (
    DATASETS,
    INPUT_KINDS,
    Dataset,
    check_bundle,
    dataset,
    dataset_options,
    declared_classes,
    declared_shape,
    estimated_memory,
    load_dataset,
    register_dataset,
)

__all__ = [
    "DATASETS",
    "INPUT_KINDS",
    "TASKS",
    "DataBundle",
    "Dataset",
    "IncompatibleError",
    "check_bundle",
    "check_compatible",
    "data_fingerprint",
    "dataset",
    "dataset_options",
    "declared_classes",
    "declared_shape",
    "estimated_memory",
    "load_dataset",
    "model_inputs",
    "register_dataset",
]
