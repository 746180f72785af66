"""The arms of each claim: a design's ``[claim<k>]`` table expanded into training configurations.

An :class:`Arm` is one seed of one setting of one claim.  Its ``setting`` (a tuple of ``(key, value)``
labels) identifies the setting across seeds; arms of different claims that train the same configuration
share one run (runs are identified by their configuration's hash).  Some arms depend on another run's
result: ER-IMP takes the layerwise densities of the IMP run of the same seed and target, and STR's
threshold decay is calibrated on the first seed until its final density reaches the target.  Such an arm
has ``config=None`` and ``waits_for`` set to the configuration it needs; the runner trains that one first
and expands the arms again.

Every builder takes the design and ``index`` (run hash -> result record of the runs finished so far) and
returns the claim's arms.  The builders are the declarative table :data:`BUILDERS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ertrain.config import TrainConfig
from studies.reproduction.design import Design, make_config

Setting = tuple[tuple[str, Any], ...]
Index = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Arm:
    """One seed of one setting of a claim.  ``role`` is ``"arm"`` or ``"calibration"`` (STR probes)."""

    claim: int
    setting: Setting
    seed: int
    config: TrainConfig | None
    waits_for: TrainConfig | None = None
    role: str = "arm"

    def label(self, key: str) -> Any:
        return dict(self.setting)[key]


def setting(**labels: Any) -> Setting:
    return tuple(labels.items())


# ------------------------------------------------------------------------------------------------ claim 1


@dataclass(frozen=True)
class RatioGrid:
    """Claim 1 for one model: its ratios, sparsities, and the ratios also trained with flow repair."""

    schemes: tuple[str, ...]
    sparsities: tuple[float, ...]
    repaired: tuple[str, ...]


def ratio_grids(design: Design) -> dict[str, RatioGrid]:
    """``[claim1.models.<model>]`` tables: ``schemes``, ``sparsities``, ``repaired`` (default: every scheme)."""
    grids = {}
    for model, t in design.claim(1)["models"].items():
        schemes = tuple(t["schemes"])
        repaired = tuple(t.get("repaired", schemes))
        if not set(repaired) <= set(schemes):
            raise ValueError(f"{design.path}: [claim1.models.{model}] repaired {list(repaired)} must be among "
                             f"its schemes {list(schemes)}")
        grids[model] = RatioGrid(schemes, tuple(float(x) for x in t["sparsities"]), repaired)
    return grids


def claim1_arms(design: Design, index: Index) -> list[Arm]:
    """Dense, and each ratio at each sparsity without (and, where listed, with) flow repair, for every model."""
    repair = design.claim(1)["flow_repair"]
    arms = []
    for model, grid in ratio_grids(design).items():
        for seed in design.seeds:
            arms.append(Arm(1, setting(model=model, ratio="dense", repair="none", sparsity=0.0), seed,
                            design.config(model, seed=seed)))
            for scheme in grid.schemes:
                for s in grid.sparsities:
                    cfg = design.config(model, density_scheme=scheme, sparsity=s, seed=seed)
                    arms.append(Arm(1, setting(model=model, ratio=scheme, repair="none", sparsity=s), seed, cfg))
                    if scheme in grid.repaired:
                        arms.append(Arm(1, setting(model=model, ratio=scheme, repair=repair, sparsity=s), seed,
                                        cfg.replace(flow_repair=repair)))
    return arms


# ------------------------------------------------------------------------------------------------ claim 2


def claim2_arms(design: Design, index: Index) -> list[Arm]:
    """ER at each width; dense at the same widths; dense with as many non-zero weights as each ER network."""
    c = design.claim(2)
    model, scheme, sparsity = c["model"], c["scheme"], float(c["sparsity"])
    fields = dict(c.get("fields", {}))
    arms = []
    for width in (float(w) for w in c["widths"]):
        er = dict(fields, density_scheme=scheme, sparsity=sparsity, width=width)
        nnz_width = equal_nnz_width(design, model, fields, width, 1.0 - sparsity)
        for seed in design.seeds:
            arms.append(Arm(2, setting(kind="ER", width=width), seed, design.config(model, seed=seed, **er)))
            arms.append(Arm(2, setting(kind="dense", width=width), seed,
                            design.config(model, seed=seed, width=width, **fields)))
            arms.append(Arm(2, setting(kind="dense, equal non-zeros", width=width), seed,
                            design.config(model, seed=seed, width=nnz_width, **fields)))
    return arms


def masked_weights(design: Design, model: str, fields: Mapping[str, Any], width: float) -> int:
    """Number of maskable weights of ``model`` at ``width`` on the design's dataset."""
    from ertrain.models import build_model, layer_weight, maskable_layers
    from studies.reproduction.datashapes import model_kwargs

    cfg = design.config(model, width=width, **fields)
    net = build_model(model, width=width, **model_kwargs(cfg), **cfg.model_options)
    return sum(layer_weight(m).numel() for _, m in maskable_layers(net))


