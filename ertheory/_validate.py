"""Input validation shared by every ``ertheory`` module.

Each helper converts its argument to a float numpy array and raises ``ValueError`` naming the
offending value when it is out of range.  Nothing is clipped silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Largest integer accepted as a width or count: every integer up to ``2**53`` is exact in float64.
MAX_EXACT_INT = 2**53

#: Default ceiling (bytes) of the estimated memory of one request; ``--max-memory`` raises it.
DEFAULT_MAX_MEMORY = 4 * 2**30


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)``, shortened in the middle beyond ``limit`` characters (error messages stay one line)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2:]} ({len(text)} characters)"


def _first_bad(arr: NDArray[Any], ok: NDArray[np.bool_]) -> Any:
    bad = arr[~ok]
    return bad.flat[0].item() if bad.size else None


def as_float_array(value: ArrayLike, name: str) -> NDArray[np.float64]:
    """``value`` as a float64 array; raise ``ValueError`` if it is empty, non-numeric or not finite."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except OverflowError as exc:
        raise ValueError(f"{name} must be finite numbers within float range, got {shown(value)}") from exc
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric, got {value!r}") from exc
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got {value!r}")
    finite = np.isfinite(arr)
    if not finite.all():
        raise ValueError(f"{name} must be finite, got {_first_bad(arr, finite)!r}")
    return arr


def check_density(value: ArrayLike, name: str = "density") -> NDArray[np.float64]:
    """Densities (fraction of weights kept) must lie in (0, 1]."""
    arr = as_float_array(value, name)
    ok = (arr > 0.0) & (arr <= 1.0)
    if not ok.all():
        raise ValueError(f"{name} must be in (0, 1], got {_first_bad(arr, ok)!r}")
    return arr


def check_sparsity(value: ArrayLike, name: str = "sparsity") -> NDArray[np.float64]:
    """Sparsities (fraction of weights removed) must lie in [0, 1)."""
    arr = as_float_array(value, name)
    ok = (arr >= 0.0) & (arr < 1.0)
    if not ok.all():
        raise ValueError(f"{name} must be in [0, 1), got {_first_bad(arr, ok)!r}")
    return arr


def check_open_unit(value: ArrayLike, name: str) -> NDArray[np.float64]:
    """Probabilities such as ``delta`` or ``epsilon`` must lie in the open interval (0, 1)."""
    arr = as_float_array(value, name)
    ok = (arr > 0.0) & (arr < 1.0)
    if not ok.all():
        raise ValueError(f"{name} must be in (0, 1), got {_first_bad(arr, ok)!r}")
    return arr


def check_positive(value: ArrayLike, name: str) -> NDArray[np.float64]:
    """Strictly positive reals (constants, widths as floats)."""
    arr = as_float_array(value, name)
    ok = arr > 0.0
    if not ok.all():
        raise ValueError(f"{name} must be positive, got {_first_bad(arr, ok)!r}")
    return arr


def check_positive_int(value: ArrayLike, name: str) -> NDArray[np.int64]:
    """Strictly positive integers (layer widths, parameter counts) up to ``MAX_EXACT_INT = 2**53``.

    Larger values are refused: float64 no longer holds every integer beyond ``2**53``, and the widths
    built from them would overflow int64.
    """
    arr = as_float_array(value, name)
    ok = (arr > 0) & (arr == np.round(arr))
    if not ok.all():
        raise ValueError(f"{name} must be positive integers, got {_first_bad(arr, ok)!r}")
    small = arr <= MAX_EXACT_INT
    if not small.all():
        bad = _exact(value, arr, small)
        raise ValueError(f"{name} must be integers at most 2**53 = {MAX_EXACT_INT}, got {bad}")
    return arr.astype(np.int64)


def _exact(value: ArrayLike, arr: NDArray[Any], ok: NDArray[np.bool_]) -> Any:
    """The first bad entry as the caller gave it (a Python int stays exact), else as a float."""
    flat = np.asarray(value, dtype=object).ravel()
    index = int(np.flatnonzero(~ok.ravel())[0])
    return flat[index] if flat.size == ok.size else _first_bad(arr, ok)


def check_seed(value: Any, name: str = "seed") -> int:
    """A random seed: a non-negative integer (``numpy.random.default_rng`` refuses negative ones)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units, e.g. ``9.3 GiB``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    k = 0
    x = float(n)
    while x >= 1024.0 and k < len(units) - 1:
        x /= 1024.0
        k += 1
    return f"{x:.0f} {units[k]}" if k == 0 else f"{x:.1f} {units[k]}"


class MemoryLimitError(ValueError):
    """A request whose estimated memory exceeds the limit; raised before anything is allocated."""


def check_memory(estimate: float, what: str, limit: float | None = None) -> float:
    """Refuse ``what`` when its estimated memory ``estimate`` (bytes) exceeds ``limit``.

    ``limit`` defaults to :data:`DEFAULT_MAX_MEMORY` (4 GiB); the command-line flag ``--max-memory``
    raises it.  Returns the estimate.
    """
    cap = DEFAULT_MAX_MEMORY if limit is None else float(limit)
    if not estimate <= cap:  # also refuses a NaN estimate
        raise MemoryLimitError(
            f"{what} would need about {format_bytes(estimate)} of memory, above the limit of {format_bytes(cap)}; "
            f"ask for less or raise the limit (--max-memory)"
        )
    return float(estimate)


def check_density_or_sparsity(
    density: float | None, sparsity: float | None, name: str = "density"
) -> float:
    """Exactly one of ``density`` / ``sparsity`` given; return the density ``p = 1 - sparsity``."""
    if (density is None) == (sparsity is None):
        raise ValueError(f"give exactly one of density or sparsity, got density={density!r}, sparsity={sparsity!r}")
    if density is not None:
        return float(check_density(density, name))
    assert sparsity is not None
    return 1.0 - float(check_sparsity(sparsity))
