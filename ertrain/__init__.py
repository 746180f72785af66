"""ertrain: train random (Erdos-Renyi) sparse networks.

Layerwise densities, ER masks with flow repair, masked training that keeps pruned weights
exactly zero, sparse-to-sparse methods, the paper's models and data, sweeps and reports.
May import ``ertheory``; needs torch.

The public API is importable from the package (each name is loaded on first use, so ``import
ertrain`` stays cheap)::

    from ertrain import Masking, build_model, layer_densities, load_dataset, TrainConfig, train

    config = TrainConfig.build({"model": "mlp", "dataset": "digits", "recipe": "digits-mlp",
                                "density_scheme": "balanced", "density": 0.1})
    result = train(config, "runs/")          # runs/<run hash>/result.json, resumable

``TrainConfig.build`` is :func:`resolve` (explicit > protocol > recipe > defaults, as ``ertrain train``
and sweeps resolve) without the record of where each field came from; ``resolve(...).sources`` has it.
"""

from __future__ import annotations

from ertheory._lazy import lazy_exports

__version__ = "0.1.0"

#: Public name -> (module, attribute).
_PUBLIC: dict[str, tuple[str, str]] = {
    # configuration and training
    "TrainConfig": ("config", "TrainConfig"),
    "resolve": ("config", "resolve"),
    "train": ("runner", "run"),
    "run_config": ("runner", "run_config"),
    "load_run": ("runner", "load_run"),
    "Trainer": ("trainer", "Trainer"),
    "RunDir": ("rundir", "RunDir"),
    # densities, masks, models, data
    "layer_densities": ("density", "layer_densities"),
    "plan_densities": ("density", "plan_densities"),
    "Masking": ("masks", "Masking"),
    "sample_er_masks": ("masks", "sample_er_masks"),
    "flow_repair": ("masks", "flow_repair"),
    "build_model": ("models", "build_model"),
    "maskable_layers": ("models", "maskable_layers"),
    "mask_scope": ("models", "mask_scope"),
    "plan_masks": ("masks", "plan_masks"),
    "MaskPlan": ("masks", "MaskPlan"),
    "ParamRule": ("models", "ParamRule"),
    "register_param_rule": ("models", "register_param_rule"),
    "load_dataset": ("data", "load_dataset"),
    # registries and their registration functions
    "Registry": ("registry", "Registry"),
    "DENSITY_SCHEMES": ("density", "DENSITY_SCHEMES"),
    "register_density_scheme": ("density", "register_density_scheme"),
    "METHODS": ("methods", "METHODS"),
    "register_method": ("methods", "register_method"),
    "MODELS": ("models", "MODELS"),
    "register_model": ("models", "register_model"),
    "DATASETS": ("data", "DATASETS"),
    "register_dataset": ("data", "register_dataset"),
    "PROTOCOLS": ("protocol", "PROTOCOLS"),
    "RECIPES": ("recipes", "RECIPES"),
}

__all__ = ["__version__", *sorted(_PUBLIC)]


__getattr__, __dir__ = lazy_exports("ertrain", _PUBLIC, globals())
