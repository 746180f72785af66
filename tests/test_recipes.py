"""Recipes: the data files, the rules that pick a recipe, validation, and the digits acceptance target."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ertrain.config import TrainConfig, resolve
from ertrain.recipes import (
    NOT_RECIPE_FIELDS,
    RECIPE_DIR,
    RECIPES,
    default_recipe,
    default_rules,
    load_recipe,
    recipe_description,
    recipe_names,
    register_recipe,
)
from ertrain.registry import DuplicateNameError, UnknownNameError


def test_paper_recipe_is_the_papers_cifar_setting() -> None:
    # DIGEST §10, "Random pruning (A.7)": SGD, lr 0.1, momentum 0.9, wd 5e-4, batch 128, 160 epochs; cosine (code)
    assert load_recipe("paper-cifar") == {
        "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 128, "epochs": 160,
        "schedule": "cosine", "lr_min": 0.0, "augment": True,
    }


def test_every_file_is_a_registered_recipe_and_builds_a_config() -> None:
    files = {p.stem for p in RECIPE_DIR.glob("*.toml")} - {"defaults"}
    assert set(recipe_names()) >= files and len(files) >= 7
    for name in files:
        values = load_recipe(name)
        assert values and not set(values) & NOT_RECIPE_FIELDS
        TrainConfig(model="mlp", dataset="digits", **values)  # every value passes TrainConfig's validation
        assert recipe_description(name)


@pytest.mark.parametrize(("model", "dataset", "expected"), [
    ("mlp", "digits", "digits-mlp"),
    ("mlp", "fashion-mnist", "fashion-mnist-mlp"),
    ("smallcnn", "fashion-mnist", "fashion-mnist-smallcnn"),
    ("mlp", "tabular", "tabular-mlp"),
    ("gcn", "cora", "graph-gcn"),
    ("gcn", "synthetic-citation", "graph-gcn"),
    ("mlp", "modular-addition", "modular-addition-mlp"),
    ("vgg16", "cifar10", "paper-cifar"),
    ("resnet18", "cifar100", "paper-cifar"),
    ("resnet20", "fashion-mnist", "paper-cifar"),  # no tuned recipe: the catch-all rule
])
def test_default_recipe_follows_the_rules(model: str, dataset: str, expected: str) -> None:
    assert default_recipe(model, dataset) == expected


def test_rules_name_registered_recipes_and_end_with_a_catch_all() -> None:
    rules = default_rules()
    assert all(r["recipe"] in RECIPES for r in rules)
    assert (rules[-1]["model"], rules[-1]["dataset"]) == ("*", "*")


def test_unknown_recipe_lists_the_valid_names() -> None:
    with pytest.raises(UnknownNameError, match="'no-such'.*digits-mlp.*paper-cifar"):
        load_recipe("no-such")
    assert issubclass(UnknownNameError, ValueError)


def test_registered_mapping_is_validated_and_duplicates_raise() -> None:
    register_recipe("test-tiny", {"epochs": 2, "lr": 0.5}, help="two epochs")
    try:
        assert load_recipe("test-tiny") == {"epochs": 2, "lr": 0.5}
        assert recipe_description("test-tiny") == "two epochs"
        with pytest.raises(DuplicateNameError):
            register_recipe("test-tiny", {"epochs": 3})
    finally:
        RECIPES.unregister("test-tiny")
    register_recipe("test-bad", {"epochs": 2, "model": "mlp"})
    register_recipe("test-unknown", {"epochs": 2, "nosuch": 1})
    try:
        with pytest.raises(ValueError, match=r"'test-bad' sets \['model'\], which are not training"):
            load_recipe("test-bad")
        with pytest.raises(ValueError, match=r"unknown TrainConfig fields \['nosuch'\] \(in recipe 'test-unknown'\)"):
            resolve({"model": "mlp", "dataset": "digits", "recipe": "test-unknown"})
    finally:
        RECIPES.unregister("test-bad")
        RECIPES.unregister("test-unknown")


def test_a_file_without_hyperparameters_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text('description = "nothing"\n')
    register_recipe("test-empty", path)
    try:
        with pytest.raises(ValueError, match="hyperparameters"):
            load_recipe("test-empty")
    finally:
        RECIPES.unregister("test-empty")
    with pytest.raises(ValueError, match="Path to a TOML file or a mapping"):
        register_recipe("test-wrong", "digits.toml")  # type: ignore[arg-type]


def test_recipes_set_only_existing_fields() -> None:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in recipe_names():
        assert set(load_recipe(name)) <= fields


def test_digits_recipe_trains_a_balanced_sparse_mlp_above_93_percent() -> None:
    """The acceptance target: MLP, digits, balanced ratios, sparsity 0.9, the recipe as the only settings."""
    import time

    import torch

    from ertrain.trainer import Trainer

    torch.set_num_threads(1)
    config = TrainConfig(model="mlp", dataset="digits", density_scheme="balanced", density=0.1,
                         **load_recipe(default_recipe("mlp", "digits")))
    start = time.process_time()
    trainer = Trainer.from_config(config, device="cpu", progress=False)
    trainer.fit(config.epochs)
    accuracy = trainer.evaluate("test")["accuracy"]
    assert accuracy >= 0.93
    assert time.process_time() - start < 60.0
    assert trainer.density() == pytest.approx(0.1, abs=0.01)
