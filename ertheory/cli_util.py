"""Command-line plumbing shared by the ``ertheory`` and ``ertrain`` console scripts.

Each sub-command lives in its own module (``<package>.commands.<name>``) that defines
``register(subparsers) -> argparse.ArgumentParser`` and sets ``func`` on the parser defaults.

:func:`run_cli` is the one error path of both scripts:

* errors of the user's input or environment -- ``ValueError`` and its subclasses (bad arguments,
  files, sizes, memory estimates), ``OSError`` (missing paths, permissions, full disks) and
  ``MemoryError`` -- print one line on stderr, ``<prog>: error: <message>``, and exit with status 2;
* any other exception is an internal error: one line naming the file (in the temporary directory)
  that holds the full traceback, exit status 1; with ``--debug`` the traceback is printed instead;
* ``--seed`` must be a non-negative integer in every command (checked once here, after parsing).

Both scripts get ``--version`` and ``--debug``.  Helpers for commands: :func:`examples` (a help
epilog), :func:`add_command`, :func:`seed_type`, :func:`memory_size`, :func:`add_max_memory`, :func:`out_dir`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ertheory._validate import DEFAULT_MAX_MEMORY, check_seed, format_bytes
from ertheory.jsonio import print_json, to_jsonable

#: A number with a leading minus sign (``-3``, ``-1e-3``, ``-.5``, ``-inf``) is a value, not an option.
NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)

#: Exit status of user and environment errors, and of internal errors.
EXIT_USAGE = 2
EXIT_INTERNAL = 1


class UsageError(ValueError):
    """Bad command-line usage; reported as one line, exit status 2."""


class BadValue(argparse.ArgumentTypeError, ValueError):
    """A bad value: argparse shows its message when raised by a ``type``; elsewhere it is a ``ValueError``."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr and exit status 2.

    Values such as ``-1e-3`` are read as negative numbers (argparse alone only knows ``-1`` and ``-1.5``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = NEGATIVE_NUMBER

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}")


def examples(*lines: str) -> str:
    """A help epilog listing example command lines (use with ``argparse.RawDescriptionHelpFormatter``)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def command_parser_kwargs(*lines: str) -> dict[str, Any]:
    """``epilog`` and ``formatter_class`` for ``subparsers.add_parser`` so that the examples keep their lines."""
    return {"epilog": examples(*lines), "formatter_class": argparse.RawDescriptionHelpFormatter}


def add_command(
    subparsers: Any, name: str, *, examples: Sequence[str], help: str, description: str
) -> argparse.ArgumentParser:
    """A sub-command's parser: ``help`` in the command list, ``description`` and the example lines in its help."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help, description=description, **command_parser_kwargs(*examples)
    )
    return parser


def _int_at_least(text: str, low: int, expected: str) -> int:
    """``int(text)`` if it is at least ``low``; else :class:`BadValue` ``"<expected>, got <text>"``."""
    try:
        value = int(text)
    except ValueError as exc:
        raise BadValue(f"{expected}, got {text!r}") from exc
    if value < low:
        raise BadValue(f"{expected}, got {text!r}")
    return value


def seed_type(text: str) -> int:
    """argparse type of ``--seed``: a non-negative integer."""
    return _int_at_least(text, 0, "seed must be a non-negative integer")


def positive_int(text: str) -> int:
    """argparse type of a count that must be at least 1."""
    return _int_at_least(text, 1, "expected a positive integer")


