"""Tests of ``ertrain densities``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ertrain.cli import main


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["densities", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_balanced_vgg16_json(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(capsys, "--model", "vgg16", "--density-scheme", "balanced", "--sparsity", "0.9")
    layers = out["layers"]
    assert len(layers) == 14 and layers[0]["name"] == "features.0" and layers[-1]["shape"] == [10, 512]
    params = np.array([np.prod(layer["shape"]) for layer in layers])
    p = np.array([layer["density"] for layer in layers])
    assert abs(float((params * p).sum() / params.sum()) - 0.1) <= 1e-9
    assert abs(out["overall_density"] - 0.1) <= 1e-9
    # balanced: every layer below density 1 keeps the same number of weights
    nnz = (params * p)[p < 1]
    assert np.ptp(nnz) <= 1e-6 * nnz.max()


def test_density_flag_and_sampling_with_flow_repair(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(
        capsys,
        "--model",
        "mlp",
        "--in-features",
        "64",
        "--density-scheme",
        "uniform",
        "--density",
        "0.02",
        "--seed",
        "0",
        "--flow-repair",
        "random_add",
    )
    added = sum(layer["edges_added"] for layer in out["layers"])
    assert out["edges_added"] == added > 0
    nnz = sum(layer["realised_density"] * layer["params"] for layer in out["layers"])
    assert out["realised_density"] == pytest.approx(nnz / out["params"])


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["densities", "--model", "resnet20", "--density-scheme", "erk", "--sparsity", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "conv1" in text and "classifier" in text


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--model", "nosuch", "--sparsity", "0.9"], "valid names: gcn"),
        (["--model", "vgg16", "--density-scheme", "nosuch", "--sparsity", "0.9"], "valid names: balanced"),
        (["--model", "vgg16", "--sparsity", "0.9", "--density", "0.1"], "not allowed with"),
        (["--model", "vgg16", "--sparsity", "1.5"], "sparsity"),
        (["--model", "vgg16", "--sparsity", "0.9", "--flow-repair", "rejection"], "needs --seed"),
    ],
)
def test_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], match: str) -> None:
    assert main(["densities", *argv, "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err
