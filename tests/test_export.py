"""``ertrain export``: every format round-trips a tiny finished run, loaded without ertrain."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ertrain.cli import main as ertrain_main
from ertrain.config import TrainConfig
from ertrain.data import load_dataset
from ertrain.export import ATOL, RTOL, export_run, sidecar_path
from ertrain.runner import load_run, run
from ertrain.trainer import Trainer

FORMATS = ["torch", "torchscript", "onnx", "safetensors"]


def tiny_config(**changes: Any) -> TrainConfig:
    base: dict[str, Any] = dict(
        model="mlp", dataset="digits", model_options={"hidden": [32]}, epochs=1, batch_size=64, lr=0.1,
        density_scheme="erk", density=0.2, device="cpu",
    )
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = tiny_config()
    runs = tmp_path_factory.mktemp("runs")
    run(cfg, runs, progress=False)
    return runs / cfg.run_hash()


@pytest.fixture(scope="module")
def test_batch() -> torch.Tensor:
    return load_dataset("digits", None).x_test[:50]


def load_plain(path: Path, fmt: str) -> Any:
    """Load the exported file with torch / onnxruntime / safetensors only (what a user without ertrain does)."""
    if fmt == "torch":
        with open(path, "rb") as fh:
            return torch.export.load(fh).module()
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path))
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    from safetensors.torch import load_file

    return load_file(str(path))


def exported_weights(path: Path, fmt: str, loaded: Any) -> dict[str, torch.Tensor]:
    """The weight tensors inside the exported file, by parameter name."""
    if fmt in ("torch", "torchscript"):
        return {k: v for k, v in loaded.state_dict().items() if k.endswith("weight")}
    if fmt == "onnx":
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path)).graph
        return {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer
                if i.name.endswith("weight")}
    return {k: v for k, v in loaded.items() if k.endswith("weight")}


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_round_trip(fmt: str, finished_run: Path, test_batch: torch.Tensor, tmp_path: Path) -> None:
    config, model, masking, result = load_run(finished_run)
    assert masking is not None
    out = tmp_path / f"model.{fmt}"
    sidecar = export_run(finished_run, fmt, out)
    loaded = load_plain(out, fmt)
    with torch.no_grad():
        expected = model(test_batch)
    if fmt == "safetensors":
        # rebuild the architecture the sidecar describes and load the plain state dict
        from ertrain.models import build_model

        rebuilt = build_model(sidecar["model"], width=config.width, **sidecar["model_kwargs"],
                              **sidecar["config"]["model_options"]).eval()
        rebuilt.load_state_dict(loaded)
        forward = rebuilt
    else:
        forward = loaded
    with torch.no_grad():
        got = forward(test_batch)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=RTOL)
    assert got.argmax(1).tolist() == expected.argmax(1).tolist()
    # masks folded in: the pruned entries are exactly zero, the kept ones are the trained weights
    weights = exported_weights(out, fmt, loaded)
    for name, mask in masking.masks.items():
        w = weights[f"{name}.weight"]
        assert w.shape == mask.shape
        assert torch.count_nonzero(w[~mask]) == 0
        assert torch.equal(w[mask], dict(model.named_parameters())[f"{name}.weight"].detach()[mask])
    # the sidecar
    on_disk = json.loads(sidecar_path(out).read_text())
    assert on_disk == json.loads(json.dumps(sidecar))
    assert on_disk["test_accuracy"] == result["test_accuracy"] and on_disk["density"] == result["density"]
    assert TrainConfig.from_json(json.dumps(on_disk["config"])) == config
    assert {n: v["density"] for n, v in on_disk["layers"].items()} == masking.densities()
    assert on_disk["check"]["passed"] and on_disk["bytes"] == out.stat().st_size
    assert on_disk["input_shape"] == [1, 8, 8]


def test_packed_safetensors_is_smaller_and_exact(finished_run: Path, tmp_path: Path) -> None:
    from ertrain.sparse import fold_masks, load_packed

    dense = export_run(finished_run, "safetensors", tmp_path / "dense.safetensors")
    packed = export_run(finished_run, "safetensors", tmp_path / "packed.safetensors", packed=True)
    assert packed["packed"] and packed["bytes"] < dense["bytes"]
    _, model, _, _ = load_run(finished_run)
    state = load_packed(tmp_path / "packed.safetensors")
    expected = fold_masks(model).state_dict()
    assert state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in expected)


def test_cli_export_and_errors(finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.onnx"
    assert ertrain_main(["export", str(finished_run), "--format", "onnx", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["format"] == "onnx" and out.exists() and sidecar_path(out).exists()
    assert ertrain_main(["export", str(finished_run), "--format", "tflite", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'tflite'" in err and "onnx" in err
    assert not (tmp_path / "x").exists()
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((finished_run / "config.json").read_text())
    with pytest.raises(ValueError, match="not finished"):
        export_run(unfinished, "onnx", tmp_path / "y.onnx")
    with pytest.raises(ValueError, match="packed"):
        export_run(finished_run, "onnx", tmp_path / "z.onnx", packed=True)


def test_edgepopup_export_is_a_subnetwork_of_the_random_weights(tmp_path: Path) -> None:
    options = {"final_density": 0.1, "levels": 1, "init": "model"}
    cfg = tiny_config(method="edgepopup", method_options=options, density_scheme="dense", density=1.0)
    result = run(cfg, tmp_path / "runs", progress=False)
    out = tmp_path / "slt.safetensors"
    sidecar = export_run(tmp_path / "runs" / cfg.run_hash(), "safetensors", out)
    from safetensors.torch import load_file

    state = load_file(str(out))
    initial = Trainer.from_config(cfg, progress=False).model.state_dict()  # same seed: the fixed random weights
    kept = total = 0
    for name in sidecar["layers"]:
        w, w0 = state[f"{name}.weight"], initial[f"{name}.weight"]
        nz = w != 0
        assert torch.equal(w[nz], w0[nz])  # kept weights are the untrained random ones
        kept, total = kept + int(nz.sum()), total + w.numel()
    assert kept == round(0.1 * total) and np.isclose(result["density"], kept / total)


@pytest.mark.slow
def test_resnet_with_batchnorm_and_1x1_shortcuts_exports(tmp_path: Path, test_batch: torch.Tensor) -> None:
    cfg = tiny_config(model="resnet20", width=0.25, model_options={"shortcut": "B"}, lr=0.05, density=0.3)
    run(cfg, tmp_path / "runs", progress=False)
    run_dir = tmp_path / "runs" / cfg.run_hash()
    _, model, masking, _ = load_run(run_dir)
    assert masking is not None and any(m.shape[-1] == 1 for m in masking.masks.values())
    with torch.no_grad():
        expected = model(test_batch)
    for fmt in ("torch", "onnx"):
        out = tmp_path / f"resnet.{fmt}"
        export_run(run_dir, fmt, out)
        with torch.no_grad():
            got = load_plain(out, fmt)(test_batch)
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=RTOL)
