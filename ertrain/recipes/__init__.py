"""Recipes: named default hyper-parameter sets for a dataset and model, stored as TOML data files.

A recipe file ``ertrain/recipes/<name>.toml`` holds a ``description`` and a ``[hyperparameters]``
table whose keys are :class:`~ertrain.config.TrainConfig` field names (``epochs``, ``batch_size``,
``lr``, ``optimizer``, ``schedule``, ``weight_decay``, ``momentum``, ``augment``, ...).  Its comments
say how the values were chosen (dense networks, validation split only).  ``defaults.toml`` lists the
rules that pick the recipe of a ``(model, dataset)`` pair: the first rule whose ``model`` and
``dataset`` patterns (``fnmatch``, ``*`` for any) both match names the recipe.

``paper-cifar`` is the paper's CIFAR recipe (appendix A.7, DIGEST §10): SGD, learning rate 0.1,
momentum 0.9, weight decay 5e-4, batch 128, 160 epochs, cosine annealing, crop + flip augmentation.

Recipes live in a :class:`~ertrain.registry.Registry`: other packages add theirs through the
entry-point group ``ertrain.recipes`` (a module calling :func:`register_recipe`).

Example::

    from ertrain.recipes import default_recipe, load_recipe
    default_recipe("mlp", "digits")          # 'digits-mlp'
    load_recipe("digits-mlp")["epochs"]      # 30
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ertrain.registry import Registry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The folder of the built-in recipe files.
RECIPE_DIR = Path(__file__).resolve().parent
#: The rules file inside :data:`RECIPE_DIR`.
RULES_FILE = "defaults.toml"
#: TrainConfig fields a recipe may not set: what a run *is*, not how it is trained.
NOT_RECIPE_FIELDS = frozenset({"model", "dataset", "density_scheme", "density", "density_options", "flow_repair",
                               "method", "seed", "data_seed", "width", "data_dir", "device", "recipe"})

#: Registered recipes: name -> the recipe's file (a :class:`Path`) or its hyper-parameters (a mapping).
RECIPES: Registry[Any] = Registry("recipes", builtins=("ertrain.recipes",), label="recipe")


def register_recipe(name: str, source: Path | Mapping[str, Any], *, help: str = "") -> None:
    """Register a recipe: a TOML file like the built-in ones, or a mapping of TrainConfig fields."""
    if not isinstance(source, (Path, Mapping)):
        raise ValueError(f"recipe {name!r} must be a Path to a TOML file or a mapping, got {source!r}")
    RECIPES.register(name, source if isinstance(source, Path) else dict(source), help=help)


def recipe_names() -> list[str]:
    """Every registered recipe name, sorted."""
    return RECIPES.names()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: unreadable recipe file ({exc})") from exc


def load_recipe(name: str) -> dict[str, Any]:
    """The hyper-parameters of recipe ``name`` (TrainConfig field -> value), validated.

    Unknown names raise :class:`~ertrain.registry.UnknownNameError` (a ``ValueError``) listing the valid
    ones; a recipe that sets an unknown field, or a field that is not a training hyper-parameter, raises.
    """
    source = RECIPES[name]
    if isinstance(source, Path):
        values = _read_toml(source).get("hyperparameters")
        if not isinstance(values, dict) or not values:
            raise ValueError(f"{source}: a recipe needs a non-empty [hyperparameters] table")
    else:
        values = dict(source)
    _check_fields(name, values)
    return dict(values)


def recipe_description(name: str) -> str:
    """The one-paragraph ``description`` of recipe ``name`` (empty for recipes given as mappings)."""
    source = RECIPES[name]
    return str(_read_toml(source).get("description", "")) if isinstance(source, Path) else RECIPES.entry(name).help


def _check_fields(name: str, values: Mapping[str, Any]) -> None:
    """A recipe sets training hyper-parameters only (the resolver refuses fields TrainConfig lacks)."""
    bad = sorted(set(values) & NOT_RECIPE_FIELDS)
    if bad:
        raise ValueError(f"recipe {name!r} sets {bad}, which are not training hyper-parameters; "
                         f"a recipe may not set {', '.join(sorted(NOT_RECIPE_FIELDS))}")


def default_rules() -> list[dict[str, str]]:
    """The rules of ``defaults.toml`` in order: ``{"model": pattern, "dataset": pattern, "recipe": name}``."""
    path = RECIPE_DIR / RULES_FILE
    rules = _read_toml(path).get("rule")
    if not isinstance(rules, list) or not rules:
        raise ValueError(f"{path}: needs at least one [[rule]]")
    for rule in rules:
        if not isinstance(rule, dict) or set(rule) != {"model", "dataset", "recipe"}:
            raise ValueError(f"{path}: every [[rule]] has exactly model, dataset and recipe, got {rule!r}")
        RECIPES.check(rule["recipe"])
    return rules


def default_recipe(model: str, dataset: str) -> str:
    """The recipe the first matching rule of ``defaults.toml`` names for ``model`` trained on ``dataset``."""
    for rule in default_rules():
        if fnmatch.fnmatchcase(model, rule["model"]) and fnmatch.fnmatchcase(dataset, rule["dataset"]):
            return rule["recipe"]
    raise ValueError(f"no rule of {RECIPE_DIR / RULES_FILE} matches model {model!r} and dataset {dataset!r}")


def _register_builtins() -> None:
    for path in sorted(RECIPE_DIR.glob("*.toml")):
        if path.name != RULES_FILE:
            register_recipe(path.stem, path)


_register_builtins()

__all__ = ["RECIPES", "RECIPE_DIR", "default_recipe", "default_rules", "load_recipe", "recipe_description",
           "recipe_names", "register_recipe"]
