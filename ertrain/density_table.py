"""The per-layer densities a scheme gives a model's masked layers (what ``ertrain densities`` prints).

:func:`density_report` builds the model, applies the scheme (scoring the model or a batch of data
when the scheme needs it: ER-SynFlow needs the model, ER-SNIP a batch), optionally samples the ER
masks and repairs their flow, and returns one JSON-able dict; :func:`format_report` renders it as
a table.  The realised overall density is reported beside the requested one: the ``paper-code``
protocol's variants (e.g. balanced without redistribution) miss the request by design.
"""

from __future__ import annotations

import contextlib
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
    protocol: str = "exact"
    method: str = "static"
    dataset: str | None = None
    data_dir: str | None = None
    batch_size: int = 128


def density_report(req: DensityRequest) -> dict[str, Any]:
    """Per-layer densities (and, with a seed, sampled masks) of ``req``; see the module docstring."""
    from ertrain.density import DENSITY_SCHEMES, layer_densities, layer_sizes
    from ertrain.models import build_model, layer_weight, maskable_layers, shapes_only
    from ertrain.protocol import PROTOCOLS

    entry = DENSITY_SCHEMES.entry(req.density_scheme)
    PROTOCOLS.check(req.protocol)
    if req.flow_repair is not None and req.seed is None:
        raise ValueError("--flow-repair needs --seed (it repairs sampled masks)")
    model_options, scheme_options = _protocol_options(req)
    kwargs = dict(req.model_kwargs)
    data = _scheme_data(req, entry.needs, kwargs)
    # a model the scheme does not score only gives its shapes: no memory, no initialisation
    with contextlib.nullcontext() if _scored(req, entry.needs) else shapes_only():
        model = build_model(req.model, width=req.width, **kwargs, **model_options)
    named = maskable_layers(model, exclude_first=req.exclude_first, exclude_last=req.exclude_last)
    shapes = [tuple(int(d) for d in layer_weight(m).shape) for _, m in named]
    context = _scheme_context(req, entry.needs, model, data)
    p = layer_densities(req.density_scheme, shapes, req.density, **scheme_options, **context)
    sizes = layer_sizes(shapes).astype(np.int64)
    overall = float(np.dot(sizes, p) / sizes.sum())
    out: dict[str, Any] = {
        "model": req.model, "density_scheme": req.density_scheme, "protocol": req.protocol,
        "scheme_options": scheme_options, "model_options": model_options,
        "requested_density": req.density, "overall_density": overall, "density_error": abs(overall - req.density),
        "params": int(sizes.sum()),
        "layers": [
            {"name": n, "shape": list(s), "params": int(m), "density": float(p_l), "expected_nnz": float(p_l * m)}
            for (n, _), s, m, p_l in zip(named, shapes, sizes, p, strict=True)
        ],
    }
    if req.seed is not None:
        out.update(_sampled(req, shapes, p, out["layers"], int(sizes.sum())))
    return out


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


def _scheme_context(req: DensityRequest, needs: str, model: Any, data: Any) -> dict[str, Any]:
    """Run-time arguments of schemes that score the model (``net``, ``input_shape``) or data (``batch``)."""
    if not _scored(req, needs):
        return {}
    import torch

    from ertrain.scores import scheme_options

    generator = torch.Generator().manual_seed(0 if req.seed is None else req.seed)
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


def _sampled(req: DensityRequest, shapes: list[tuple[int, ...]], p: np.ndarray, layers: list[dict[str, Any]],
             total: int) -> dict[str, Any]:
    import torch

    from ertrain.masks import flow_repair, sample_er_masks

    gen = torch.Generator().manual_seed(int(req.seed or 0))
    masks = sample_er_masks(shapes, p, gen)
    added = [0] * len(masks)
    if req.flow_repair is not None:
        masks, added = flow_repair(masks, req.flow_repair, gen, densities=p)
    nnz = [int(mk.sum()) for mk in masks]
    for layer, k, a in zip(layers, nnz, added, strict=True):
        layer["realised_density"] = k / layer["params"]
        layer["edges_added"] = a
    return {"seed": req.seed, "flow_repair": req.flow_repair, "realised_density": sum(nnz) / total,
            "edges_added": int(sum(added))}


def format_report(out: dict[str, Any]) -> str:
    """The report as a table (one line per layer)."""
    sampled = "seed" in out
    lines = [
        f"{out['model']}  scheme={out['density_scheme']}  protocol={out['protocol']}  "
        f"requested density={out['requested_density']:.6g}  overall density={out['overall_density']:.12g}  "
        f"({out['params']:,} masked weights)",
        f"{'layer':<32} {'shape':<20} {'params':>11} {'density':>10}" + (" realised  added" if sampled else ""),
    ]
    for layer in out["layers"]:
        shape = "x".join(map(str, layer["shape"]))
        line = f"{layer['name']:<32} {shape:<20} {layer['params']:>11,} {layer['density']:>10.6f}"
        if sampled:
            line += f" {layer['realised_density']:>8.6f} {layer['edges_added']:>6}"
        lines.append(line)
    if sampled:
        lines.append(f"realised overall density {out['realised_density']:.6f}; edges added: {out['edges_added']}")
    return "\n".join(lines)


__all__ = ["DensityRequest", "density_report", "format_report"]
