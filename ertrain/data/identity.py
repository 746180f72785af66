"""What a run's identity needs from the data: a fingerprint of the inputs, and model-dataset compatibility.

:func:`data_fingerprint` hashes the dataset's name, its canonical options (defaults dropped) and its
files -- names relative to the dataset folder, sizes and digests (:mod:`ertrain.data._files`) -- so that
changed files or options give another fingerprint, while the same files in another folder give the same
one.  Bundled and synthetic sets have no files: their options (and, for bundled sets, the version of the
package that ships them) are the whole identity.

Fingerprints are versioned (:data:`FINGERPRINT_VERSION`): version 2 digests every byte of every file (a
change anywhere is seen; digests are cached by file stamp, see docs/data_identity.md); version 1, which
runs trained before recorded, digested sampled blocks of at most 64 files.  A run's stored identity is
checked with the version it was recorded with.

:func:`check_compatible` compares the input kind a dataset declares (``image``, ``flat``, ``graph``,
``sequence``) with the kinds a model declares in the model registry (``MODELS.entry(name).info["inputs"]``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ertrain.data.registry import DATASETS, dataset, dataset_options

#: The version of :func:`data_fingerprint` new runs record (1: sampled digests; 2: every byte).
FINGERPRINT_VERSION = 2
#: The digest kind (:data:`ertrain.data._files.DIGESTS`) of each fingerprint version.
_DIGEST_OF_VERSION = {1: "sampled", 2: "full"}


def data_fingerprint(
    name: str, data_dir: str | None = None, options: Mapping[str, Any] | None = None, *,
    version: int = FINGERPRINT_VERSION,
) -> str:
    """A 16-hex-digit fingerprint of dataset ``name`` read from ``data_dir`` with ``options`` (see module doc).

    Missing files raise the loader's ``ValueError`` (it says where it looked).  Version 2 reads every byte
    the first time (then a ``stat`` per file while the files stay untouched); version 1 at most about
    160 KiB per file.
    """
    from ertrain.data._files import describe_files

    if version not in _DIGEST_OF_VERSION:
        raise ValueError(f"unknown fingerprint version {version!r}; valid: {', '.join(map(str, _DIGEST_OF_VERSION))}")
    spec = dataset(name)
    opts = dataset_options(name, options)
    canonical = DATASETS.entry(name).canonical_options(options)
    h = hashlib.sha256(json.dumps({"dataset": name, "options": canonical}, sort_keys=True).encode())
    if version != 1:  # version 1 fingerprints stay what they were
        h.update(f"\nfingerprint:{version}".encode())
    if spec.version is not None:
        h.update(f"\nversion:{spec.version()}".encode())
    if spec.files is not None:
        root, paths = spec.files(data_dir, opts)
        for line in describe_files(root, paths, digest=_DIGEST_OF_VERSION[version]):
            h.update(f"\n{line}".encode())
    return h.hexdigest()[:16]


class IncompatibleError(ValueError):
    """A model that cannot take a dataset's inputs."""


def model_inputs(model_name: str) -> tuple[str, ...] | None:
    """The input kinds model ``model_name`` declares (None where it declares none)."""
    from ertrain.models import MODELS

    entry: Any = MODELS.entry(model_name) if hasattr(MODELS, "entry") else None
    info = getattr(entry, "info", None) or {}
    kinds = info.get("inputs")
    return None if kinds is None else tuple(kinds)


def check_compatible(model_name: str, dataset_name: str) -> None:
    """Refuse a model whose declared input kinds do not include the dataset's (a graph model on images...).

    Names are checked against both registries; a model or dataset that declares no input kind passes.
    """
    kind = dataset(dataset_name).inputs
    accepts = model_inputs(model_name)
    if kind is None or accepts is None or kind in accepts:
        return
    from ertrain.models import MODELS

    fitting = [m for m in MODELS if kind in (model_inputs(m) or ())]
    raise IncompatibleError(
        f"model {model_name!r} takes {' or '.join(accepts)} inputs but dataset {dataset_name!r} yields {kind} "
        f"inputs; models for {kind} data: {', '.join(fitting) or 'none'}"
    )


__all__ = ["FINGERPRINT_VERSION", "IncompatibleError", "check_compatible", "data_fingerprint", "model_inputs"]
