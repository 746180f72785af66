"""``ertheory`` console script: one sub-command per module in ``ertheory.commands``.

Every command accepts ``--json`` (one JSON object on stdout).  Bad input (arguments, files, sizes,
memory estimates) prints one line on stderr and exits with status 2; ``--version`` prints the
version and ``--debug`` shows the traceback of an internal error (see :mod:`ertheory.cli_util`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ertheory.cli_util import OneLineParser, build_parser, run_cli

#: Sub-command modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "ertheory.commands.bounds",
    "ertheory.commands.figure2",
    "ertheory.commands.exact",
    "ertheory.commands.simulate",
    "ertheory.commands.lower_bound",
    "ertheory.commands.subset_sum",
    "ertheory.commands.slt",
)


def make_parser() -> OneLineParser:
    return build_parser(
        "ertheory", "Width bounds and exact probabilities for random (ER) sparse networks.", COMMANDS
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(make_parser, argv)


if __name__ == "__main__":
    sys.exit(main())
