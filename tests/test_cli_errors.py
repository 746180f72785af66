"""The error path shared by both console scripts (``ertheory.cli_util``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

import ertheory
from ertheory.cli import main
from ertheory.cli_util import OneLineParser, memory_size, out_dir, run_cli


def fake_cli(action: Any) -> Any:
    """A parser factory with one command ``go`` (taking ``--seed``) whose body is ``action()``."""

    def factory() -> argparse.ArgumentParser:
        parser = OneLineParser(prog="fake")
        sub = parser.add_subparsers(dest="command", parser_class=OneLineParser)
        go = sub.add_parser("go")
        go.add_argument("--seed", type=int, default=0)
        go.add_argument("--x", type=float, default=0.0)
        go.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
        go.set_defaults(func=lambda args: action())
        return parser

    return factory


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("exc", "needle"),
    [
        (ValueError("width must be positive, got -3"), "fake: error: width must be positive, got -3"),
        (PermissionError(13, "Permission denied", "/root/out"), "fake: error: Permission denied: '/root/out'"),
        (IsADirectoryError(21, "Is a directory", "/tmp"), "fake: error: Is a directory: '/tmp'"),
        (MemoryError("Unable to allocate 9.31 GiB for an array"), "not enough memory (Unable to allocate 9.31 GiB"),
        (ValueError("two\nlines"), "fake: error: two lines"),
    ],
)
def test_user_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], exc: BaseException, needle: str) -> None:
    def action() -> None:
        raise exc

    assert run_cli(fake_cli(action), ["go"]) == 2
    assert needle in one_line(capsys)


def test_internal_errors_save_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    def action() -> None:
        raise TypeError("forward() missing 1 required positional argument: 'adj'")

    assert run_cli(fake_cli(action), ["go", "--x", "1"]) == 1
    line = one_line(capsys)
    assert line.startswith("fake: internal error: TypeError: forward() missing 1 required positional argument")
    path = Path(line.split("full traceback in ")[1].split(" (or rerun")[0])
    try:
        report = path.read_text()
        assert "Traceback (most recent call last)" in report and "command line: fake go --x 1" in report
        assert "raise TypeError" in report
    finally:
        path.unlink()


def test_debug_prints_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    def action() -> None:
        raise KeyError("boom")

    assert run_cli(fake_cli(action), ["go", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "KeyError: 'boom'" in err


def test_negative_seed_is_refused_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(fake_cli(lambda: None), ["go", "--seed", "-4"]) == 2
    assert one_line(capsys) == "fake: error: --seed must be a non-negative integer, got -4"
    assert run_cli(fake_cli(lambda: None), ["go", "--seed", "4"]) == 0


def test_negative_numbers_in_exponent_form_are_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(fake_cli(lambda: None), ["go", "--x", "-1e-3"]) == 0
    assert run_cli(fake_cli(lambda: None), ["go", "--x", "-.5E+2"]) == 0
    assert run_cli(fake_cli(lambda: None), ["go", "--x", "-inf"]) == 0
    assert main(["bounds", "--target", "3", "2", "1", "--density", "-1e-3"]) == 2
    assert one_line(capsys) == "ertheory: error: density must be in (0, 1], got -0.001"


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ertheory {ertheory.__version__}"
    assert main(["bounds", "--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:\n  ertheory bounds --target 784 128 10" in text and "--debug" in text
    assert main(["slt", "--help"]) == 0
    assert "examples:\n  ertheory slt" in capsys.readouterr().out


def test_usage_errors_name_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bounds", "--target", "3", "x"]) == 2
    assert one_line(capsys) == "ertheory bounds: error: argument --target: invalid int value: 'x'"
    assert main(["nosuch"]) == 2
    assert "invalid choice: 'nosuch'" in one_line(capsys)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1024", 1024.0), ("512MiB", 512 * 2**20), ("8G", 8e9), ("1.5TiB", 1.5 * 2**40), ("2 kb", 2000.0)],
)
def test_memory_size(text: str, expected: float) -> None:
    assert memory_size(text) == expected


@pytest.mark.parametrize("text", ["", "-1G", "0", "5 parsecs", "GiB", "inf"])
def test_memory_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="memory size must be"):
        memory_size(text)


def test_out_dir_refuses_without_creating_anything(tmp_path: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match="--out must name a directory, got an empty path"):
        out_dir("")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match="exists and is not a directory"):
        out_dir(str(a_file))
    with pytest.raises(ValueError, match="lies under .*file.txt', which is not a directory"):
        out_dir(str(a_file / "sub" / "deeper"))
    assert out_dir(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_out_dir_refuses_unwritable_directories(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="is not a writable directory"):
            out_dir(str(locked))
        with pytest.raises(ValueError, match="nearest existing parent .*locked' is not writable"):
            out_dir(str(locked / "sub"))
    finally:
        locked.chmod(0o700)
