"""When two arms are the same network: identical resolved configurations, or identical per-layer densities.

Two fixed-mask arms whose configurations differ only in how the layerwise densities were *named* (the density
scheme and its options) but whose schemes give the same per-layer densities sample the same masks from the
same seed: they are one network, and comparing them is not a test.  Per-layer densities are computed from the
model's maskable weight shapes by the scheme itself (:func:`ertrain.density.layer_densities`), without training.
"""

from __future__ import annotations

import functools
import json

from ertrain.config import TrainConfig

#: Schemes whose per-layer densities follow from the weight shapes alone (no data, no scores).
SHAPE_SCHEMES = ("uniform", "erk", "balanced", "pyramidal")
#: Per-layer densities closer than this are the same (sampling cannot tell them apart).
TOL = 1e-9
#: Configuration fields that only name the layerwise densities.
NAMING_FIELDS = ("density_scheme", "density_options")


def planned_layers(config: TrainConfig) -> tuple[float, ...] | None:
    """The per-layer densities ``config``'s scheme gives its model, or None for other schemes."""
    if config.density_scheme not in SHAPE_SCHEMES:
        return None
    return _planned(config.to_json())


@functools.lru_cache(maxsize=256)
def _planned(config_json: str) -> tuple[float, ...]:
    config = TrainConfig.from_json(config_json)
    from ertrain.density import layer_densities
    from ertrain.models import build_model, layer_weight, maskable_layers
    from studies.reproduction.datashapes import model_kwargs

    net = build_model(config.model, width=config.width, **model_kwargs(config), **config.model_options)
    shapes = [tuple(layer_weight(m).shape) for _, m in maskable_layers(net)]
    return tuple(float(v) for v in layer_densities(config.density_scheme, shapes, config.density,
                                                   **config.density_options))


def same_network(a: TrainConfig, b: TrainConfig) -> str:
    """Why ``a`` and ``b`` train the same network (``""`` when they do not)."""
    if a.run_hash() == b.run_hash():
        return "identical resolved configurations"
    fa, fb = (json.loads(c.to_json()) for c in (a, b))
    if any(fa[k] != fb[k] for k in fa if k not in NAMING_FIELDS) or set(fa) != set(fb):
        return ""
    la, lb = planned_layers(a), planned_layers(b)
    if la is not None and lb is not None and len(la) == len(lb) and all(
            abs(x - y) <= TOL for x, y in zip(la, lb, strict=True)):
        return "identical per-layer densities (" + ", ".join(f"{v:.4g}" for v in la) + "): the same masks per seed"
    return ""


__all__ = ["NAMING_FIELDS", "SHAPE_SCHEMES", "TOL", "planned_layers", "same_network"]
