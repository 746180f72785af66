"""Protocols: how the paper's settings are read — ``exact`` (the default) or ``paper-code``.

A protocol is a function ``(model, dataset, method, density_scheme) -> dict`` of explicit option
values, registered in :data:`PROTOCOLS`.  ``exact`` returns ``{}``: the corrected defaults of
``ertrain`` stay as they are, so its results and run hashes do not change.  ``paper-code`` returns
what the paper's code (RelationalML/sparse_to_sparse) ran for that model, dataset and method; where
the paper's text and its code disagree it follows the code (``docs/protocol.md`` cites file and
line for every value).  :func:`resolve_protocol` merges a protocol's values with the values a user
set explicitly: explicit values always win, and dict-valued keys are merged key by key.

The paper's code has three training scripts, and the protocol picks one by method (then model):
``ER_DST/main.py`` (RiGL/GraNet, and the fixed-mask runs of VGG, ResNet20/110: ``"er_dst"``),
``STR/main.py`` (STR, IMP via ``run_imp.py``, and the fixed-mask ResNet18/50 runs of its README:
``"str"``) and ``ER_SLT/cifar_main.py`` (edge-popup: ``"er_slt"``); see :func:`code_path`.

Keys (name — type — meaning).  Keys that are already ``TrainConfig`` fields are marked (field).

* ``nesterov`` — bool — SGD with Nesterov momentum (ER_DST: yes; STR, ER_SLT: no).
* ``schedule`` — str (field) — learning-rate schedule, a name of :data:`ertrain.schedules.LR_SCHEDULES`
  (``constant``, ``multistep``, ``cosine``, ``step``).
* ``schedule_options`` — dict — options of that schedule: ``multistep``: ``milestones`` (fractions of
  the epochs), ``gamma``; ``step``: ``step_size``, ``gamma``, ``offset`` (the first epoch's count).
* ``lr_min`` — float (field) — absolute floor of the cosine schedule (the STR code: 0.01).
* ``warmup_epochs`` — int — epochs of linear warm-up ``lr (e + 1) / warmup_epochs`` *before* the
  schedule's ``epochs``, which then starts afresh at ``lr`` (the STR code: 10 for STR).
* ``lr``, ``momentum``, ``weight_decay``, ``batch_size``, ``epochs``, ``optimizer``,
  ``label_smoothing``, ``augment`` — (fields) — as ``TrainConfig``; ``epochs`` is per level for
  edge-popup.
* ``flow_repair`` — str or None (field) — ``"paper-code"`` where the code repaired flow (its random addition,
  bug included: :func:`ertrain.masks.flow_repair`).
* ``density_options`` — dict (field) — options of the run's density scheme: ``balanced``:
  ``redistribute``; ``erk``: ``clamp_once`` (see :mod:`ertrain.density`).
* ``model_options`` — dict (field) — ``{"variant": "paper-code"}`` for VGG16/VGG19; ResNet20/110 (ER_DST):
  ``{"shortcut": "B", "init": "fan_in"}`` (1x1 conv + BN shortcuts, Kaiming fan-in); ResNet18/50 (STR):
  ``{"init": "fan_in", "classifier": "conv1x1"}`` (:data:`PATH_MODEL_OPTIONS`).
* ``method_options`` — dict (field) — per-method keys, listed below.
* ``val_fraction`` — float — fraction of the training set held out (not trained on) as a fixed split
  (the last ``val_fraction`` of the training set, as the ER_DST code).
* ``select`` — str — which accuracy is the run's result: ``"final"`` (last epoch), ``"best_val"``
  (test accuracy at the epoch of best validation accuracy) or ``"best_test"`` (the best test accuracy
  over epochs: what the paper's code reported, since it "validated" on the test set).  Every run
  records the final accuracy as well.
* ``select_from_epoch`` — int — epochs before this (0-based) are not selected (ER_DST: 110, the end
  of gradual pruning).
* ``init_scale_fan`` — bool — rescale weights by the kept fan-in (:func:`ertrain.init.init_scale_fan`);
  usable with any protocol; the paper's runs did not use it.
* ``init_scale_fan_per`` — str — ``neuron``, ``layer`` or ``global`` (:data:`ertrain.init.SCALE_FAN_MODES`).
* ``amp`` — bool (field) — bf16 autocast on CUDA; false on every path (the three scripts train in float32).
* ``data_options`` — dict (field) — CIFAR-10 loader options: ``normalise`` (``er_dst``: the code's fixed mean and
  std; ``half``: ``Normalize(0.5, 0.5)``) and ``pad`` (``reflect``: reflect-padded crops).

Per-method keys (inside ``method_options``; "new" marks keys the method does not have yet).

* ``rigl`` / ``set``: ``update_every`` (1000), ``prune_fraction`` (0.5), ``prune_fraction_min``
  (new; 0.005, the floor of the cosine decay), ``stop_fraction`` (1.0: the code updates the mask
  throughout training), ``gradual_end_epoch`` (new; 110: gradual pruning toward ``final_density``
  ends there, :func:`ertrain.schedules.gradual_density`).
* ``imp``: ``prune_fraction`` (0.2), ``scope`` (``"global"``), ``rewind`` (``"iteration:N"``, new
  syntax: rewind to the weights after ``N`` optimizer steps; the code: ``"iteration:0"``),
  ``lr_min_fraction`` (0.1: each cycle's cosine ends at 0.01), ``cycle_epochs`` (new; 150 epochs per
  pruning cycle), ``final_retrain`` (new; after the last pruning the network trains ``epochs`` more
  epochs with a fresh cosine), ``reset_optimizer`` (new; the optimizer state is rewound too),
  ``level_start_density`` (0.3: absolute levels ``0.3 * 0.8^l``, no-op above the current count).
* ``str``: ``s_init`` (-200), ``s_weight_decay`` (-1: the model's weight decay).
* ``edgepopup``: ``levels`` (5), ``init`` (``"kaiming_normal"``), ``score_init`` (new;
  ``"constant"``: every score 0.5), ``level_start_density`` (new; 0.6,
  :func:`ertrain.schedules.edgepopup_level_densities`), ``lr_restart_per_level`` (new; true: the step
  schedule restarts at every level, :func:`ertrain.schedules.edgepopup_lr`), ``subnet``
  (``"paper-code"``: the code's row-index bug), ``optimizer_per_level`` (false: one optimizer kept),
  ``score_init`` ``"paper-code"`` (0.5 in convs, Kaiming-uniform in the classifier).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ertrain.registry import Registry

ProtocolFn = Callable[..., dict[str, Any]]

#: Protocols by name: ``fn(model, dataset, method, density_scheme=None) -> {key: value}``.
PROTOCOLS: Registry[ProtocolFn] = Registry("protocols", builtins=("ertrain.protocol",), label="protocol")

#: The default protocol.
DEFAULT_PROTOCOL = "exact"

#: Keys whose values are dicts: merged key by key, explicit entries winning.
DICT_KEYS = ("density_options", "model_options", "method_options", "schedule_options", "data_options")


@dataclass(frozen=True)
class ProtocolKey:
    """One key a protocol may set: its name, value type and meaning (the config's matching field)."""

    name: str
    type: str
    help: str


#: Every top-level key a protocol may set.
KEYS: tuple[ProtocolKey, ...] = (
    ProtocolKey("nesterov", "bool", "SGD with Nesterov momentum"),
    ProtocolKey("schedule", "str", "learning-rate schedule (ertrain.schedules.LR_SCHEDULES)"),
    ProtocolKey("schedule_options", "dict", "options of the learning-rate schedule"),
    ProtocolKey("lr_min", "float", "absolute floor of the cosine schedule"),
    ProtocolKey("warmup_epochs", "int", "linear warm-up epochs before the schedule's epochs"),
    ProtocolKey("lr", "float", "learning rate"),
    ProtocolKey("momentum", "float", "SGD momentum"),
    ProtocolKey("weight_decay", "float", "weight decay"),
    ProtocolKey("batch_size", "int", "batch size"),
    ProtocolKey("epochs", "int", "training epochs (per level for edge-popup)"),
    ProtocolKey("optimizer", "str", "optimizer"),
    ProtocolKey("label_smoothing", "float", "label smoothing"),
    ProtocolKey("augment", "bool", "crop + flip augmentation"),
    ProtocolKey("flow_repair", "str | None", "flow repair of the ER mask"),
    ProtocolKey("density_options", "dict", "options of the density scheme (redistribute, clamp_once)"),
    ProtocolKey("model_options", "dict", "model options (variant)"),
    ProtocolKey("method_options", "dict", "per-method options"),
    ProtocolKey("val_fraction", "float", "fraction of the training set held out for validation"),
    ProtocolKey("select", "str", "reported accuracy: final, best_val or best_test"),
    ProtocolKey("select_from_epoch", "int", "first epoch (0-based) eligible for selection"),
    ProtocolKey("init_scale_fan", "bool", "rescale weights by the kept fan-in"),
    ProtocolKey("init_scale_fan_per", "str", "kept fan-in per neuron, layer or global density"),
    ProtocolKey("amp", "bool", "bf16 autocast on CUDA (the paper's scripts train in float32)"),
    ProtocolKey("data_options", "dict", "dataset loader options (normalise, pad)"),
)

#: The per-method keys a protocol may set inside ``method_options``.
METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "rigl": ("update_every", "prune_fraction", "prune_fraction_min", "stop_fraction", "gradual_end_epoch"),
    "set": ("update_every", "prune_fraction", "prune_fraction_min", "stop_fraction", "gradual_end_epoch"),
    "imp": (
        "prune_fraction", "scope", "rewind", "lr_min_fraction", "cycle_epochs", "final_retrain", "reset_optimizer",
        "level_start_density",
    ),
    "str": ("s_init", "s_weight_decay"),
    "edgepopup": (
        "levels", "init", "score_init", "level_start_density", "lr_restart_per_level", "subnet", "optimizer_per_level",
    ),
}

