"""TrainConfig: validation, JSON round trip, run hash, generated CLI flags."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ertheory.cli_util import OneLineParser
from ertrain.config import TrainConfig
from ertrain.methods import METHODS, Method, register_method


def parse(*argv: str) -> TrainConfig:
    parser = OneLineParser(prog="t")
    TrainConfig.add_arguments(parser)
    return TrainConfig.from_args(parser.parse_args(list(argv)))


@settings(max_examples=30)
@given(
    lr=st.floats(1e-6, 10.0),
    epochs=st.integers(0, 500),
    density=st.floats(1e-4, 0.999),
    seed=st.integers(0, 2**31),
    augment=st.booleans(),
    hidden=st.lists(st.integers(1, 512), max_size=3),
)
def test_json_round_trip(lr: float, epochs: int, density: float, seed: int, augment: bool, hidden: list[int]) -> None:
    cfg = TrainConfig(model="mlp", dataset="digits", density_scheme="erk", density=density, lr=lr, epochs=epochs,
                      seed=seed, augment=augment, model_options={"hidden": hidden})
    back = TrainConfig.from_json(cfg.to_json())
    assert back == cfg
    assert back.run_hash() == cfg.run_hash()
    assert json.loads(cfg.to_json())["model_options"] == {"hidden": hidden}


def test_hash_ignores_execution_fields_only() -> None:
    base = TrainConfig(model="mlp", dataset="digits")
    for change in ({"device": "cpu"}, {"data_dir": "/elsewhere"}, {"compile": True}, {"channels_last": False}):
        assert base.replace(**change).run_hash() == base.run_hash(), change
    hashes = {base.run_hash()}
    for change in ({"lr": 0.05}, {"seed": 1}, {"epochs": 3}, {"model_options": {"hidden": [10]}},
                   {"density_scheme": "uniform", "density": 0.5}, {"width": 2.0}, {"amp": False}):
        hashes.add(base.replace(**change).run_hash())
    assert len(hashes) == 8
    assert len(base.run_hash()) == 16 and int(base.run_hash(), 16) >= 0


def test_defaults_are_the_papers_cifar_settings() -> None:
    cfg = parse("--model", "vgg16", "--dataset", "cifar10")
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size, cfg.epochs) == (
        "sgd", 0.1, 0.9, 5e-4, 128, 160)
    assert cfg.density == 1.0 and cfg.density_scheme == "dense" and cfg.method == "static"


def test_flags_cover_every_field() -> None:
    cfg = parse(
        "--model", "resnet20", "--dataset", "cifar100", "--data-dir", "/d", "--data-options", '{"check_counts": false}',
        "--data-seed", "3", "--density-scheme", "erk", "--sparsity", "0.9", "--density-options", '{"form": "text"}',
        "--flow-repair", "rejection", "--mask-options", '{"exclude": ["fc.weight"]}', "--method", "static",
        "--epochs", "7", "--batch-size", "64", "--lr", "0.2",
        "--momentum", "0.5", "--weight-decay", "0.001", "--schedule", "multistep",
        "--lr-min", "0.01", "--label-smoothing", "0.1", "--no-augment", "--seed", "5", "--width", "2",
        "--model-options", '{"shortcut": "A"}', "--no-amp", "--no-channels-last", "--compile", "--device", "cpu",
        "--nesterov", "--optimizer", "sgd", "--schedule-options", '{"milestones": [0.3, 0.6]}', "--warmup-epochs", "2",
        "--val-fraction", "0.1", "--select", "best_val", "--select-from-epoch", "3", "--init-scale-fan",
        "--init-scale-fan-per", "layer", "--protocol", "paper-code", "--recipe", "digits-mlp", "--log", "tensorboard",
        "--engine", "auto",
    )
    expected = TrainConfig(
        model="resnet20", dataset="cifar100", data_dir="/d", data_options={"check_counts": False}, data_seed=3,
        density_scheme="erk", density=0.1, density_options={"form": "text"}, flow_repair="rejection",
        mask_options={"exclude": ["fc.weight"]}, epochs=7,
        batch_size=64, lr=0.2, momentum=0.5, weight_decay=0.001, optimizer="sgd", schedule="multistep",
        lr_min=0.01, label_smoothing=0.1, augment=False, seed=5, width=2.0,
        model_options={"shortcut": "A", "init": "fan_in"},  # the explicit shortcut wins, paper-code adds its init
        amp=False, channels_last=False, compile=True, device="cpu", nesterov=True,
        schedule_options={"milestones": [0.3, 0.6], "gamma": 0.1}, warmup_epochs=2, val_fraction=0.1, select="best_val",
        select_from_epoch=3, init_scale_fan=True, init_scale_fan_per="layer", protocol="paper-code",
        recipe="digits-mlp", log=("tensorboard",), engine="auto",
    )
    assert cfg == expected
    # every field except the method options was set away from its default by a flag
    defaults = TrainConfig(model="mlp", dataset="digits")
    unchanged = [f.name for f in dataclasses.fields(TrainConfig) if getattr(cfg, f.name) == getattr(defaults, f.name)]
    assert sorted(unchanged) == ["method", "method_options", "optimizer"]


def test_sparsity_and_density_name_the_same_run() -> None:
    a = parse("--model", "mlp", "--dataset", "digits", "--density-scheme", "erk", "--sparsity", "0.9")
    b = parse("--model", "mlp", "--dataset", "digits", "--density-scheme", "erk", "--density", "0.1")
    assert a == b and a.run_hash() == b.run_hash()


def test_sparsity_and_density_together_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from ertrain.cli import main

    rc = main(["train", "--model", "mlp", "--dataset", "digits", "--density-scheme", "erk",
               "--sparsity", "0.9", "--density", "0.1"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--density" in err


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"density_scheme": "erk", "density": 1.5}, "1.5"),
        ({"density_scheme": "erk", "density": 0.0}, "0.0"),
        ({"density": 0.5}, "dense"),
        ({"epochs": -1}, "-1"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"optimizer": "lbfgs"}, "lbfgs"),
        ({"schedule": "steps"}, "steps"),
        ({"flow_repair": "magic"}, "magic"),
        ({"method": "nosuch"}, "static"),
        ({"method_options": {"cycles": 3}}, "cycles"),
        ({"model_options": {"f": float("nan")}}, "model_options"),
    ],
)
def test_bad_values_raise_naming_them(change: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        TrainConfig(model="mlp", dataset="digits", **change)  # type: ignore[arg-type]


def test_scheme_without_density_is_an_error() -> None:
    with pytest.raises(ValueError, match="balanced"):
        parse("--model", "mlp", "--dataset", "digits", "--density-scheme", "balanced")


def test_from_json_rejects_unknown_fields() -> None:
    data = json.loads(TrainConfig(model="mlp", dataset="digits").to_json())
    data["learning_rate"] = 0.1
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_json(data)


@dataclass(frozen=True)
class _ToyOptions:
    cycles: int = 2
    rate: float = 0.2
    levels: tuple[int, ...] = (1, 2)
    verbose: bool = False


@pytest.fixture
def toy_method() -> Iterator[str]:
    class Toy(Method):
        Options = _ToyOptions  # type: ignore[assignment]

    register_method("toy-test")(Toy)
    try:
        yield "toy-test"
    finally:
        METHODS.unregister("toy-test")


def test_method_option_flags_fill_defaults(toy_method: str) -> None:
    cfg = parse("--model", "mlp", "--dataset", "digits", "--method", toy_method, "--toy-test-cycles", "5",
                "--toy-test-levels", "3", "4", "5", "--toy-test-verbose")
    assert cfg.method_options == {"cycles": 5, "rate": 0.2, "levels": [3, 4, 5], "verbose": True}
    plain = TrainConfig(model="mlp", dataset="digits", method=toy_method)
    assert plain.method_options == {"cycles": 2, "rate": 0.2, "levels": [1, 2], "verbose": False}
    # defaults written out or left implicit: the same run
    explicit = TrainConfig(model="mlp", dataset="digits", method=toy_method, method_options={"cycles": 2})
    assert explicit.run_hash() == plain.run_hash()
    with pytest.raises(ValueError, match="toy-test-cycles"):
        parse("--model", "mlp", "--dataset", "digits", "--toy-test-cycles", "5")
