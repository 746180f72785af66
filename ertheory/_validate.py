"""Input validation shared by every ``ertheory`` module.

Each helper converts its argument to a float numpy array and raises ``ValueError`` naming the
offending value when it is out of range.  Nothing is clipped silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray


def _first_bad(arr: NDArray[Any], ok: NDArray[np.bool_]) -> Any:
    bad = arr[~ok]
    return bad.flat[0].item() if bad.size else None


def as_float_array(value: ArrayLike, name: str) -> NDArray[np.float64]:
    """``value`` as a float64 array; raise ``ValueError`` if it is empty, non-numeric or not finite."""
    try:
        arr = np.asarray(value, dtype=np.float64)
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
    """Strictly positive integers (layer widths, parameter counts)."""
    arr = as_float_array(value, name)
    ok = (arr > 0) & (arr == np.round(arr))
    if not ok.all():
        raise ValueError(f"{name} must be positive integers, got {_first_bad(arr, ok)!r}")
    return arr.astype(np.int64)


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