def equal_nnz_width(design: Design, model: str, fields: Mapping[str, Any], width: float, density: float) -> float:
    """The dense width whose weight count is closest to ``density`` times that of the network at ``width``.

    Widths are multiples of ``1 / h`` for the model's first hidden width ``h`` (``hidden`` option, else 1):
    the candidates are scanned upwards until the count passes the target.
    """
    target = density * masked_weights(design, model, fields, width)
    unit = 1.0 / float(dict(fields.get("model_options", {})).get("hidden", [1])[0])
    best, best_gap, k = unit, math.inf, 1
    while True:
        count = masked_weights(design, model, fields, k * unit)
        if abs(count - target) < best_gap:
            best, best_gap = k * unit, abs(count - target)
        if count >= target:
            return round(best, 12)
        k += 1


# ------------------------------------------------------------------------------------------------ claim 3


def claim3_arms(design: Design, index: Index) -> list[Arm]:
    """IMP, RiGL and STR from the dense network and from ER starts, all to the same final density."""
    c = design.claim(3)
    final = round(1.0 - float(c["final_sparsity"]), 12)
    arms: list[Arm] = []
    for start in starts(c):
        arms += [Arm(3, setting(method="imp", start=start_name(start)), seed,
                     design.config(c["model"], seed=seed, method="imp", **start,
                                   method_options={**c["imp"], "final_density": final}))
                 for seed in design.seeds]
        arms += [Arm(3, setting(method="rigl", start=start_name(start)), seed,
                     design.config(c["model"], seed=seed, method="rigl", **start,
                                   method_options={**c["rigl"], "final_density": final}))
                 for seed in design.seeds]
        arms += str_arms(design, c, start, final, index)
    reference = {"density_scheme": c["start_scheme"], "sparsity": float(c["final_sparsity"])}
    arms += [Arm(3, setting(method="static", start=start_name(reference)), seed,
                 design.config(c["model"], seed=seed, **reference)) for seed in design.seeds]
    return arms