SELECT_CHOICES = ("final", "best_val", "best_test")

# ---------------------------------------------------------------------------------------------- code paths

#: The paper's code's training script of each method (``None``: chosen by model, :data:`MODEL_PATHS`).
METHOD_PATHS: dict[str, str | None] = {
    "rigl": "er_dst",
    "set": "er_dst",
    "str": "str",
    "imp": "str",
    "edgepopup": "er_slt",
    "static": None,
    "pai": None,
}

#: Fixed-mask runs: the STR script for the ResNet18/50 of its README, ER_DST for the others.
MODEL_PATHS: dict[str, str] = {
    "resnet18": "str",
    "resnet50": "str",
    "vgg16": "er_dst",
    "vgg19": "er_dst",
    "resnet20": "er_dst",
    "resnet110": "er_dst",
}


def code_path(model: str, method: str) -> str | None:
    """The paper's code's script that ran ``method`` on ``model``: ``er_dst``, ``str``, ``er_slt`` or ``None``."""
    path = METHOD_PATHS.get(method)
    return path if path is not None else MODEL_PATHS.get(model)


#: Values the STR and ER_SLT scripts share (the last keys of both): no warm-up, no flow repair, best test epoch.
_STR_ER_SLT_SHARED: dict[str, Any] = {
    "warmup_epochs": 0,
    "flow_repair": None,
    "select": "best_test",
    "select_from_epoch": 0,
    "val_fraction": 0.0,
    "init_scale_fan": False,
    "amp": False,
}

