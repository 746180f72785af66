"""Flags that several ``ertrain`` commands share; their help lists the registries' names.

Names are not argparse ``choices``: the registry checks them, and its message names the bad value
and every valid one.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_scheme_flag(parser: argparse.ArgumentParser | Any, *, default: str | None) -> None:
    """``--density-scheme`` with the registered schemes as choices."""
    from ertrain.density import DENSITY_SCHEMES

    names = DENSITY_SCHEMES.names()
    parser.add_argument("--density-scheme", default=default, metavar="SCHEME",
                        help=f"layerwise density scheme: {', '.join(names)}" + (f" (default: {default})" if default
                                                                                 else ""))


def add_protocol_flag(parser: argparse.ArgumentParser | Any, *, default: str | None = "exact") -> None:
    """``--protocol`` with the registered protocols as choices."""
    from ertrain.protocol import PROTOCOLS

    names = PROTOCOLS.names()
    parser.add_argument("--protocol", default=default, metavar="PROTOCOL",
                        help=f"how the paper's settings are read: {', '.join(names)} (default: exact = the corrected "
                             "reading; paper-code = what the paper's code ran)")


__all__ = ["add_protocol_flag", "add_scheme_flag"]
