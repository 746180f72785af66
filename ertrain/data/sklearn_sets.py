"""Small datasets bundled with scikit-learn (no download): ``digits`` and ``tabular``."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ertrain.data._common import make_bundle, standardise
from ertrain.data._options import LoaderOptions
from ertrain.data.bundle import DataBundle
from ertrain.data.registry import register_dataset


@dataclass(frozen=True)
class _SplitOptions(LoaderOptions):
    test_fraction: float = 0.2

    def check(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            self.fail("test_fraction", "in (0, 1)")


@dataclass(frozen=True)
class DigitsOptions(_SplitOptions):
    """``test_fraction``: share of the 1797 images in the test split (0.2)."""

    dataset = "digits"
    test_fraction: float = 0.2


@dataclass(frozen=True)
class TabularOptions(_SplitOptions):
    """``test_fraction``: share of the 569 rows in the test split (0.25)."""

    dataset = "tabular"
    test_fraction: float = 0.25


def _sklearn_version() -> str:
    """The data ships with scikit-learn: its version is the data's identity."""
    return "scikit-learn " + metadata.version("scikit-learn")


def _split(n: int, test_fraction: float, seed: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


@register_dataset("digits", options=DigitsOptions, inputs="image", shape=(1, 8, 8), version=_sklearn_version)
def load_digits(data_dir: str | None, opts: DigitsOptions, seed: int) -> DataBundle:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), as ``(1, 8, 8)`` images.

    The split is a seeded permutation (``seed`` is the data seed, 0 by default); ``data_dir`` is unused.
    """
    from sklearn.datasets import load_digits as sk_digits

    raw: Any = sk_digits()
    x = np.asarray(raw.images, dtype=np.float32)[:, None]
    y = np.asarray(raw.target, dtype=np.int64)
    tr, te = _split(len(y), opts.test_fraction, seed)
    x_train, x_test = standardise(x[tr], x[te], axis=(0, 2, 3))
    return make_bundle(x_train, y[tr], x_test, y[te], num_classes=10, name="digits")


@register_dataset("tabular", options=TabularOptions, inputs="flat", shape=(30,), version=_sklearn_version)
def load_tabular(data_dir: str | None, opts: TabularOptions, seed: int) -> DataBundle:
    """A binary tabular classification set bundled with scikit-learn (Wisconsin breast cancer, 569 x 30).

    Stands in for the paper's folktables task (appendix A.16, Table 32), which needs a download.
    Features are standardised with the training mean/std.
    """
    from sklearn.datasets import load_breast_cancer

    raw: Any = load_breast_cancer()
    x = np.asarray(raw.data, dtype=np.float64)
    y = np.asarray(raw.target, dtype=np.int64)
    tr, te = _split(len(y), opts.test_fraction, seed)
    x_train, x_test = standardise(x[tr], x[te], axis=(0,))
    return make_bundle(x_train, y[tr], x_test, y[te], num_classes=2, name="tabular")
