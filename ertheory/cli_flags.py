"""Command-line flags and argument types that several commands share, built in one place.

Every command that takes an overall density accepts ``--density`` or ``--sparsity`` (never both);
:func:`add_density_flags` adds the pair and :func:`density_from_args` reads it back as densities.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from ertheory._validate import check_density_or_sparsity


def add_density_flags(
    parser: argparse.ArgumentParser | Any,
    *,
    required: bool = True,
    per_layer: bool = False,
    what: str = "overall density",
    default: str = "",
) -> Any:
    """Add the mutually exclusive ``--density`` / ``--sparsity`` pair (``per_layer``: one value per layer or one)."""
    group = parser.add_mutually_exclusive_group(required=required)
    nargs: dict[str, Any] = {"nargs": "+"} if per_layer else {}
    tail = " per layer (or one for all)" if per_layer else ""
    suffix = f" (default: {default})" if default else ""
    group.add_argument("--density", type=float, metavar="P", help=f"{what}{tail}: fraction of weights kept{suffix}",
                       **nargs)
    group.add_argument("--sparsity", type=float, metavar="S", help=f"1 - density{tail}; give --density or --sparsity",
                       **nargs)
    return group


def json_object(flag: str) -> Callable[[str], dict[str, Any]]:
    """An argparse type: a JSON object (the error names the flag and the bad text)."""

    def parse(text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{flag} must be a JSON object, got {text!r}") from exc
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"{flag} must be a JSON object, got {text!r}")
        return value

    return parse


def density_from_args(args: argparse.Namespace) -> Any:
    """The densities given by ``--density`` or ``--sparsity`` (validated), or None when neither was given."""
    density, sparsity = getattr(args, "density", None), getattr(args, "sparsity", None)
    if density is None and sparsity is None:
        return None
    if isinstance(density, list):
        return [check_density_or_sparsity(v, None) for v in density]
    if isinstance(sparsity, list):
        return [check_density_or_sparsity(None, v) for v in sparsity]
    return check_density_or_sparsity(density, sparsity)


__all__ = ["add_density_flags", "density_from_args", "json_object"]
