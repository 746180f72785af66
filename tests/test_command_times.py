"""``scripts/time_commands.py``: the measured times of the README's two commands that the README quotes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def times() -> ModuleType:
    spec = importlib.util.spec_from_file_location("time_commands", ROOT / "scripts" / "time_commands.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_missing_test_file_is_refused_before_anything_runs(times: ModuleType, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "times.json"
    assert times.main(["--tests", "tests/no_such_file.py", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'tests/no_such_file.py'" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_pypi_mode_reads_no_pip_configuration(times: ModuleType) -> None:
    """With ``--pypi`` pip sees no configuration file and no ``PIP_*`` variable (pip itself says so)."""
    env = times.environment(pypi=True)
    assert [k for k in env if k.startswith("PIP_")] == ["PIP_CONFIG_FILE"]
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], env=env, capture_output=True,
                            text=True, check=True)
    assert [line for line in listed.stdout.splitlines() if not line.startswith(":env:.config-file=")] == []
    assert times.environment(pypi=False) == dict(os.environ)


def test_the_results_file_is_complete_and_plausible() -> None:
    commands = json.loads((ROOT / "results" / "readme" / "command_times.json").read_text())["commands"]
    assert set(commands) <= {"main", "test"} and "main" in commands
    for record in commands.values():
        assert re.fullmatch(r"[0-9a-f]{40}", record["commit"])
        assert isinstance(record["machine"]["cpus"], int) and record["machine"]["cpus"] >= 1
        assert record["torch"].startswith("2.")
        assert 0 < record["warm_s"] < record["cold_s"]
    main = commands["main"]
    assert main["argv"] == "bash scripts/main.sh" and main["dataset"] in {"digits", "fashion-mnist"}
    assert main["warm_s"] < main["cold_s"] / 4  # the README's promise: a second run takes seconds
    if "test" not in commands:
        return
    test = commands["test"]
    assert test["argv"] == " ".join(["bash scripts/test.sh", *([] if test["tests"] == "all" else test["tests"])])
    assert test["tests"] == "all" or all((ROOT / t).is_file() for t in test["tests"])
