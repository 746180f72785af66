"""Every ``--help`` of both console scripts renders clean text: no ``%%`` and no ``%(name)s`` left over.

argparse %-formats the help of each argument (so ``%%`` there prints ``%``) but prints a parser's description
and epilog as written (so ``%%`` there prints ``%%``).  The walk below finds every command and sub-command from
the parsers themselves, so a command added later is covered without editing this file.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator, Sequence

import pytest

from ertheory import cli as ertheory_cli
from ertrain import cli as ertrain_cli

#: ``%%`` or a ``%(name)`` format code that argparse did not expand.
LEFTOVER = re.compile(r"%%|%\(\w*\)")

CLIS: dict[str, tuple[Callable[[], argparse.ArgumentParser], Callable[[Sequence[str]], int]]] = {
    "ertheory": (ertheory_cli.make_parser, ertheory_cli.main),
    "ertrain": (ertrain_cli.make_parser, ertrain_cli.main),
}


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """``prefix`` and the argv prefix of every sub-command below ``parser``, depth first."""
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from command_paths(sub, (*prefix, name))


def leftovers(text: str) -> list[str]:
    return [text[max(m.start() - 30, 0): m.end() + 10] for m in LEFTOVER.finditer(text)]


def all_paths() -> list[tuple[str, tuple[str, ...]]]:
    return [(cli, path) for cli, (make, _) in CLIS.items() for path in command_paths(make())]


def test_the_walk_finds_every_command() -> None:
    """The walk sees the commands each script declares (one module per command)."""
    found = {cli: {path[0] for path in command_paths(make()) if path} for cli, (make, _) in CLIS.items()}
    declared = {
        "ertheory": {m.rsplit(".", 1)[-1].replace("_", "-") for m in ertheory_cli.COMMANDS},
        "ertrain": {m.rsplit(".", 1)[-1] for m in ertrain_cli.COMMANDS},
    }
    assert found == declared


def test_the_check_catches_leftovers() -> None:
    """A description with ``%%`` and one with an unexpanded format code are both flagged; an argument's help
    with ``%%`` renders as ``%`` and is not."""
    parser = argparse.ArgumentParser(prog="demo", description="mean ± 95%% CI, up to %(limit)s runs")
    parser.add_argument("--x", help="a 5%% margin (default: %(default)s)", default=3)
    text = parser.format_help()
    assert "a 5% margin (default: 3)" in text
    assert len(leftovers(text)) == 2


@pytest.mark.parametrize(("cli", "path"), all_paths(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else v)
def test_help_has_no_format_leftovers(cli: str, path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    """``<cli> [command ...] --help`` exits 0, prints the help on stdout, and it holds no ``%%`` or ``%(``."""
    _, main = CLIS[cli]
    status = main([*path, "--help"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert err == ""
    assert out.startswith(f"usage: {' '.join((cli, *path))}")
    assert not leftovers(out), f"{cli} {' '.join(path)} --help: {leftovers(out)}"
