"""``ertrain report`` accounts for every folder it reads: finished, unfinished, failed, torn, foreign, missing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ertrain.cli import main
from ertrain.run_accounting import RunAccount, account_run, summary_line
from ertrain.sweep import build_configs, load_sweep

SWEEP = """
name = "accounting"

[base]
model = "mlp"
dataset = "digits"
density_scheme = "erk"
density = 0.5

[grid]
seed = [0, 1, 2, 3]
"""


def _runs(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A runs directory with one finished, one torn, one unfinished and one failed run of a 4-seed sweep."""
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(SWEEP)
    runs = tmp_path / "runs"
    names = {}
    for config, kind in zip(build_configs(load_sweep(sweep)), ("finished", "torn", "unfinished", "failed"),
                            strict=True):
        run_dir = runs / config.run_hash()
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(config.to_json())
        (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 1}) + "\n")
        result = json.dumps({"run_hash": config.run_hash(), "test_accuracy": 0.8125, "density": 0.5})
        if kind == "finished":
            (run_dir / "result.json").write_text(result)
        elif kind == "torn":
            (run_dir / "result.json").write_text(result[: len(result) // 2])
        elif kind == "failed":
            (run_dir / "error.json").write_text(json.dumps({"type": "ValueError", "message": "loss is nan"}))
        names[kind] = config.run_hash()
    return runs, sweep, names


def test_each_state_by_hand(tmp_path: Path) -> None:
    runs, _, names = _runs(tmp_path)
    (runs / "notes").mkdir()
    (runs / "notes" / "todo.txt").write_text("x")
    got = {name: account_run(runs / name) for name in [*names.values(), "notes", "nothing-here"]}
    assert got[names["finished"]] == RunAccount(names["finished"], "finished")
    assert got[names["torn"]].state == "torn" and "result.json" in got[names["torn"]].detail
    assert got[names["unfinished"]].state == "unfinished"
    assert got[names["failed"]] == RunAccount(names["failed"], "failed", "ValueError: loss is nan")
    assert got["notes"].state == "foreign"
    started = runs / "started"  # locked and data.json written, stopped before config.json
    started.mkdir()
    (started / ".lock").write_text("pid 1 on a machine that rebooted")
    (started / "data.json").write_text("{}")
    assert account_run(started).state == "unfinished"
    assert got["nothing-here"].state == "missing"
    # a torn result set aside by a resumed run stays torn until the run finishes again
    torn = runs / names["torn"]
    (torn / "result.json").rename(torn / "result.json.torn")
    assert account_run(torn).state == "torn"
    with pytest.raises(ValueError, match="unknown run state 'done'"):
        RunAccount("x", "done")


def test_summary_line_names_every_run_left_out() -> None:
    accounts = [RunAccount("a", "finished"), RunAccount("b", "torn", "result.json unreadable"),
                RunAccount("c", "unfinished"), RunAccount("d", "failed", "E: x")]
    assert summary_line(accounts) == (
        "1 of 4 runs finished and in the table; not in the table: 1 unfinished: c; 1 failed: d (E: x); "
        "1 torn: b (result.json unreadable)"
    )
    assert summary_line(accounts[:1]) == "1 of 1 runs finished and in the table"


def test_report_names_the_three_runs_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, sweep, names = _runs(tmp_path)
    html = tmp_path / "report.html"
    assert main(["report", str(runs), "--html", str(html)]) == 0
    out, err = capsys.readouterr()
    assert "| **81.25 (n=1)** |" in out  # the only cell, so the best of its column
    (line,) = [x for x in err.splitlines() if x.startswith("runs:")]
    for kind in ("torn", "unfinished", "failed"):
        assert f"1 {kind}: {names[kind]}" in line, line
        assert names[kind] in out.split("Runs:")[1]  # and in the rendered Markdown
        assert names[kind] in html.read_text()
    assert names["finished"] not in line and line.startswith("runs: 1 of 4 runs finished")
    saved = pd.read_csv(runs / "results.csv")
    assert dict(zip(saved.run_hash, saved.state, strict=True)) == {v: k for k, v in names.items()}

    assert main(["report", str(runs), "--sweep", str(sweep), "--no-save"]) == 0
    out, err = capsys.readouterr()
    assert "| **81.25 (n=1 of 4)** |" in out


def test_report_counts_a_missing_run_of_the_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, sweep, names = _runs(tmp_path)
    for name in (names["torn"], names["unfinished"], names["failed"]):
        for f in (runs / name).iterdir():
            f.unlink()
        (runs / name).rmdir()
    (runs / "other").mkdir()  # not a run of this sweep: not read with --sweep
    assert main(["report", str(runs), "--sweep", str(sweep), "--no-save", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "81.25 (n=1 of 4)" in out
    assert "3 missing:" in err and "other" not in err
    assert main(["report", str(runs), "--no-save"]) == 0
    assert "1 foreign: other" in capsys.readouterr().err


def test_strict_refuses_any_run_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, sweep, names = _runs(tmp_path)
    assert main(["report", str(runs), "--strict"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--strict" in err and names["torn"] in err
    assert not (runs / "results.csv").exists()  # nothing written
    assert main(["report", str(runs), "--sweep", str(sweep), "--strict", "--json"]) == 2
    capsys.readouterr()
    for name in (names["torn"], names["unfinished"], names["failed"]):
        for f in (runs / name).iterdir():
            f.unlink()
        (runs / name).rmdir()
    assert main(["report", str(runs), "--strict", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accounts"] == [{"run": names["finished"], "state": "finished", "detail": ""}]


def test_no_finished_run_names_the_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs, _, names = _runs(tmp_path)
    (runs / names["finished"] / "result.json").unlink()
    assert main(["report", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no finished runs" in err and "2 unfinished" in err and names["torn"] in err