#: What each script ran (values in ``docs/protocol.md`` with file and line).
PATH_VALUES: dict[str, dict[str, Any]] = {
    "er_dst": {
        "nesterov": True,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 100,
        "epochs": 160,
        "optimizer": "sgd",
        "label_smoothing": 0.0,
        "schedule": "multistep",
        "schedule_options": {"milestones": [0.5, 0.75], "gamma": 0.1},
        "warmup_epochs": 0,
        "flow_repair": "paper-code",
        "select": "best_test",
        "select_from_epoch": 110,
        "val_fraction": 0.0,
        "init_scale_fan": False,
        "amp": False,
    },
    "str": {
        "nesterov": False,
        "lr": 0.1,
        "momentum": 0.9,
        "batch_size": 256,
        "epochs": 160,
        "optimizer": "sgd",
        "label_smoothing": 0.0,
        "schedule": "cosine",
        "lr_min": 0.01,
        **_STR_ER_SLT_SHARED,
    },
    "er_slt": {
        "nesterov": False,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 128,
        "epochs": 100,
        "optimizer": "sgd",
        "label_smoothing": 0.0,
        "augment": False,
        "schedule": "step",
        "schedule_options": {"step_size": 30, "gamma": 0.1, "offset": 1},
        **_STR_ER_SLT_SHARED,
    },
}

