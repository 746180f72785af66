"""Run names: pinned hashes, canonical options, release-0.1 directories, validation before anything is written."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ertrain.config import SCHEMA_VERSION, TrainConfig
from ertrain.runner import locate, run

#: Run names pinned: an accidental change of the naming scheme (a new field that is hashed although it
#: equals its default, a changed canonical form) fails here.  Change them only with SCHEMA_VERSION.
PINNED: dict[str, tuple[dict[str, object], str]] = {
    "mlp-digits-dense": (dict(model="mlp", dataset="digits"), "d46b81a8ea7d60e1"),
    "vgg16-balanced": (dict(model="vgg16", dataset="cifar10", density_scheme="balanced", density=0.1),
                       "14973c5caffc0fc2"),
    "rigl-erk": (dict(model="resnet20", dataset="cifar10", density_scheme="erk", density=0.05, method="rigl",
                      method_options={"update_every": 50}), "db916eb3d5f5d7b6"),
}


def _independent_hash(fields: dict[str, object]) -> str:
    """The documented rule, written out: SHA-256 of {"schema": 2, **non-default hyper-parameters}."""
    doc = {"schema": SCHEMA_VERSION, **fields}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_schema_version_is_two() -> None:
    assert SCHEMA_VERSION == 2


@pytest.mark.parametrize("name", sorted(PINNED))
def test_run_names_are_pinned(name: str) -> None:
    fields, pinned = PINNED[name]
    config = TrainConfig(**fields)  # type: ignore[arg-type]
    assert config.run_hash() == _independent_hash(fields) == pinned


def test_defaults_written_out_name_the_same_run() -> None:
    a = TrainConfig(model="mlp", dataset="digits", density_scheme="erk", density=0.1)
    b = TrainConfig(model="mlp", dataset="digits", density_scheme="erk", density=0.1,
                    density_options={"form": "code", "power": 1.0}, protocol="exact", nesterov=False,
                    warmup_epochs=0, schedule_options={})
    c = TrainConfig(model="mlp", dataset="digits", density_scheme="erk", density=0.1, method="rigl")
    d = TrainConfig(model="mlp", dataset="digits", density_scheme="erk", density=0.1, method="rigl",
                    method_options={"update_every": 100})
    assert a.run_hash() == b.run_hash()
    assert c.run_hash() == d.run_hash() != a.run_hash()
    # execution-only fields never rename a run
    assert a.run_hash() == a.replace(device="cpu", data_dir="/elsewhere", compile=True, log=("tensorboard",),
                                     recipe="digits-mlp").run_hash()


def test_legacy_hash_is_release_0_1s_rule() -> None:
    config = TrainConfig(model="mlp", dataset="digits", density_scheme="balanced", density=0.1, epochs=2)
    legacy = {k: v for k, v in config.hyperparameters().items()
              if k not in ("nesterov", "schedule_options", "warmup_epochs", "val_fraction", "select",
                           "select_from_epoch", "init_scale_fan", "init_scale_fan_per", "protocol", "mask_options")}
    text = json.dumps(legacy, sort_keys=True, separators=(",", ":"))
    assert config.legacy_run_hash() == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert config.replace(nesterov=True, momentum=0.9).legacy_run_hash() is None  # 0.1 could not express it


def test_a_release_0_1_run_directory_is_renamed_and_resumed(tmp_path: Path) -> None:
    config = TrainConfig(model="mlp", dataset="digits", density_scheme="balanced", density=0.5, epochs=1,
                         batch_size=64, lr=0.05, device="cpu")
    old = tmp_path / str(config.legacy_run_hash())
    old.mkdir()
    (old / "config.json").write_text(config.to_json())
    rd = locate(config, tmp_path)
    assert rd.path.name == config.run_hash() and rd.path.is_dir() and not old.exists()
    result = run(config, tmp_path, progress=False)
    assert result["run_hash"] == config.run_hash()


def test_unknown_model_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "D"
    r = subprocess.run([sys.executable, "-m", "ertrain.cli", "train", "--model", "nosuch", "--dataset", "digits",
                        "--sparsity", "0.9", "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "nosuch" in lines[0] and "mlp" in lines[0] and "vgg16" in lines[0]
    assert not out.exists()


def test_a_foreign_checkpoint_is_refused(tmp_path: Path) -> None:
    import shutil

    a = TrainConfig(model="mlp", dataset="digits", density_scheme="balanced", density=0.5, epochs=1,
                    batch_size=64, device="cpu")
    b = a.replace(seed=1, lr=0.05)
    run(a, tmp_path, progress=False)
    target = tmp_path / b.run_hash()
    target.mkdir()
    shutil.copy(tmp_path / a.run_hash() / "checkpoint.pt", target / "checkpoint.pt")
    with pytest.raises(ValueError, match=f"belongs to run {a.run_hash()}, not to {b.run_hash()}"):
        run(b, tmp_path, progress=False)
    assert not (target / "result.json").exists()


def test_a_torn_result_is_finished_again(tmp_path: Path) -> None:
    config = TrainConfig(model="mlp", dataset="digits", density_scheme="balanced", density=0.5, epochs=1,
                         batch_size=64, device="cpu")
    first = run(config, tmp_path, progress=False)
    path = tmp_path / config.run_hash() / "result.json"
    path.write_text(path.read_text()[:20])  # torn
    again = run(config, tmp_path, progress=False)
    assert again["test_accuracy"] == first["test_accuracy"]
    assert json.loads(path.read_text())["run_hash"] == config.run_hash()
    assert (path.parent / "result.json.torn").exists()


def test_changed_data_never_returns_the_stored_result(tmp_path: Path) -> None:
    config = TrainConfig(model="mlp", dataset="digits", density_scheme="balanced", density=0.5, epochs=1,
                         batch_size=64, device="cpu")
    run(config, tmp_path, progress=False)
    identity = tmp_path / config.run_hash() / "data.json"
    stored = json.loads(identity.read_text())
    identity.write_text(json.dumps({**stored, "fingerprint": "0" * 16}))
    with pytest.raises(ValueError, match="changed since it was trained"):
        run(config, tmp_path, progress=False)


def test_a_second_process_cannot_train_a_locked_run(tmp_path: Path) -> None:
    from ertrain.rundir import RunDir, RunLockedError

    config = TrainConfig(model="mlp", dataset="digits", density_scheme="balanced", density=0.5, epochs=1,
                         batch_size=64, device="cpu")
    rd = RunDir.of(tmp_path, config.run_hash())
    with rd.lock():
        code = ("import sys; from ertrain.config import TrainConfig; from ertrain.runner import run; "
                "run(TrainConfig.from_json(sys.stdin.read()), sys.argv[1], progress=False)")
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], input=config.to_json(), capture_output=True,
                           text=True)
        assert r.returncode != 0 and RunLockedError.__name__ in r.stderr and "being trained by pid" in r.stderr
    assert not (rd.path / "result.json").exists()


def test_a_finished_run_is_cached_unless_resume_is_off(tmp_path: Path) -> None:
    from ertrain.runner import run_config

    config = TrainConfig(model="mlp", dataset="digits", density_scheme="balanced", density=0.5, epochs=1,
                         batch_size=64, device="cpu")
    first = run_config(config, tmp_path, progress=False)
    again = run_config(config, tmp_path, progress=False)
    assert not first.cached and again.cached and again.result == first.result
    (tmp_path / config.run_hash() / "metrics.jsonl").write_text("")
    retrained = run_config(config, tmp_path, resume=False, progress=False)
    assert not retrained.cached
    assert retrained.result["test_accuracy"] == first.result["test_accuracy"]  # deterministic on the CPU
    assert len((tmp_path / config.run_hash() / "metrics.jsonl").read_text().splitlines()) == 1
