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
    "ertrain.commands.study",
)


def make_parser() -> OneLineParser:
    return build_parser(
        "ertrain", "Train random (ER) sparse networks: densities, masks, methods, sweeps, reports.", COMMANDS
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(make_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
