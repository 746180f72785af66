"""Experiment trackers: a real digits run's metrics.jsonl replayed into TensorBoard and offline W&B, read back.

TensorBoard's event files are read with tensorboard's own ``EventAccumulator``; the offline W&B run file
(``run-<id>.wandb``: W&B's record log, 32 KiB blocks of CRC-framed chunks holding ``Record`` protobufs) is
read by a small parser written here, independently of the writer.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ertrain.cli import main
from ertrain.registry import UnknownNameError
from ertrain.tracking import TRACKERS, check_trackers, flatten_hparams, flatten_metrics, open_trackers


@pytest.mark.parametrize(
    ("record", "flat"),
    [
        ({"loss": 1.5, "epoch": 3}, {"loss": 1.5, "epoch": 3.0}),
        ({"density": {"conv1": 0.25, "fc": 1}}, {"density/conv1": 0.25, "density/fc": 1.0}),
        ({"mask_changes": [4, 0, 7]}, {"mask_changes/0": 4.0, "mask_changes/1": 0.0, "mask_changes/2": 7.0}),
        ({"a": {"b": {"c": [0.5]}}}, {"a/b/c/0": 0.5}),
        ({"ok": True, "name": "rigl", "none": None}, {"ok": 1.0}),
    ],
)
def test_flatten_metrics_by_hand(record: dict[str, Any], flat: dict[str, float]) -> None:
    assert flatten_metrics(record) == flat


def test_flatten_hparams_by_hand() -> None:
    config = {"lr": 0.1, "model_options": {"hidden": [64, 64]}, "flow_repair": None, "amp": True}
    flat = {"lr": 0.1, "model_options/hidden": "[64, 64]", "flow_repair": "null", "amp": True}
    assert flatten_hparams(config) == flat


def test_bad_tracker_lists_raise_before_anything_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    assert sorted(TRACKERS) == ["none", "tensorboard", "wandb"]
    with pytest.raises(UnknownNameError, match="unknown tracker 'mlflow'; valid.*: none, tensorboard, wandb"):
        open_trackers(["tensorboard", "mlflow"], run_dir, {})
    with pytest.raises(ValueError, match="listed more than once"):
        open_trackers(["wandb", "wandb"], run_dir, {})
    with pytest.raises(ValueError, match="'none' cannot be combined"):
        open_trackers(["none", "tensorboard"], run_dir, {})
    with pytest.raises(ValueError, match="list of names"):
        check_trackers("tensorboard")
    with pytest.raises(ValueError, match="start_step must be >= 0"):
        open_trackers(["none"], run_dir, {}, start_step=-1)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match=r"needs the 'wandb' package: pip install 'ertoolkit\[track\]'"):
        open_trackers(["tensorboard", "wandb"], run_dir, {})
    assert not run_dir.exists()
    assert check_trackers(["none"]) == [] and check_trackers([]) == []


# ---------------------------------------------------------------------------------------------- readers


def _tensorboard_scalars(log_dir: Path) -> dict[str, dict[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(log_dir), size_guidance={"tensors": 0})
    acc.Reload()
    out: dict[str, dict[int, float]] = {}
    for tag in acc.Tags()["tensors"]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars":
            out[tag] = {e.step: float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)}
    return out


def _tensorboard_hparams(log_dir: Path) -> dict[str, Any]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    out: dict[str, Any] = {}
    for key, value in info.hparams.items():
        kind = value.WhichOneof("kind")
        out[key] = getattr(value, kind)
    return out


def _wandb_records(path: Path) -> list[Any]:
    """The ``Record`` messages of a ``.wandb`` file: a 7-byte file header (``:W&B``, magic, version), then
    32 KiB blocks of chunks ``crc32 (4) | length (2, little endian) | type (1: full, 2: first, 3: middle,
    4: last)``; a block's tail shorter than a chunk header is padding."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, pending, records = 32 * 1024, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    return records