def starts(c: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The dense start and the ER starts of a sparse-to-sparse claim table."""
    ers = [{"density_scheme": c["start_scheme"], "sparsity": float(s)} for s in c["start_sparsities"]]
    return [{"density_scheme": "dense"}, *ers]


def start_name(start: Mapping[str, Any]) -> str:
    return "dense" if start["density_scheme"] == "dense" else f"{start['density_scheme']} ER {start['sparsity']:g}"


def str_arms(design: Design, c: Mapping[str, Any], start: dict[str, Any], final: float, index: Index) -> list[Arm]:
    """STR with its threshold decay calibrated on the first seed until the final density is near ``final``.

    Probes start at ``s_weight_decay`` and move by ``factor`` (up when the network ends too dense, down when
    too sparse) until the target is bracketed, then bisect geometrically; they stop when the final density is
    within ``tolerance`` of the target or after ``probes`` probes (then the closest probe is used).
    """
    o = dict(c["str"])
    name = start_name(start)

    def config(decay: float, seed: int) -> TrainConfig:
        options = {"s_init": o["s_init"], "s_weight_decay": decay}
        return design.config(c["model"], seed=seed, method="str", **start, method_options=options)

    tried: list[tuple[float, float]] = []  # (decay, final density)
    decay, lo, hi = float(o["s_weight_decay"]), 0.0, math.inf
    while len(tried) < int(o["probes"]):
        probe = config(decay, design.seeds[0])
        record = index.get(probe.run_hash())
        if record is None:
            return [Arm(3, setting(method="str", start=name), design.seeds[0], None, waits_for=probe,
                        role="calibration")]
        tried.append((decay, float(record["density"])))
        if abs(tried[-1][1] - final) <= float(o["tolerance"]):
            break
        lo, hi = (decay, hi) if tried[-1][1] > final else (lo, decay)  # too dense: a larger decay prunes more
        decay = next_decay(lo, hi, float(o["factor"]))
    chosen = min(tried, key=lambda t: abs(t[1] - final))[0]
    probes = [Arm(3, setting(method="str", start=name, decay=d), design.seeds[0], config(d, design.seeds[0]),
                  role="calibration") for d, _ in tried if d != chosen]
    return probes + [Arm(3, setting(method="str", start=name), seed, config(chosen, seed)) for seed in design.seeds]


def next_decay(lo: float, hi: float, factor: float) -> float:
    """The next probe: the geometric midpoint of a bracket ``[lo, hi]``, else a step of ``factor`` out of it."""
    if lo > 0.0 and math.isfinite(hi):
        return math.sqrt(lo * hi)
    return lo * factor if lo > 0.0 else hi / factor


# ------------------------------------------------------------------------------------------------ claim 4


def claim4_arms(design: Design, index: Index) -> list[Arm]:
    """ER-SNIP / ER-SynFlow / ER-IMP, balanced, pyramidal, and SNIP's, SynFlow's and IMP's own masks.

    The methods' own masks and ER-IMP are trained at ``own_sparsities`` (default: every sparsity of the claim).
    """
    c = design.claim(4)
    model, arms = c["model"], []
    for s in (float(x) for x in c["sparsities"]):
        final = round(1.0 - s, 12)
        for seed in design.seeds:
            for scheme in ("snip", "synflow", "balanced", "pyramidal"):
                arms.append(Arm(4, setting(mask=f"ER {scheme}", sparsity=s), seed,
                                design.config(model, seed=seed, density_scheme=scheme, sparsity=s)))
            if s not in own_sparsities(c):
                continue
            for saliency in ("snip", "synflow"):
                arms.append(Arm(4, setting(mask=f"{saliency} (own mask)", sparsity=s), seed,
                                design.config(model, seed=seed, method="pai",
                                              method_options={"saliency": saliency, "final_density": final})))
            imp = design.config(model, seed=seed, method="imp", method_options={**c["imp"], "final_density": final})
            arms.append(Arm(4, setting(mask="imp (own mask)", sparsity=s), seed, imp))
            arms.append(er_imp_arm(design, model, s, seed, imp, index))
    return arms


def own_sparsities(c: Mapping[str, Any]) -> list[float]:
    """Claim 4's sparsities of the methods' own masks and of ER-IMP."""
    return [float(x) for x in c.get("own_sparsities", c["sparsities"])]


def er_imp_arm(design: Design, model: str, sparsity: float, seed: int, imp: TrainConfig, index: Index) -> Arm:
    """ER-IMP: a fresh ER mask with the final layerwise densities of the IMP run ``imp`` (waits for it)."""
    label = setting(mask="ER imp", sparsity=sparsity)
    record = index.get(imp.run_hash())
    if record is None:
        return Arm(4, label, seed, None, waits_for=imp)
    ratios = [float(record["layer_densities"][name]) for name in record["layer_order"]]  # forward order
    return Arm(4, label, seed, design.config(model, seed=seed, density_scheme="imp", sparsity=sparsity,
                                             density_options={"ratios": ratios}))


# ------------------------------------------------------------------------------------------------ claim 5


def claim5_arms(design: Design, index: Index) -> list[Arm]:
    """IMP from the dense network and from a uniform ER start, the null arm and the dense reference, on each task.

    The dense reference is the dense network trained once without pruning.  The null arm is a fixed uniform ER
    mask at the final sparsity trained without any method (``static``).
    A task's ``stands_for`` (the paper's data it replaces) is a label, not a training field.
    """
    c = design.claim(5)
    arms = []
    for task in c["tasks"]:
        task = {k: v for k, v in task.items() if k != "stands_for"}
        sparsity = float(task.pop("final_sparsity"))
        final = round(1.0 - sparsity, 12)
        imp = {"prune_fraction": task.pop("prune_fraction"), "final_density": final}
        start_sparsity = float(task.pop("start_sparsity"))
        for start in ({"density_scheme": "dense"}, {"density_scheme": "uniform", "sparsity": start_sparsity}):
            for seed in design.seeds:
                cfg = make_config({**task, **start, "seed": seed, "method": "imp", "method_options": imp})
                arms.append(Arm(5, setting(task=cfg.dataset, start=start_name(start)), seed, cfg))
        null = {"density_scheme": "uniform", "sparsity": sparsity}
        for seed in design.seeds:
            cfg = make_config({**task, **null, "seed": seed})
            arms.append(Arm(5, setting(task=cfg.dataset, start=null_name(null)), seed, cfg))
            cfg = make_config({**task, "density_scheme": "dense", "seed": seed})
            arms.append(Arm(5, setting(task=cfg.dataset, start=DENSE_REFERENCE), seed, cfg))
    return arms


#: Claim 5's label of the dense network trained without pruning (the task's reference: can it be learned?).
DENSE_REFERENCE = "dense, not pruned"


def null_name(start: Mapping[str, Any]) -> str:
    """The label of a null arm: a fixed ER mask trained without any method."""
    return f"null: fixed {start_name(start)}"


#: Claim number -> builder of its arms.
BUILDERS: dict[int, Callable[[Design, Index], list[Arm]]] = {
    1: claim1_arms, 2: claim2_arms, 3: claim3_arms, 4: claim4_arms, 5: claim5_arms,
}


def build_arms(design: Design, index: Index, claims: tuple[int, ...] = (1, 2, 3, 4, 5)) -> list[Arm]:
    """Every arm of ``claims`` given the finished runs in ``index``."""
    bad = [k for k in claims if k not in BUILDERS]
    if bad:
        raise ValueError(f"unknown claims {bad}; valid: {sorted(BUILDERS)}")
    return [arm for k in claims for arm in BUILDERS[k](design, index)]


__all__ = ["BUILDERS", "DENSE_REFERENCE", "Arm", "RatioGrid", "Setting", "build_arms", "equal_nnz_width",
           "own_sparsities",
           "null_name", "ratio_grids", "setting", "start_name", "starts"]
