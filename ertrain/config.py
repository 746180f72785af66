"""Training configuration: one frozen dataclass whose fields generate the CLI flags and name the run.

The hash of every hyper-parameter (:meth:`TrainConfig.run_hash`) names the run directory, so that
two identical configurations share their results and a re-run resumes.  Fields that only say
*where* or *how fast* a run executes (``data_dir``, ``device``, ``compile``, ``channels_last``)
are left out of the hash.

Defaults are the paper's optimiser settings for CIFAR (appendix A.7, DIGEST §10): SGD with
learning rate 0.1, momentum 0.9, weight decay 5e-4, batch 128, 160 epochs.  The paper's code
(after Liu et al. 2021) anneals the learning rate; ``schedule="cosine"`` anneals it to ``lr_min``,
``"multistep"`` divides it by 10 at 50% and 75% of the epochs.  Small datasets need far fewer
epochs: pass ``--epochs`` (e.g. 3 for Fashion-MNIST, 20 for digits).

Example::

    cfg = TrainConfig(model="mlp", dataset="digits", density_scheme="balanced", density=0.1, epochs=5)
    cfg.run_hash()                      # '3f0c...' (16 hex digits)
    TrainConfig.from_json(cfg.to_json()) == cfg
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ertheory._validate import check_density, check_density_or_sparsity
from ertheory.cli_flags import add_density_flags, json_object
from ertrain.density import DENSITY_SCHEMES
from ertrain.method_registry import METHODS
from ertrain.protocol import DEFAULT_PROTOCOL, PROTOCOLS, protocol_values
from ertrain.recipes import RECIPES, load_recipe
from ertrain.recipes import default_recipe as pick_recipe
from ertrain.registry import field_default
from ertrain.schedules import LR_SCHEDULES
from ertrain.tracking import TRACKERS, check_trackers
from ertrain.typecheck import check_types

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "multistep", "constant", "step")
SELECT_CHOICES = ("final", "best_val", "best_test")
SCALE_FAN_PER = ("neuron", "layer", "global")
FLOW_REPAIR_MODES = ("random_add", "rejection", "paper-code")
#: What ``--flow-repair`` accepts: a mode, or ``none`` (no repair).
FLOW_REPAIR_CHOICES = (*FLOW_REPAIR_MODES, "none")
#: Training engines (``ertrain.engines``): how masked layers are stored and computed; execution only.
ENGINES = ("masked", "sparse", "auto")
#: Methods the ``sparse`` engine trains (the others read or rewrite dense weights during training).
SPARSE_ENGINE_METHODS = ("static",)


def _meta(help: str, *, execution: bool = False, choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    return {"help": help, "execution": execution, "choices": choices}


#: The keys of ``TrainConfig.mask_options`` and the values of its ``tied`` (``ertrain.models.TIED_MODES``).
MASK_OPTION_KEYS = ("include", "exclude", "tied")
MASK_TIED_MODES = ("dense", "mask")


def _check_mask_options(options: Any) -> None:
    """Check ``mask_options``: name-glob lists ``include`` / ``exclude`` and ``tied`` (``ValueError`` if bad)."""
    if not isinstance(options, dict):
        raise ValueError(f"mask_options must be a dict, got {options!r}")
    bad = [k for k in options if k not in MASK_OPTION_KEYS]
    if bad:
        raise ValueError(f"unknown mask_options key(s) {bad}; valid: {', '.join(MASK_OPTION_KEYS)}")
    for key in ("include", "exclude"):
        globs = options.get(key, [])
        if isinstance(globs, str) or not isinstance(globs, list | tuple) or not all(isinstance(g, str) for g in globs):
            raise ValueError(f"mask_options {key!r} must be a list of name globs, got {globs!r}")
    if options.get("tied", "dense") not in MASK_TIED_MODES:
        raise ValueError(f"mask_options 'tied' must be one of {MASK_TIED_MODES}, got {options['tied']!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run (see the module docstring for the defaults)."""

    model: str = field(metadata=_meta("model name (ertrain.models.MODELS)"))
    dataset: str = field(metadata=_meta("dataset name (ertrain.data.DATASETS)"))
    data_dir: str | None = field(default=None, metadata=_meta("dataset directory (default: loader's)", execution=True))
    data_options: dict[str, Any] = field(
        default_factory=dict, metadata=_meta("JSON object of dataset loader options, e.g. '{\"n_train\": 1000}'")
    )
    data_seed: int = field(default=0, metadata=_meta("seed of synthetic data and of non-official splits"))
    density_scheme: str = field(default="dense", metadata=_meta("layerwise density scheme (ertrain.density)"))
    density: float = field(default=1.0, metadata=_meta("overall density of the masked layers, in (0, 1]"))
    density_options: dict[str, Any] = field(
        default_factory=dict, metadata=_meta("JSON object of density scheme options")
    )
    flow_repair: str | None = field(
        default=None, metadata=_meta("repair ER masks so every neuron keeps an edge", choices=FLOW_REPAIR_CHOICES)
    )
    mask_options: dict[str, Any] = field(
        default_factory=dict, metadata=_meta(
            "JSON object choosing the masked parameters (ertrain.models.mask_scope): name globs "
            "'{\"include\": [...], \"exclude\": [\"classifier.weight\"]}' and \"tied\": \"dense\" or \"mask\"")
    )
    method: str = field(default="static", metadata=_meta("training method (ertrain.methods.METHODS)"))
    method_options: dict[str, Any] = field(default_factory=dict, metadata=_meta("options of the method"))
    epochs: int = field(default=160, metadata=_meta("training epochs (paper: 160 on CIFAR)"))
    batch_size: int = field(default=128, metadata=_meta("global batch size (split over DDP ranks)"))
    lr: float = field(default=0.1, metadata=_meta("learning rate"))
    momentum: float = field(default=0.9, metadata=_meta("SGD momentum"))
    weight_decay: float = field(default=5e-4, metadata=_meta("weight decay"))
    optimizer: str = field(default="sgd", metadata=_meta("optimizer", choices=OPTIMIZERS))
    schedule: str = field(
        default="cosine", metadata=_meta("learning-rate schedule, stepped per epoch", choices=SCHEDULES)
    )
    lr_min: float = field(default=0.0, metadata=_meta("final learning rate of the cosine schedule"))
    label_smoothing: float = field(default=0.0, metadata=_meta("label smoothing of the cross-entropy"))
    augment: bool = field(default=True, metadata=_meta("use the dataset's on-device augmentation (crop+flip)"))
    seed: int = field(default=0, metadata=_meta("seed of initialisation, masks, batch order and augmentation"))
    width: float = field(default=1.0, metadata=_meta("multiplier of every hidden width / channel count"))
    model_options: dict[str, Any] = field(
        default_factory=dict, metadata=_meta("JSON object of model options, e.g. '{\"hidden\": [256, 256]}'")
    )
    amp: bool = field(default=True, metadata=_meta("bf16 autocast on CUDA (CPU always runs float32)"))
    channels_last: bool = field(default=True, metadata=_meta("channels_last layout on CUDA", execution=True))
    compile: bool = field(default=False, metadata=_meta("torch.compile the model", execution=True))
    device: str = field(
        default="auto", metadata=_meta("'auto' (CUDA if present), 'cpu', 'cuda', 'cuda:1'", execution=True)
    )
    nesterov: bool = field(default=False, metadata=_meta("SGD with Nesterov momentum"))
    schedule_options: dict[str, Any] = field(
        default_factory=dict, metadata=_meta("JSON options of the schedule, e.g. '{\"milestones\": [0.5, 0.75]}'")
    )
    warmup_epochs: int = field(default=0, metadata=_meta("epochs of linear warm-up before the schedule"))
    val_fraction: float = field(
        default=0.0, metadata=_meta("fraction of the training set held out as a validation split (not trained on)")
    )
    select: str = field(
        default="final",
        metadata=_meta("the reported accuracy: final epoch, test at the best validation epoch, or best test",
                       choices=("final", "best_val", "best_test")),
    )
    select_from_epoch: int = field(default=0, metadata=_meta("epochs before this one are not selected"))
    init_scale_fan: bool = field(default=False, metadata=_meta("rescale initial weights by the kept fan-in"))
    init_scale_fan_per: str = field(
        default="neuron", metadata=_meta("kept fan-in per neuron, per layer or global (the paper's code)")
    )
    protocol: str = field(
        default="exact",
        metadata=_meta("how the paper's settings are read: 'exact' (corrected) or 'paper-code' (what its code ran)"),
    )
    recipe: str | None = field(
        default=None, metadata=_meta("the recipe whose values filled the unset fields (recorded, not hashed)")
    )
    log: tuple[str, ...] = field(
        default=(), metadata=_meta("experiment trackers besides metrics.jsonl: tensorboard, wandb", execution=True)
    )
    engine: str = field(
        default="masked",
        metadata=_meta("how masked layers train: dense with masks, sparse (kept weights only, CPU), or auto per layer",
                       execution=True, choices=ENGINES),
    )

    #: Fields that never enter the run hash.
    EXECUTION_FIELDS: ClassVar[tuple[str, ...]] = (
        "data_dir", "device", "compile", "channels_last", "log", "recipe", "engine"
    )

    def __post_init__(self) -> None:
        for name in ("model", "dataset", "density_scheme", "method"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        check_density(self.density)
        # 12 decimals: --sparsity 0.9 and --density 0.1 must name the same run.
        object.__setattr__(self, "density", round(float(self.density), 12))
        _check_int(self.epochs, "epochs", 0)
        _check_int(self.batch_size, "batch_size", 1)
        _check_int(self.seed, "seed", 0)
        _check_int(self.data_seed, "data_seed", 0)
        for name in ("lr", "width"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("momentum", "weight_decay", "lr_min", "label_smoothing"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)!r}")
        if not float(self.label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {self.label_smoothing!r}")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", str(self.device)):
            raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {self.device!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.engine == "sparse" and self.method not in SPARSE_ENGINE_METHODS:
            raise ValueError(f"engine 'sparse' trains the methods {SPARSE_ENGINE_METHODS}, not {self.method!r}: "
                             f"use --engine masked (or auto)")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in LR_SCHEDULES:
            raise ValueError(f"schedule must be one of {tuple(LR_SCHEDULES)}, got {self.schedule!r}")
        if self.flow_repair == "none":  # written out as "off" (sweep files cannot hold a null)
            object.__setattr__(self, "flow_repair", None)
        if self.flow_repair is not None and self.flow_repair not in FLOW_REPAIR_MODES:
            raise ValueError(f"flow_repair must be one of {FLOW_REPAIR_MODES} or None, got {self.flow_repair!r}")
        if self.density_scheme == "dense" and self.density != 1.0:
            raise ValueError(f"density_scheme 'dense' needs density 1, got {self.density!r} (choose a scheme)")
        _check_protocol_fields(self)
        _check_mask_options(self.mask_options)
        for name in ("data_options", "density_options", "model_options", "method_options", "schedule_options",
                     "mask_options"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise ValueError(f"{name} must be a dict, got {value!r}")
            object.__setattr__(self, name, _jsonable(value, name))
        object.__setattr__(self, "method_options", _method_options(self.method, self.method_options))
        if isinstance(self.log, str) or not all(isinstance(k, str) for k in self.log):
            raise ValueError(f"log must be a list of tracker names, got {self.log!r}")
        object.__setattr__(self, "log", tuple(self.log))
        _check_names(self)

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_json`; accepts the JSON text or the decoded dict. Unknown keys raise."""
        data = json.loads(text) if isinstance(text, str) else dict(text)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; valid fields: {', '.join(sorted(known))}")
        return cls(**data)

    def hyperparameters(self) -> dict[str, Any]:
        """Every field except the execution-only ones."""
        return {k: v for k, v in self.to_dict().items() if k not in self.EXECUTION_FIELDS}

    def canonical(self) -> dict[str, Any]:
        """What names the run: :meth:`hyperparameters` without the values equal to their defaults.

        Method and density-scheme options are validated against their options dataclasses and
        dropped where they equal the defaults, so ``{"form": "code"}`` and ``{}`` name the same run,
        and a new field with a default leaves every existing run's name unchanged.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in self.EXECUTION_FIELDS:
                continue
            value = _canonical_options(self, f.name)
            if value != field_default(f):
                out[f.name] = value
        return out

    def run_hash(self) -> str:
        """16 hex digits of the SHA-256 of ``{"schema": SCHEMA_VERSION, **canonical()}`` as canonical JSON."""
        doc = {"schema": SCHEMA_VERSION, **self.canonical()}
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def legacy_run_hash(self) -> str | None:
        """The run name that release 0.1 gave this config (every field hashed), or None if it had none.

        Only configs that 0.1 could express have one: every field added since must be at its default.
        """
        for f in dataclasses.fields(self):
            new = f.name not in _LEGACY_FIELDS and f.name not in self.EXECUTION_FIELDS
            if new and getattr(self, f.name) != field_default(f):
                return None
        legacy = {k: v for k, v in self.hyperparameters().items() if k in _LEGACY_FIELDS}
        text = json.dumps(legacy, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    # -- command line ------------------------------------------------------------------------------
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add one flag per field (``--batch-size``...), ``--sparsity``/``--density`` and method options."""
        hints = typing.get_type_hints(cls)
        names = _registry_choices()
        for f in dataclasses.fields(cls):
            if f.name not in ("density", "method_options"):
                _add_field_flag(parser, f, hints[f.name], names.get(f.name))
        add_density_flags(parser, required=False, what="overall density of the masked layers")
        _add_method_flags(parser)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        """The resolved config of parsed ``ertrain train`` flags (:func:`resolve_args`)."""
        return resolve_args(args).config

    @classmethod
    def build(cls, fields: Mapping[str, Any], *, default_recipe: bool = True) -> TrainConfig:
        """The resolved config of ``fields`` (:func:`resolve`): explicit > protocol > recipe > defaults."""
        return resolve(fields, default_recipe=default_recipe).config


# ---------------------------------------------------------------------------------------------- the resolver

#: Where a resolved field's value came from, highest precedence first.
SOURCES = ("explicit", "protocol", "recipe", "default")


@dataclass(frozen=True)
class Resolved:
    """A resolved config and, for every field, where its value came from (one of :data:`SOURCES`)."""

    config: TrainConfig
    sources: dict[str, str]

    def run_hash(self) -> str:
        return self.config.run_hash()

    def to_dict(self) -> dict[str, Any]:
        """``{"run_hash", "config", "sources"}``: what ``sweep --dry-run --json`` lists for each run."""
        return {"run_hash": self.run_hash(), "config": self.config.to_dict(), "sources": dict(self.sources)}


def resolve(fields: Mapping[str, Any], *, default_recipe: bool = True) -> Resolved:
    """The one way from what a user asked (flags, a sweep point, a study arm, a dict) to a config.

    Precedence: the ``fields`` given (explicit) > the protocol's values for the model, dataset,
    method and scheme > the recipe's values > the dataclass defaults; option dicts merge entry by
    entry, and a merged field's source is the highest one that set any entry.  The recipe is
    ``fields["recipe"]``, else (unless ``default_recipe`` is False) the one the rules of
    :mod:`ertrain.recipes` pick for the model and dataset; its name is recorded in ``recipe``
    (source ``default`` when the rules picked it).  ``sparsity`` is accepted for ``1 - density``.
    Contradictory or unknown fields raise ``ValueError`` before anything else happens.
    """
    explicit = _explicit_fields(fields)
    recipe = explicit.get("recipe")
    if recipe is None and default_recipe:
        recipe = pick_recipe(explicit["model"], explicit["dataset"])
    layers = (
        explicit,
        protocol_values(explicit.get("protocol", DEFAULT_PROTOCOL), model=explicit["model"],
                        dataset=explicit["dataset"], method=explicit.get("method", "static"),
                        density_scheme=explicit.get("density_scheme", "dense")),
        _recipe_values(recipe),
    )
    _check_known(layers[1], "protocol " + repr(explicit.get("protocol", DEFAULT_PROTOCOL)))
    values: dict[str, Any] = {} if recipe is None else {"recipe": recipe}
    sources: dict[str, str] = {}
    for f in dataclasses.fields(TrainConfig):
        given = [(source, layer[f.name]) for source, layer in zip(SOURCES, layers, strict=False) if f.name in layer]
        sources[f.name] = given[0][0] if given else "default"
        if given:
            values[f.name] = _merged([v for _, v in given])
    check_types(TrainConfig, values, "config")
    return Resolved(TrainConfig(**values), sources)


def resolve_args(args: argparse.Namespace) -> Resolved:
    """:func:`resolve` of parsed ``ertrain train`` flags (see :meth:`TrainConfig.add_arguments`).

    ``--density``/``--sparsity`` without ``--density-scheme`` means ``uniform``; a scheme other
    than ``dense`` without a density is refused; ``--<method>-<option>`` flags fill ``method_options``.
    """
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(TrainConfig):
        value = getattr(args, f.name, None) if f.name not in ("density", "method_options") else None
        if value is not None:
            fields[f.name] = value
    density, sparsity = getattr(args, "density", None), getattr(args, "sparsity", None)
    if density is not None or sparsity is not None:
        fields["density"] = check_density_or_sparsity(density, sparsity)
        fields.setdefault("density_scheme", "uniform")
    elif fields.get("density_scheme", "dense") != "dense":
        raise ValueError(f"density scheme {fields['density_scheme']!r} needs --density or --sparsity")
    options = _method_flags(args, fields.get("method", "static"))
    if options:
        fields["method_options"] = options
    return resolve(fields)


def _explicit_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The given fields checked: known names, model and dataset present, no contradiction."""
    explicit = {k: v for k, v in fields.items() if not (k == "recipe" and v is None)}
    if "sparsity" in explicit:
        if "density" in explicit:
            raise ValueError("give density or sparsity, not both (got "
                             f"density={explicit['density']!r}, sparsity={explicit['sparsity']!r})")
        sparsity = explicit.pop("sparsity")
        if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
            raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
        explicit["density"] = check_density_or_sparsity(None, sparsity)
    _check_known(explicit, "the fields given")
    check_types(TrainConfig, explicit, "config")
    for name in ("model", "dataset"):
        if name not in explicit:
            raise ValueError(f"a training config needs {name!r}")
    scheme = explicit.get("density_scheme", "dense")
    if scheme == "dense":
        _check_dense(explicit)
    return explicit


def _check_dense(explicit: Mapping[str, Any]) -> None:
    """A dense run (no scheme, or ``dense``) given a density, a flow repair or scheme options contradicts itself."""
    schemes = ", ".join(n for n in DENSITY_SCHEMES.names() if n != "dense")
    if "density" in explicit and float(explicit["density"]) != 1.0:
        raise ValueError(f"density {round(float(explicit['density']), 12)!r} (sparsity "
                         f"{round(1.0 - float(explicit['density']), 12)!r}) contradicts density_scheme 'dense' "
                         f"(every weight kept); choose a scheme: {schemes}")
    if explicit.get("flow_repair") not in (None, "none"):
        raise ValueError(f"flow_repair {explicit['flow_repair']!r} contradicts density_scheme 'dense' (no mask "
                         f"to repair); use flow_repair none, or a scheme: {schemes}")
    if explicit.get("density_options"):
        raise ValueError(f"density_options {explicit['density_options']!r} contradict density_scheme 'dense' (no "
                         f"scheme to take them); choose a scheme: {schemes}")


def _recipe_values(recipe: str | None) -> dict[str, Any]:
    """Recipe ``recipe``'s values (none for ``None``); a field TrainConfig lacks raises, naming the recipe."""
    if recipe is None:
        return {}
    values = load_recipe(recipe)
    _check_known(values, f"recipe {recipe!r}")
    return values


def _check_known(values: Mapping[str, Any], what: str) -> None:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown TrainConfig fields {unknown} (in {what}); valid fields: {', '.join(sorted(known))}")


def _merged(values: list[Any]) -> Any:
    """The highest-precedence value; dicts merge entry by entry, higher entries winning."""
    if all(isinstance(v, Mapping) for v in values):
        out: dict[str, Any] = {}
        for value in reversed(values):
            out.update(value)
        return out
    return values[0]


def _registry_choices() -> dict[str, tuple[str, ...]]:
    from ertrain.data import DATASETS  # data and models load torch: imported on use (neither imports config)
    from ertrain.models import MODELS

    return {"model": tuple(MODELS), "dataset": tuple(sorted(DATASETS)), "density_scheme": tuple(DENSITY_SCHEMES),
            "schedule": tuple(LR_SCHEDULES),
            "method": tuple(METHODS), "protocol": tuple(PROTOCOLS), "recipe": tuple(RECIPES), "log": tuple(TRACKERS)}


def _add_field_flag(parser: Any, f: dataclasses.Field[Any], tp: Any, names: tuple[str, ...] | None) -> None:
    """One ``--field-name`` flag: booleans get ``--no-...``, dicts take JSON, sequences take several values.

    Registry names (``names``) are listed in the help and checked when the config is built, so an
    unknown one gets the registry's message (the bad name and the valid ones).
    """
    flag = "--" + f.name.replace("_", "-")
    help_text = f.metadata.get("help", "")
    if names:
        help_text += f" [{', '.join(names)}]"
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    if f.default not in (dataclasses.MISSING, None, ()):
        help_text += f" (default: {f.default}, or the recipe's)"
    choices = None if names else f.metadata.get("choices")
    meta = {"metavar": f.name.upper()} if names or choices else {}
    if tp is bool:
        parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
    elif _is_dict(tp):
        parser.add_argument(flag, dest=f.name, type=json_object(f.name), default=None, metavar="JSON",
                            help=help_text)
    elif _sequence_item(tp) is not None:
        parser.add_argument(flag, dest=f.name, type=_sequence_item(tp), nargs="+", default=None, help=help_text,
                            **meta)
    else:
        parser.add_argument(flag, dest=f.name, type=_base_type(tp), choices=choices, default=None, required=required,
                            help=help_text, **meta)


def _add_method_flags(parser: Any) -> None:
    """``--<method>-<option>`` flags from every method's ``Options`` dataclass, one group per method."""
    for mname, mcls in sorted(METHODS.items()):
        ohints = typing.get_type_hints(mcls.Options)
        fields = dataclasses.fields(mcls.Options)
        if not fields:
            continue
        ogroup = parser.add_argument_group(f"options of --method {mname}")
        for of in fields:
            otp = ohints[of.name]
            oflag = f"--{mname}-{of.name.replace('_', '-')}"
            odest = f"method_opt__{mname}__{of.name}"
            ohelp = of.metadata.get("help", "") + f" (default: {of.default})"
            if otp is bool:
                ogroup.add_argument(oflag, dest=odest, action=argparse.BooleanOptionalAction, default=None, help=ohelp)
            elif _sequence_item(otp) is not None:
                ogroup.add_argument(oflag, dest=odest, type=_sequence_item(otp), nargs="+", default=None,
                                    metavar=of.name.upper(), help=ohelp)
            else:
                ochoices = of.metadata.get("choices")
                ogroup.add_argument(oflag, dest=odest, type=_base_type(otp), default=None, choices=ochoices,
                                    metavar=None if ochoices else of.name.upper(), help=ohelp)


def _method_flags(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The ``--<method>-<option>`` flags given (an option of another method is an error)."""
    options: dict[str, Any] = {}
    for key, value in vars(args).items():
        if not key.startswith("method_opt__") or value is None:
            continue
        _, mname, oname = key.split("__", 2)
        if mname != method:
            raise ValueError(f"--{mname}-{oname.replace('_', '-')} given but --method is {method!r}")
        options[oname] = list(value) if isinstance(value, list) else value
    return options


#: Version of the run-name scheme; bump it only when a change must rename every run.
SCHEMA_VERSION = 2

#: The fields release 0.1 hashed (its run names cover exactly these).
_LEGACY_FIELDS = (
    "model", "dataset", "data_options", "data_seed", "density_scheme", "density", "density_options", "flow_repair",
    "method", "method_options", "epochs", "batch_size", "lr", "momentum", "weight_decay", "optimizer", "schedule",
    "lr_min", "label_smoothing", "augment", "seed", "width", "model_options", "amp",
)


def _canonical_options(config: TrainConfig, name: str) -> Any:
    """A field's value for the run name: option dicts without their default entries."""
    value = getattr(config, name)
    if name == "method_options":
        return METHODS.entry(config.method).canonical_options(value)
    if name == "density_options":
        entry = DENSITY_SCHEMES.entry(config.density_scheme)
        if entry.options is not None:
            return entry.canonical_options(value)
    return value


def _check_names(config: TrainConfig) -> None:
    """Every registry name of ``config`` exists (the error lists the valid names)."""
    from ertrain.data import DATASETS  # data and models load torch: imported on use (neither imports config)
    from ertrain.models import MODELS

    MODELS.check(config.model)
    PROTOCOLS.check(config.protocol)
    if config.recipe is not None:
        RECIPES.check(config.recipe)
    if config.log:
        check_trackers(config.log)
    if config.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {config.dataset!r}; valid names: {', '.join(sorted(DATASETS))}")
    from ertrain.data.identity import check_compatible
    from ertrain.data.registry import dataset, dataset_options

    check_compatible(config.model, config.dataset)
    dataset_options(config.dataset, config.data_options)
    if config.val_fraction > 0 and dataset(config.dataset).inputs == "graph":
        raise ValueError(f"val_fraction applies to image and flat data; dataset {config.dataset!r} is a graph with "
                         "its own validation nodes (use val_fraction 0)")
    METHODS[config.method].check_config(config)
    entry = DENSITY_SCHEMES.entry(config.density_scheme)
    if entry.options is not None:
        entry.make_options(config.density_options)


def _check_protocol_fields(config: TrainConfig) -> None:
    """The fields the protocols set: warm-up, validation split, selection, sparsity-aware initialisation."""
    _check_int(config.warmup_epochs, "warmup_epochs", 0)
    _check_int(config.select_from_epoch, "select_from_epoch", 0)
    if not 0.0 <= float(config.val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {config.val_fraction!r}")
    if config.select not in SELECT_CHOICES:
        raise ValueError(f"select must be one of {SELECT_CHOICES}, got {config.select!r}")
    if config.select == "best_val" and config.val_fraction == 0.0:
        raise ValueError("select 'best_val' needs a validation split: set val_fraction > 0")
    if config.init_scale_fan_per not in SCALE_FAN_PER:
        raise ValueError(f"init_scale_fan_per must be one of {SCALE_FAN_PER}, got {config.init_scale_fan_per!r}")
    if config.nesterov and (config.optimizer != "sgd" or config.momentum <= 0):
        raise ValueError("nesterov needs optimizer 'sgd' with momentum > 0")


def _check_int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _jsonable(value: dict[str, Any], name: str) -> dict[str, Any]:
    try:
        decoded: dict[str, Any] = json.loads(json.dumps(value, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be JSON-serialisable, got {value!r}") from exc
    return decoded


def _method_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """Validate ``options`` against the method's ``Options`` and fill in its defaults."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid names: {', '.join(sorted(METHODS))}")
    opts_cls = METHODS[method].Options
    known = {f.name for f in dataclasses.fields(opts_cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown options {unknown} for method {method!r}; valid: {sorted(known)}")
    full = dataclasses.asdict(opts_cls(**options))
    return _jsonable(full, f"options of method {method!r}")


def _is_dict(tp: Any) -> bool:
    return typing.get_origin(tp) is dict or tp is dict


def _base_type(tp: Any) -> Any:
    """``str | None`` -> ``str``; plain types unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _sequence_item(tp: Any) -> Any:
    """Item type of ``tuple[int, ...]`` / ``list[float]`` option fields, else None."""
    tp = _base_type(tp)
    if typing.get_origin(tp) in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return args[0] if args else str
    return None


__all__ = ["FLOW_REPAIR_MODES", "OPTIMIZERS", "SCHEDULES", "TrainConfig"]