#: Density-scheme options of each script (the schemes it implements differently from ``exact``).
PATH_DENSITY_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "er_dst": {"balanced": {"redistribute": False}},
    "str": {"balanced": {"redistribute": False}, "erk": {"clamp_once": True}},
    "er_slt": {},
}

#: Per-method options of the paper's code.
METHOD_VALUES: dict[str, dict[str, Any]] = {
    "rigl": {
        "update_every": 1000,
        "prune_fraction": 0.5,
        "prune_fraction_min": 0.005,
        "stop_fraction": 1.0,
        "gradual_end_epoch": 110,
    },
    "imp": {
        "prune_fraction": 0.2,
        "scope": "global",
        "rewind": "iteration:0",
        "lr_min_fraction": 0.1,
        "cycle_epochs": 150,
        "final_retrain": True,
        "reset_optimizer": True,
        "level_start_density": 0.3,
    },
    "str": {"s_init": -200.0, "s_weight_decay": -1.0},
    "edgepopup": {
        "levels": 5,
        "init": "kaiming_normal",
        "score_init": "paper-code",
        "level_start_density": 0.6,
        "lr_restart_per_level": True,
        "subnet": "paper-code",
        "optimizer_per_level": False,
    },
}
METHOD_VALUES["set"] = dict(METHOD_VALUES["rigl"])

#: Model options of each script's models: VGG's paper-code variant; ResNet20/110 with 1x1 conv + BN
#: shortcuts and fan-in init (``ER_DST/models/cifar_resnet.py:25``, ``ER_DST/models/initializers.py:16``);
#: the STR script's ResNet18/50 with fan-in init and a bias-free 1x1 conv classifier (``STR/models/resnet18.py:126``).
PATH_MODEL_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "er_dst": {
        "vgg16": {"variant": "paper-code"},
        "vgg19": {"variant": "paper-code"},
        "resnet20": {"shortcut": "B", "init": "fan_in"},
        "resnet110": {"shortcut": "B", "init": "fan_in"},
    },
    "str": {"resnet18": {"init": "fan_in", "classifier": "conv1x1"},
            "resnet50": {"init": "fan_in", "classifier": "conv1x1"}},
    "er_slt": {"vgg16": {"variant": "paper-code"}, "vgg19": {"variant": "paper-code"}},
}

#: CIFAR-10 loader options of each script (``ER_DST/sparselearning/utils.py:30-42``, ``ER_SLT/cifar_main.py:200-203``).
PATH_DATA_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "er_dst": {"cifar10": {"normalise": "er_dst", "pad": "reflect"}},
    "str": {},
    "er_slt": {"cifar10": {"normalise": "half"}},
}


