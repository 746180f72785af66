"""Command-line plumbing shared by the ``ertheory`` and ``ertrain`` console scripts.

Each sub-command lives in its own module (``<package>.commands.<name>``) that defines
``register(subparsers) -> argparse.ArgumentParser`` and sets ``func`` on the parser defaults.
``run_cli`` turns ``ValueError`` (and argparse usage errors) into one line on stderr and exit
status 2, with no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np


class UsageError(ValueError):
    """Bad command-line usage; reported as one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


def build_parser(prog: str, description: str, command_modules: Sequence[str]) -> OneLineParser:
    parser = OneLineParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for module_name in command_modules:
        importlib.import_module(module_name).register(sub)
    return parser


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays (and nested containers of them) into plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def print_json(obj: Any) -> None:
    """Write ``obj`` as one JSON object on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n")


def run_cli(parser_factory: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; ``ValueError`` becomes one stderr line, exit 2."""
    parser = parser_factory()
    try:
        args = parser.parse_args(argv)
        result = args.func(args)
    except ValueError as exc:
        msg = " ".join(str(exc).split())
        sys.stderr.write(f"{parser.prog}: error: {msg}\n" if not msg.startswith(parser.prog) else msg + "\n")
        return 2
    return int(result or 0)