_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def memory_size(text: str) -> float:
    """argparse type of a memory size: bytes, or a number with a unit (``512MiB``, ``8G``, ``1.5TiB``)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise BadValue(
            f"memory size must be a positive number of bytes with an optional unit (e.g. 512MiB, 8G), got {text!r}"
        )
    value = float(match.group(1)) * _UNITS[unit]
    if not 0 < value < float("inf"):
        raise BadValue(f"memory size must be positive and finite, got {text!r}")
    return value


def add_max_memory(parser: argparse.ArgumentParser) -> None:
    """Add ``--max-memory`` (default :data:`ertheory._validate.DEFAULT_MAX_MEMORY`) to a command."""
    parser.add_argument(
        "--max-memory", type=memory_size, default=float(DEFAULT_MAX_MEMORY), metavar="SIZE",
        help=f"refuse requests whose estimated memory exceeds SIZE (default {format_bytes(DEFAULT_MAX_MEMORY)})",
    )


def out_dir(text: str) -> Path:
    """Validate an output directory without creating anything (usable as an argparse ``type``).

    Refused: an empty path (it would mean the current directory), an existing non-directory, a
    directory that cannot be written, or a missing directory whose nearest existing parent cannot be
    written (or is not a directory).  Returns the path; the caller creates it when the work starts.
    """
    if not text or not text.strip():
        raise BadValue("--out must name a directory, got an empty path")
    path = Path(text).expanduser()
    probe = path
    while not probe.exists():
        if probe.is_symlink():
            raise BadValue(f"--out {text!r}: {str(probe)!r} is a dangling symbolic link")
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        if probe == path:
            raise BadValue(f"--out {text!r} exists and is not a directory")
        raise BadValue(f"--out {text!r} lies under {str(probe)!r}, which is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "" if probe == path else f" (its nearest existing parent {str(probe)!r} is not writable)"
        raise BadValue(f"--out {text!r} is not a writable directory{where}")
    return path


def _version_of(prog: str) -> str:
    module = importlib.import_module(prog)
    return str(getattr(module, "__version__", "unknown"))


def build_parser(
    prog: str, description: str, command_modules: Sequence[str], *, version: str | None = None
) -> OneLineParser:
    """The top-level parser: ``--version`` (default: ``<prog>.__version__``), ``--debug`` and the sub-commands."""
    parser = OneLineParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {version or _version_of(prog)}")
    debug_help = "print the traceback of internal errors instead of saving it to a file"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for module_name in command_modules:
        importlib.import_module(module_name).register(sub)
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    return parser


def describe_error(exc: BaseException) -> str:
    """The one-line message of a user or environment error."""
    if isinstance(exc, OSError) and exc.strerror:
        names = [repr(str(f)) for f in (exc.filename, exc.filename2) if f is not None]
        msg = exc.strerror + (": " + " -> ".join(names) if names else "")
    elif isinstance(exc, MemoryError):
        detail = " ".join(str(exc).split()) or "an allocation failed"
        msg = f"not enough memory ({detail}); ask for less (smaller sizes, fewer trials or points)"
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(msg.split())


def write_crash_report(prog: str, argv: Sequence[str], exc: BaseException) -> str:
    """Write the traceback of ``exc`` to a new file in the temporary directory; return its path."""
    fd, path = tempfile.mkstemp(prefix=f"{prog}-crash-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"{prog} {_safe_version(prog)}; python {sys.version.split()[0]}\n")
        fh.write("command line: " + " ".join([prog, *argv]) + "\n\n")
        fh.write("".join(traceback.format_exception(exc)))
    return path


def _safe_version(prog: str) -> str:
    try:
        return _version_of(prog)
    except Exception:  # noqa: BLE001 - the report must not fail on its header
        return "unknown"


def _check_shared_flags(args: argparse.Namespace) -> None:
    seed = getattr(args, "seed", None)
    for value in seed if isinstance(seed, list) else [seed]:
        if value is not None:
            check_seed(value, "--seed")


def run_cli(parser_factory: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command through the error path of the module docstring."""
    arg_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arg_list[: arg_list.index("--")] if "--" in arg_list else "--debug" in arg_list
    parser = parser_factory()
    prog = parser.prog
    try:
        args = parser.parse_args(arg_list)
        _check_shared_flags(args)
        result = args.func(args)
        sys.stdout.flush()
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else _fail(prog, str(exc.code))
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return 130
    except BrokenPipeError:  # stdout closed by the reader (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INTERNAL
    except (ValueError, OSError, MemoryError) as exc:
        msg = describe_error(exc)
        return _fail(prog, msg)
    except Exception as exc:  # noqa: BLE001 - every other exception is a bug: report it, keep the traceback
        if debug:
            traceback.print_exc()
            return EXIT_INTERNAL
        summary = describe_error(exc)
        try:
            where = f"full traceback in {write_crash_report(prog, arg_list, exc)} (or rerun with --debug)"
        except OSError as io_exc:
            where = f"could not save the traceback ({describe_error(io_exc)}); rerun with --debug"
        sys.stderr.write(f"{prog}: internal error: {type(exc).__name__}: {summary}; {where}\n")
        return EXIT_INTERNAL
    return int(result or 0)


def _fail(prog: str, line: str) -> int:
    sys.stderr.write((line if line.startswith(prog) else f"{prog}: error: {line}") + "\n")
    return EXIT_USAGE


__all__ = [
    "EXIT_INTERNAL",
    "EXIT_USAGE",
    "NEGATIVE_NUMBER",
    "OneLineParser",
    "UsageError",
    "BadValue",
    "add_command",
    "add_max_memory",
    "build_parser",
    "command_parser_kwargs",
    "describe_error",
    "examples",
    "memory_size",
    "out_dir",
    "positive_int",
    "print_json",
    "run_cli",
    "seed_type",
    "to_jsonable",
    "write_crash_report",
]