def _check_names(model: str, dataset: str, method: str) -> None:
    for name, value in (("model", model), ("dataset", dataset), ("method", method)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")


@PROTOCOLS.register("exact", help="ertrain's corrected defaults (no change)")
def exact(model: str, dataset: str, method: str, density_scheme: str | None = None) -> dict[str, Any]:
    """The exact protocol: nothing changes (``{}``), so results and run hashes stay as they are."""
    _check_names(model, dataset, method)
    return {}


@PROTOCOLS.register("paper-code", help="what the paper's code (RelationalML/sparse_to_sparse) ran")
def paper_code(model: str, dataset: str, method: str, density_scheme: str | None = None) -> dict[str, Any]:
    """What the paper's code ran for ``model`` on ``dataset`` with ``method`` (``docs/protocol.md``).

    ``density_scheme`` selects the ``density_options`` that apply to it; without it they are left out.
    Models and methods outside the code's scripts (the MLP and GCN experiments) get only what is
    known of them: the tabular notebook's Adam, lr 0.01, batch 64.
    """
    _check_names(model, dataset, method)
    path = code_path(model, method)
    if path is None:
        if model == "mlp" and dataset == "tabular":
            return {"optimizer": "adam", "lr": 0.01, "batch_size": 64}
        return {}
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PATH_VALUES[path].items()}
    if path == "er_dst" and dataset == "cifar10":
        out["val_fraction"] = 0.1  # the CIFAR-10 loader holds out the last 10%; CIFAR-100's ignores the split
    if path == "str":
        if method == "str":
            out["warmup_epochs"] = 10  # STR's weight decay is set per target sparsity by the sweep
        elif dataset == "cifar100":
            out["weight_decay"] = 1e-3
        else:
            out["weight_decay"] = 1e-4
    if density_scheme == "dense":
        out["flow_repair"] = None  # flow repair acts on ER masks; a dense run has none to repair
    if model in PATH_MODEL_OPTIONS[path]:
        out["model_options"] = dict(PATH_MODEL_OPTIONS[path][model])
    if dataset in PATH_DATA_OPTIONS[path]:
        out["data_options"] = dict(PATH_DATA_OPTIONS[path][dataset])
    if density_scheme is not None and density_scheme in PATH_DENSITY_OPTIONS[path]:
        out["density_options"] = dict(PATH_DENSITY_OPTIONS[path][density_scheme])
    if method in METHOD_VALUES:
        out["method_options"] = dict(METHOD_VALUES[method])
    return out


def protocol_values(
    name: str, *, model: str, dataset: str, method: str, density_scheme: str | None = None
) -> dict[str, Any]:
    """The values protocol ``name`` sets (unknown names raise, listing the valid protocols)."""
    fn = PROTOCOLS[name]
    values = fn(model, dataset, method, density_scheme)
    known = {k.name for k in KEYS}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"protocol {name!r} set unknown keys {unknown}; valid: {sorted(known)}")
    return values


def resolve_protocol(
    name: str,
    *,
    model: str,
    dataset: str,
    method: str,
    density_scheme: str | None = None,
    explicit: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Protocol ``name``'s values with the user's ``explicit`` values on top (explicit always wins).

    Dict-valued keys (:data:`DICT_KEYS`) are merged key by key, so a user who sets
    ``density_options={"form": "text"}`` keeps the protocol's ``redistribute``; any other explicit
    key replaces the protocol's value.  The result holds every key of either.
    """
    merged = protocol_values(name, model=model, dataset=dataset, method=method, density_scheme=density_scheme)
    for key, value in (explicit or {}).items():
        if key in DICT_KEYS and isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


__all__ = [
    "DEFAULT_PROTOCOL",
    "DICT_KEYS",
    "KEYS",
    "METHOD_KEYS",
    "PROTOCOLS",
    "ProtocolKey",
    "code_path",
    "exact",
    "paper_code",
    "protocol_values",
    "resolve_protocol",
]
