"""The per-parameter densities a scheme gives a model's masked parameters (what ``ertrain densities`` prints).

The model is a registered one or any ``module:callable`` factory; what is masked follows the
per-parameter rules of :func:`ertrain.models.mask_scope`, and the report covers the whole model
(masked parameters with shapes and fan-in/out, excluded ones with why, tied ones, unmasked weights).

:func:`density_report` builds the model, applies the scheme (scoring the model or a batch of data
when the scheme needs it: ER-SynFlow needs the model, ER-SNIP a batch), optionally samples the ER
masks and repairs their flow, and returns one JSON-able dict; :func:`format_report` renders it as
a table.  The realised overall density is reported beside the requested one: the ``paper-code``
protocol's variants (e.g. balanced without redistribution) miss the request by design.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DensityRequest:
    """Everything :func:`density_report` needs (the ``ertrain densities`` flags)."""

    model: str
    density_scheme: str
    density: float
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    width: float = 1.0
    model_options: dict[str, Any] = field(default_factory=dict)
    scheme_options: dict[str, Any] = field(default_factory=dict)
    exclude_first: bool = False
    exclude_last: bool = False
    seed: int | None = None
    flow_repair: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    tied: str = "dense"
    protocol: str = "exact"
    method: str = "static"
    dataset: str | None = None
    data_dir: str | None = None
    batch_size: int = 128


def density_report(req: DensityRequest) -> dict[str, Any]:
    """Per-parameter densities of ``req`` over the whole model; with a seed, the masks training samples.

    With ``seed`` the masks come from :func:`ertrain.masks.plan_masks` with a CPU generator seeded
    ``seed`` (as the trainer seeds it), so the realised densities are those a run of the same config
    and seed trains with.
    """
    from ertrain.density import DENSITY_SCHEMES, layer_densities, layer_sizes
    from ertrain.models import mask_scope, mask_targets, shapes_only
    from ertrain.protocol import PROTOCOLS

    entry = DENSITY_SCHEMES.entry(req.density_scheme)
    PROTOCOLS.check(req.protocol)
    if req.flow_repair is not None and req.seed is None:
        raise ValueError("--flow-repair needs --seed (it repairs sampled masks)")
    factory = _factory(req.model)
    model_options, scheme_options = _protocol_options(req) if factory is None else ({}, dict(req.scheme_options))
    kwargs = dict(req.model_kwargs)
    data = _scheme_data(req, entry.needs, kwargs)
    # a model the scheme does not score only gives its shapes: no memory, no initialisation
    with contextlib.nullcontext() if _scored(req, entry.needs) else shapes_only():
        model = _build(req, factory, kwargs, model_options)
    scope = mask_scope(model, include=req.include, exclude=req.exclude, tied=req.tied)
    targets = mask_targets(model, exclude_first=req.exclude_first, exclude_last=req.exclude_last,
                           include_globs=req.include, exclude_globs=req.exclude, tied=req.tied)
    shapes = [t.canonical_shape for t in targets]
    generator = _generator(req)
    context = _scheme_context(req, entry.needs, model, data, generator)
    p = layer_densities(req.density_scheme, shapes, req.density, **scheme_options, **context)
    sizes = layer_sizes(shapes).astype(np.int64)
    overall = float(np.dot(sizes, p) / sizes.sum())
    unmasked = scope.total_params - int(sizes.sum())
    out: dict[str, Any] = {
        "model": req.model, "density_scheme": req.density_scheme, "protocol": req.protocol,
        "scheme_options": scheme_options, "model_options": model_options if factory is None else req.model_options,
        "requested_density": req.density, "overall_density": overall, "density_error": abs(overall - req.density),
        "params": int(sizes.sum()), "unmasked_params": unmasked, "total_params": scope.total_params,
        "density_all_params": (overall * int(sizes.sum()) + unmasked) / scope.total_params,
        "layers": [
            {"name": t.name, "parameter": t.full_name, "rule": t.rule, "shape": list(t.shape), "fan_in": t.fan_in,
             "fan_out": t.fan_out, "params": int(m), "density": float(p_l), "expected_nnz": float(p_l * m)}
            for t, m, p_l in zip(targets, sizes, p, strict=True)
        ],
        "excluded": [dict(e) for e in scope.excluded], "ties": [dict(t) for t in scope.ties],
    }
    if req.seed is not None and generator is not None:
        from ertrain.masks import plan_masks

        plan = plan_masks(model, req.density_scheme, req.density, generator, req.flow_repair, layers=targets,
                          **scheme_options, **context)
        out.update(_sampled(req, plan.report(), out["layers"]))
    return out


def _factory(model: str) -> Callable[..., Any] | None:
    """The callable named by ``module:callable`` (None for a registered model's name); the working
    directory is searched too, as ``python -m`` does."""
    if ":" not in model:
        return None
    import importlib
    import os
    import sys

    module_name, _, attr = model.partition(":")
    if "" not in sys.path and os.getcwd() not in sys.path:  # as ``python -m``: modules of the working directory
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"--model {model!r}: cannot import it ({e}); valid: a registered model name or an "
                         "importable module:callable") from None
    if not callable(obj):
        raise ValueError(f"--model {model!r} is not callable; valid: a registered model name or module:callable")
    return obj


def _build(req: DensityRequest, factory: Callable[..., Any] | None, kwargs: dict[str, Any],
           model_options: dict[str, Any]) -> Any:
    """The registered model, or ``factory(**model_options)`` for ``module:callable``."""
    from torch import nn

    from ertrain.models import build_model

    if factory is None:
        return build_model(req.model, width=req.width, **kwargs, **model_options)
    try:
        model = factory(**req.model_options)
    except TypeError as e:
        raise ValueError(f"--model {req.model!r} with --model-options {req.model_options!r}: {e}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {req.model!r} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _generator(req: DensityRequest) -> Any:
    """The CPU generator the trainer uses for a run with ``req.seed`` (None without a seed)."""
    import torch

    return torch.Generator().manual_seed(0 if req.seed is None else int(req.seed))


def _protocol_options(req: DensityRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """Model and scheme options after the protocol's defaults (explicit options win)."""
    from ertrain.protocol import resolve_protocol

    resolved = resolve_protocol(
        req.protocol, model=req.model, dataset=req.dataset or "cifar10", method=req.method,
        density_scheme=req.density_scheme,
        explicit={"model_options": req.model_options, "density_options": req.scheme_options},
    )
    return dict(resolved["model_options"]), dict(resolved["density_options"])


def _scheme_data(req: DensityRequest, needs: str, kwargs: dict[str, Any]) -> Any:
    """The dataset when the scheme scores data (its shapes then also set the model's input)."""
    if needs != "data" or req.scheme_options.get("ratios") is not None:
        return None
    if req.dataset is None:
        raise ValueError(
            f"density scheme {req.density_scheme!r} scores a batch of training data: give --dataset NAME "
            "(and --data-dir), or --scheme-options '{\"ratios\": [one per layer]}'"
        )
    from ertrain.data import load_dataset
    from ertrain.trainer import model_kwargs_for

    data = load_dataset(req.dataset, req.data_dir, seed=0)
    kwargs.update(model_kwargs_for(data))
    return data


def _scored(req: DensityRequest, needs: str) -> bool:
    """Whether the scheme scores the model or data (not when it needs only shapes or is given its ratios)."""
    return needs != "shapes" and req.scheme_options.get("ratios") is None


def _scheme_context(req: DensityRequest, needs: str, model: Any, data: Any, generator: Any) -> dict[str, Any]:
    """Run-time arguments of schemes that score the model (``net``, ``input_shape``) or data (``batch``)."""
    if not _scored(req, needs):
        return {}
    import torch

    from ertrain.scores import scheme_options

    if data is not None:
        return scheme_options(req.density_scheme, {}, model, data.x_train, data.y_train, req.batch_size, generator)
    shape = _input_shape(req)
    x = torch.zeros((1, *shape))
    return scheme_options(req.density_scheme, {}, model, x, torch.zeros(1, dtype=torch.long), 1, generator)


def _input_shape(req: DensityRequest) -> tuple[int, ...]:
    k = req.model_kwargs
    if req.model in ("mlp",) and k.get("in_features"):
        return (int(k["in_features"]),)
    return (int(k.get("in_channels", 3)), int(k.get("input_size", 32)), int(k.get("input_size", 32)))


def _sampled(req: DensityRequest, plan: dict[str, Any], layers: list[dict[str, Any]]) -> dict[str, Any]:
    """The realised densities and added edges of the sampled, repaired masks (``plan``: a plan's report)."""
    for layer, got in zip(layers, plan["layers"], strict=True):
        layer["realised_density"] = got["density"]
        layer["edges_added"] = got["edges_added"]
    return {"seed": req.seed, "flow_repair": req.flow_repair, "realised_density": plan["overall_density"],
            "realised_density_all_params": plan["density_all_params"], "edges_added": plan["edges_added"]}


def format_report(out: dict[str, Any]) -> str:
    """The report as a table: one line per masked parameter, then what stays dense and the totals."""
    sampled = "seed" in out
    lines = [
        f"{out['model']}  scheme={out['density_scheme']}  protocol={out['protocol']}  "
        f"requested density={out['requested_density']:.6g}  overall density={out['overall_density']:.12g}  "
        f"({out['params']:,} masked weights)",
        f"{'parameter':<40} {'shape':<16} {'fan-in':>7} {'fan-out':>7} {'params':>11} {'density':>10}"
        + (" realised  added" if sampled else ""),
    ]
    for layer in out["layers"]:
        shape = "x".join(map(str, layer["shape"]))
        line = (f"{layer['parameter']:<40} {shape:<16} {layer['fan_in']:>7} {layer['fan_out']:>7} "
                f"{layer['params']:>11,} {layer['density']:>10.6f}")
        if sampled:
            line += f" {layer['realised_density']:>8.6f} {layer['edges_added']:>6}"
        lines.append(line)
    for e in out["excluded"]:
        lines.append(f"dense: {e['name']} {'x'.join(map(str, e['shape']))} ({e['params']:,} weights): {e['reason']}")
    for t in out["ties"]:
        lines.append(f"tied: {', '.join(t['names'])}: {t['resolution']}")
    lines.append(f"{out['unmasked_params']:,} of {out['total_params']:,} parameters unmasked "
                 "(biases, norms, excluded)")
    if sampled:
        lines.append(f"realised density {out['realised_density']:.6f} over the masked weights, "
                     f"{out['realised_density_all_params']:.6f} over all parameters; "
                     f"weights added by flow repair: {out['edges_added']}")
    else:
        lines.append(f"planned density {out['density_all_params']:.6f} over all parameters")
    return "\n".join(lines)


__all__ = ["DensityRequest", "density_report", "format_report"]
