"""The study's compute budget: epochs each run trains, measured CPU seconds per epoch, and their product.

:func:`epochs_of` counts the epochs a configuration trains (IMP trains every cycle for ``epochs``);
:func:`plan_budget` lists the distinct runs of a design (flow-repair twins counted once, STR calibration at its
worst case of ``probes`` probes per start, ER-IMP once per IMP run) grouped by architecture, so that the total
is ``sum(runs x epochs x seconds per epoch)`` with seconds measured by :func:`seconds_per_epoch`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from ertrain.config import TrainConfig
from studies.reproduction.arms import Arm, build_arms
from studies.reproduction.design import Design


def epochs_of(config: TrainConfig) -> int:
    """Epochs ``config`` trains: ``epochs`` per IMP cycle (cycle 0 included), else ``epochs``."""
    if config.method != "imp":
        return config.epochs
    from ertrain.methods.imp import cycle_targets

    o = config.method_options
    total = 10**6  # counts in units of 1e-6 of the weights: only the number of targets matters
    start = int(round(config.density * total))
    targets = cycle_targets(start, total, float(o.get("prune_fraction", 0.2)), int(o.get("cycles", 1)),
                            float(o.get("final_density", 0.0)))
    return config.epochs * len(targets)


def architecture(config: TrainConfig) -> str:
    """What sets the cost of an epoch: model, width, options, dataset (and the method for STR's reparametrisation)."""
    opts = ",".join(f"{k}={v}" for k, v in sorted(config.model_options.items()))
    kind = "str" if config.method == "str" else "plain"
    return f"{config.model}[{opts}] x{config.width:g} on {config.dataset} ({kind})"


@dataclass(frozen=True)
class BudgetLine:
    """Runs of one architecture: how many, how many epochs in all, and a configuration to time."""

    architecture: str
    runs: int
    epochs: int
    example: TrainConfig


def plan_budget(design: Design, str_probes: bool = True) -> list[BudgetLine]:
    """The distinct runs of ``design`` before any result exists, by architecture (see the module docstring)."""
    arms = build_arms(design, {})
    configs: dict[str, TrainConfig] = {}
    for arm in arms:
        for config in _configs_of(design, arm):
            configs.setdefault(config.run_hash(), config)
    runs, epochs = Counter[str](), Counter[str]()
    example: dict[str, TrainConfig] = {}
    for config in configs.values():
        key = architecture(config)
        runs[key] += 1
        epochs[key] += epochs_of(config)
        example.setdefault(key, config)
    return [BudgetLine(k, runs[k], epochs[k], example[k]) for k in sorted(runs)]


def _configs_of(design: Design, arm: Arm) -> list[TrainConfig]:
    """The runs an arm costs: its own; an STR calibration's probes and seeds; ER-IMP as one static run."""
    from studies.reproduction.runner import repair_edges

    if arm.config is not None:
        twin = arm.config.flow_repair is not None and repair_edges(arm.config) == 0
        return [arm.config.replace(flow_repair=None) if twin else arm.config]
    assert arm.waits_for is not None
    if arm.role == "calibration":  # worst case: every probe, then the other seeds
        probes = int(design.claim(3)["str"]["probes"])
        decays = [arm.waits_for.method_options["s_weight_decay"] * (1.0 + i) for i in range(probes)]
        tried = [arm.waits_for.replace(method_options={**arm.waits_for.method_options, "s_weight_decay": d})
                 for d in decays]
        return tried + [arm.waits_for.replace(seed=s) for s in design.seeds[1:]]
    static = arm.waits_for.replace(method="static", method_options={})  # ER-IMP costs like a fixed mask
    return [static.replace(seed=arm.seed + 10_000)]


def seconds_per_epoch(config: TrainConfig, epochs: int = 2) -> float:
    """Process CPU seconds per epoch of a short dense run of ``config``'s architecture (evaluation included)."""
    import torch

    from ertrain.trainer import Trainer
    from studies.reproduction.datashapes import dataset_of

    torch.set_num_threads(1)
    probe = config.replace(epochs=epochs, density_scheme="dense", density=1.0, flow_repair=None, method=(
        "str" if config.method == "str" else "static"), method_options=(
        {k: config.method_options[k] for k in ("s_init", "s_weight_decay")} if config.method == "str" else {}))
    trainer = Trainer.from_config(probe.replace(device="cpu"), data=dataset_of(probe), progress=False)
    from ertrain.methods import get_method

    method = get_method(probe.method).from_config(probe)
    start = time.process_time()
    method.run(trainer)
    return (time.process_time() - start) / epochs


__all__ = ["BudgetLine", "architecture", "epochs_of", "plan_budget", "seconds_per_epoch"]
