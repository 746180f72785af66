"""The study's design as data: one TOML file per variant in ``configs/reproduction/<variant>.toml``.

A design file fixes, before anything runs, what the study trains::

    name = "cpu"
    title = "..."
    seeds = [0, 1, 2]
    margin = 1.0                       # percentage points: "matches" means "not worse by more than this"

    [convergence]                      # studies.reproduction.convergence.Criterion
    window = 0.25
    tolerance = 0.5

    [base]                             # TrainConfig fields of every image run (dataset, data_options, ...)
    dataset = "fashion-mnist"

    [models.mlp]                       # a recipe (ertrain.recipes) plus TrainConfig fields of that model
    recipe = "fashion-mnist-mlp"

    [claim1] ... [claim5]              # each claim's arms (read by studies.reproduction.arms)

A model's configuration is its recipe's hyper-parameters, overridden by ``[base]``, then by the model's own
fields, then by the arm's.  Variants: ``quick`` (the pipeline end to end in minutes, for CI), ``cpu`` (the
study of ``docs/study_design.md``), ``full`` (the paper's CIFAR scale, for a GPU cluster).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ertrain.config import TrainConfig, resolve
from studies.reproduction.convergence import Criterion

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The repository root (the study reads its designs from and writes its results into a checkout).
ROOT = Path(__file__).resolve().parents[2]
#: Where the design files live.
DESIGN_DIR = ROOT / "configs" / "reproduction"
#: Top-level keys of a design file.
_KEYS = frozenset({"name", "title", "seeds", "margin", "convergence", "base", "models",
                   "claim1", "claim2", "claim3", "claim4", "claim5"})


@dataclass(frozen=True)
class Design:
    """A parsed design file (see the module docstring)."""

    name: str
    title: str
    seeds: tuple[int, ...]
    margin: float
    criterion: Criterion
    base: dict[str, Any]
    models: dict[str, dict[str, Any]]
    claims: dict[int, dict[str, Any]]
    path: Path

    def claim(self, number: int) -> dict[str, Any]:
        """The ``[claim<number>]`` table (``ValueError`` naming the file when it is missing)."""
        if number not in self.claims:
            raise ValueError(f"{self.path}: no [claim{number}] table; present: {sorted(self.claims)}")
        return self.claims[number]

    def config(self, model: str, **fields: Any) -> TrainConfig:
        """The configuration of ``model`` on the design's dataset: recipe < [base] < [models.<model>] < fields."""
        if model not in self.models:
            raise ValueError(f"{self.path}: model {model!r} has no [models.{model}] table; "
                             f"valid: {', '.join(sorted(self.models))}")
        return make_config({**self.base, **self.models[model], "model": model, **fields})


def make_config(fields: Mapping[str, Any]) -> TrainConfig:
    """The config of one arm through the resolver (:func:`ertrain.config.resolve`, as ``ertrain train`` and sweeps):
    explicit > protocol > recipe > defaults; ``sparsity`` is ``1 - density``."""
    return resolve(fields).config


def design_path(variant: str | Path) -> Path:
    """``configs/reproduction/<variant>.toml`` for a variant name, or the given path to a design file."""
    path = Path(variant)
    if path.suffix == ".toml":
        return path
    candidate = DESIGN_DIR / f"{variant}.toml"
    if not candidate.is_file():
        known = sorted(p.stem for p in DESIGN_DIR.glob("*.toml"))
        raise ValueError(f"unknown study variant {str(variant)!r}; valid: {', '.join(known)} (or a .toml path)")
    return candidate


def load_design(variant: str | Path) -> Design:
    """Parse and check the design file of ``variant`` (a name from :data:`DESIGN_DIR` or a path)."""
    path = design_path(variant)
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: unreadable design file ({exc})") from exc
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; valid: {sorted(_KEYS)}")
    seeds = tuple(int(s) for s in doc.get("seeds", ()))
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"{path}: seeds must list at least two distinct seeds, got {list(seeds)}")
    models = doc.get("models", {})
    if not models or not all(isinstance(m, dict) for m in models.values()):
        raise ValueError(f"{path}: needs [models.<name>] tables")
    claims = {int(k[5:]): v for k, v in doc.items() if k.startswith("claim")}
    return Design(name=str(doc.get("name", path.stem)), title=str(doc.get("title", "")), seeds=seeds,
                  margin=float(doc.get("margin", 1.0)), criterion=Criterion(**doc.get("convergence", {})),
                  base=dict(doc.get("base", {})), models={k: dict(v) for k, v in models.items()}, claims=claims,
                  path=path)


__all__ = ["DESIGN_DIR", "ROOT", "Design", "design_path", "load_design", "make_config"]