def _wandb_history_and_config(run_dir: Path) -> tuple[dict[int, dict[str, float]], dict[str, Any]]:
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    history: dict[int, dict[str, float]] = {}
    config: dict[str, Any] = {}
    for record in _wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            history[int(items.pop("_step"))] = {k: v for k, v in items.items() if not k.startswith("_")}
        elif kind == "run":
            config.update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in record.config.update})
    config.pop("_wandb", None)
    return history, config


def _as_dicts(value: Any) -> Any:
    if isinstance(value, list):
        value = {str(i): v for i, v in enumerate(value)}
    return {k: _as_dicts(v) for k, v in value.items()} if isinstance(value, dict) else value


def _expected(record: dict[str, Any]) -> dict[str, float]:
    """A metrics record flattened by pandas (a second implementation): nested keys (list indices) joined by '/'."""
    flat = pd.json_normalize(_as_dicts(record), sep="/").iloc[0].to_dict()
    return {k: float(v) for k, v in flat.items() if isinstance(v, int | float)}


# ---------------------------------------------------------------------------------------------- a real run


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-epoch digits run trained by ``ertrain train --log tensorboard wandb`` (RigL: DST fields in the records)."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    runs = tmp_path_factory.mktemp("runs")
    argv = [
        "train", "--model", "mlp", "--dataset", "digits", "--model-options", '{"hidden": [32]}',
        "--density-scheme", "erk", "--density", "0.3", "--method", "rigl", "--rigl-update-every", "20",
        "--epochs", "2", "--batch-size", "64", "--lr", "0.05", "--out", str(runs), "--no-progress", "--json",
        "--log", "tensorboard", "wandb",
    ]
    assert main(argv) == 0
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir


@pytest.mark.slow
def test_tensorboard_and_wandb_logs_equal_metrics_jsonl(digits_run: Path) -> None:
    records = [json.loads(line) for line in (digits_run / "metrics.jsonl").read_text().splitlines()]
    config = json.loads((digits_run / "config.json").read_text())
    assert [r["epoch"] for r in records] == [0, 1]
    # the trainer logged every epoch to both trackers while it trained
    expected = {r["epoch"]: _expected(r) for r in records}
    assert {"train_loss", "test_accuracy", "lr"} <= set(expected[0])
    scalars = _tensorboard_scalars(digits_run / "tensorboard")
    assert set(scalars) == set(expected[0])
    for key, by_step in scalars.items():
        assert by_step == {step: values[key] for step, values in expected.items()}, key  # float64: exactly equal
    hparams = _tensorboard_hparams(digits_run / "tensorboard")
    flat_config = pd.json_normalize(config, sep="/").iloc[0].to_dict()
    assert set(hparams) == set(flat_config)
    for key, value in flat_config.items():
        if isinstance(value, bool | str):
            assert hparams[key] == value, key
        elif isinstance(value, int | float):
            assert hparams[key] == float(value), key
        else:  # lists and None travel as JSON text
            assert json.loads(hparams[key]) == value, key

    history, wandb_config = _wandb_history_and_config(digits_run)
    assert history == expected
    assert wandb_config == config


@pytest.mark.slow
def test_tensorboard_resume_drops_the_steps_it_logs_again(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    with open_trackers(["tensorboard"], tmp_path, {"lr": 0.1}) as tracker:
        for step in range(3):
            tracker.log(step, {"loss": float(step)})
    # the run resumes from its checkpoint at step 1: steps 1 and 2 are trained (and logged) again
    with open_trackers(["tensorboard"], tmp_path, {"lr": 0.1}, start_step=1) as tracker:
        for step in (1, 2, 3):
            tracker.log(step, {"loss": 10.0 + step})
    assert _tensorboard_scalars(tmp_path / "tensorboard") == {"loss": {0: 0.0, 1: 11.0, 2: 12.0, 3: 13.0}}
