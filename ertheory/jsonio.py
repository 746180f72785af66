"""JSON output shared by both packages (numpy only).

:func:`to_jsonable` turns numpy scalars and arrays (inside any nesting of dicts, lists and tuples) into
plain JSON types; :func:`dumps` formats them (NaN refused); :func:`print_json` writes one JSON object on
stdout.  Atomic file writes live in :mod:`ertheory.fileio`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np


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


def dumps(obj: Any) -> str:
    """``obj`` as indented JSON text; NaN and infinities are refused (they are not JSON)."""
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False)


def print_json(obj: Any) -> None:
    """Write ``obj`` as one JSON object on stdout."""
    sys.stdout.write(dumps(obj) + "\n")


__all__ = ["dumps", "print_json", "to_jsonable"]
