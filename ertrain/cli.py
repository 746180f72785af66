"""``ertrain`` console script: one sub-command per module in ``ertrain.commands``.

Every command accepts ``--json`` (one JSON object on stdout).  Bad arguments print one line on
stderr and exit with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ertheory.cli_util import OneLineParser, build_parser, run_cli

#: Sub-command modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "ertrain.commands.densities",
    "ertrain.commands.train",
    "ertrain.commands.sweep",
    "ertrain.commands.report",
    "ertrain.commands.export",
)


def make_parser(commands: Sequence[str] = COMMANDS) -> OneLineParser:
    return build_parser(
        "ertrain", "Train random (ER) sparse networks: densities, masks, methods, sweeps, reports.", commands
    )


def commands_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The command modules to register for ``argv``: the named command's alone, or all when none is named.

    Registering a command imports what its flags list (models, methods, datasets, recipes...); a command
    needs only its own parser, while ``--help`` and a misspelt command show the full list.
    """
    by_name = {module.rsplit(".", 1)[-1]: module for module in COMMANDS}
    named = next((a for a in argv if not a.startswith("-")), None)
    return (by_name[named],) if named in by_name else COMMANDS


def main(argv: Sequence[str] | None = None) -> int:
    arg_list = list(sys.argv[1:] if argv is None else argv)
    return run_cli(lambda: make_parser(commands_for(arg_list)), arg_list)


if __name__ == "__main__":
    sys.exit(main())
