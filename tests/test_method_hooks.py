"""Methods talk to the trainer through the documented hooks and interface only; their state is a dataclass;
a new DST variant is one subclass plus one registration call."""

from __future__ import annotations

import ast
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ertrain.methods as methods_pkg
from ertrain.config import TrainConfig
from ertrain.data import DataBundle, load_dataset
from ertrain.methods import METHODS, register_method
from ertrain.methods.base import TRAINER_INTERFACE, Method
from ertrain.methods.dst import RigL
from ertrain.methods.maskops import random_scores
from ertrain.runner import run
from ertrain.trainer import Trainer

METHODS_DIR = Path(methods_pkg.__file__).parent

#: One small configuration per built-in method (1 epoch on digits).
BUILTIN_CASES: dict[str, tuple[str, float, dict[str, Any]]] = {
    "static": ("erk", 0.3, {}),
    "rigl": ("erk", 0.3, {"update_every": 3}),
    "set": ("erk", 0.3, {"update_every": 3}),
    "imp": ("dense", 1.0, {"cycles": 1}),
    "str": ("uniform", 0.5, {"s_init": -5.0}),
    "edgepopup": ("dense", 1.0, {"final_density": 0.3, "levels": 2}),
    "pai": ("dense", 1.0, {"saliency": "snip", "final_density": 0.3}),
}


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset("digits", None)


def config(method: str, scheme: str = "erk", density: float = 0.3, options: dict[str, Any] | None = None,
           epochs: int = 1) -> TrainConfig:
    return TrainConfig(model="mlp", dataset="digits", epochs=epochs, lr=0.1, weight_decay=1e-4, method=method,
                       density_scheme=scheme, density=density, method_options=options or {},
                       model_options={"hidden": [32, 16]}, device="cpu")


# ------------------------------------------------------------------------------------------------
# the interface, statically and at run time


def _trainer_uses(tree: ast.AST) -> Iterator[tuple[str, str, int]]:
    """``(attribute, context, line)`` of every ``trainer.<attribute>`` (and ``setattr(trainer, ...)``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trainer":
            yield node.attr, type(node.ctx).__name__, node.lineno
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr")
                and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "trainer"):
            yield "<" + node.func.id + ">", "Store", node.lineno


def test_methods_use_only_the_trainer_interface_ast() -> None:
    files = sorted(METHODS_DIR.glob("*.py"))
    assert len(files) >= 9
    seen: set[str] = set()
    bad = []
    for path in files:
        for attr, ctx, line in _trainer_uses(ast.parse(path.read_text())):
            seen.add(attr)
            if attr not in TRAINER_INTERFACE or ctx != "Load":
                bad.append(f"{path.name}:{line}: trainer.{attr} ({ctx})")
    assert not bad, bad
    assert {"fit", "use_masking", "steps_per_epoch"} <= seen  # the scan really finds the uses


class GuardedTrainer(Trainer):
    """A Trainer that raises when code in ``ertrain.methods`` touches anything outside the interface."""

    def __getattribute__(self, name: str) -> Any:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("ertrain.methods") and name not in TRAINER_INTERFACE:
            raise AssertionError(f"{caller} read trainer.{name}, which is not in the method interface")
        return super().__getattribute__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("ertrain.methods"):
            raise AssertionError(f"{caller} assigned trainer.{name}")
        super().__setattr__(name, value)


def test_guard_catches_a_method_outside_the_interface(digits: DataBundle) -> None:
    tr = GuardedTrainer.from_config(config("static"), data=digits, progress=False)
    probe = type(sys)("ertrain.methods.probe")  # code whose module claims to live in ertrain.methods
    exec("def read(t):\n    return t.history\n\ndef write(t):\n    t.masking = None\n", probe.__dict__)
    with pytest.raises(AssertionError, match="history"):
        probe.read(tr)
    with pytest.raises(AssertionError, match="masking"):
        probe.write(tr)


@pytest.mark.parametrize("name", sorted(BUILTIN_CASES))
def test_every_builtin_method_runs_on_the_interface_only(digits: DataBundle, name: str) -> None:
    scheme, density, options = BUILTIN_CASES[name]
    cfg = config(name, scheme, density, options)
    tr = GuardedTrainer.from_config(cfg, data=digits, progress=False)
    out = METHODS[name].from_config(cfg).run(tr)
    assert isinstance(out, dict)
    assert tr.epoch >= 1


def test_builtin_cases_cover_every_builtin_method() -> None:
    builtin = {name for name in METHODS if METHODS[name].__module__.startswith("ertrain.methods.")}
    assert builtin == set(BUILTIN_CASES)


# ------------------------------------------------------------------------------------------------
# hooks and state


class Recorder(Method):
    """Logs every hook call (and trains like ``static``)."""

    @dataclasses.dataclass
    class State:
        calls: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)

    def start(self, trainer: Trainer) -> None:
        self.state.calls.append(("start", trainer.global_step))

    def after_backward(self, trainer: Trainer, step: int) -> None:
        grads = [p.grad is not None for p in trainer.model.parameters()]
        self.state.calls.append(("after_backward", step, all(grads)))

    def after_step(self, trainer: Trainer, step: int) -> None:
        self.state.calls.append(("after_step", step, trainer.global_step))

    def end_epoch(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        record["extra"] = epoch
        self.state.calls.append(("end_epoch", epoch))

    def finish(self, trainer: Trainer) -> dict[str, Any]:
        self.state.calls.append(("finish", trainer.global_step))
        return {"hooks": len(self.state.calls)}


def test_hooks_are_called_in_order(digits: DataBundle) -> None:
    cfg = config("static", epochs=2)
    tr = Trainer.from_config(cfg, data=digits, progress=False)
    method = Recorder()
    out = method.run(tr)
    spe = tr.steps_per_epoch
    assert spe == -(-digits.num_train // cfg.batch_size)
    expected: list[tuple[Any, ...]] = [("start", 0)]
    for epoch in range(2):
        for step in range(epoch * spe, (epoch + 1) * spe):
            expected += [("after_backward", step, True), ("after_step", step, step)]
        expected.append(("end_epoch", epoch))
    expected.append(("finish", 2 * spe))
    assert method.state.calls == expected
    assert out == {"hooks": len(expected)}
    assert [r["extra"] for r in tr.history] == [0, 1]


def test_state_dict_is_the_state_dataclass() -> None:
    method = RigL()
    state = method.state_dict()
    assert list(state) == [f.name for f in dataclasses.fields(RigL.State)]
    state["changes"] = 7
    state["updates"] = [{"step": 3}]
    fresh = RigL()
    fresh.load_state_dict(state)
    assert fresh.state == RigL.State(**state)
    fresh.load_state_dict({})  # a fresh run keeps the defaults
    assert fresh.state.changes == 7
    with pytest.raises(ValueError, match="unknown fields \\['bogus'\\]"):
        fresh.load_state_dict({**state, "bogus": 1})


# ------------------------------------------------------------------------------------------------
# a new DST variant: one subclass overriding one method, one registration call


class GradTimesRandom(RigL):
    """RiGL variant: grow by |grad| times a uniform random number."""

    def grow_score(self, weight: torch.Tensor, grad: torch.Tensor | None, mask: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
        assert grad is not None
        scores = grad.abs().double() * random_scores(mask, generator)
        self.seen.append((mask.clone(), weight.detach().abs().clone(), scores.clone()))  # for the test's check
        return scores

    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []


@pytest.fixture
def variant() -> Iterator[str]:
    name = "rigl-grad-random"
    register_method(name)(GradTimesRandom)
    GradTimesRandom.seen = []
    yield name
    METHODS.unregister(name)


def brute_force_update(mask: torch.Tensor, drop: torch.Tensor, grow: torch.Tensor, k: int) -> np.ndarray:
    """Drop the k kept entries of smallest ``drop``, grow the k of largest ``grow`` among the rest (numpy sort)."""
    m = mask.reshape(-1).numpy().copy()
    d, g = drop.reshape(-1).double().numpy(), grow.reshape(-1).double().numpy()
    kept = np.flatnonzero(m)
    m[kept[np.argsort(d[kept], kind="stable")[:k]]] = False
    free = np.flatnonzero(~m)
    m[free[np.argsort(-g[free], kind="stable")[:k]]] = True
    return m.reshape(mask.shape)


def test_new_rigl_variant_is_one_subclass(tmp_path: Path, digits: DataBundle, variant: str) -> None:
    cfg = config(variant, options={"update_every": 4, "prune_fraction": 0.3})
    tr = Trainer.from_config(cfg, data=digits, progress=False)
    assert tr.masking is not None
    start = {n: int(m.sum()) for n, m in tr.masking.masks.items()}
    first: dict[str, list[dict[str, torch.Tensor]]] = {"before": [], "after": []}
    method = METHODS[variant].from_config(cfg)
    assert isinstance(method, GradTimesRandom)
    original_after_step = method.after_step

    def capture(trainer: Trainer, step: int) -> None:
        before = {n: m.clone() for n, m in method.masking.masks.items()}
        original_after_step(trainer, step)
        if len(method.state.updates) == 1 and not first["after"]:
            first["before"].append(before)
            first["after"].append({n: m.clone() for n, m in method.masking.masks.items()})

    method.after_step = capture  # type: ignore[method-assign]
    out = method.run(tr)
    assert {n: int(m.sum()) for n, m in tr.masking.masks.items()} == start
    assert out["mask_updates"] > 0 and out["mask_changes"] > 0
    # the first update grew exactly the top-k of |grad| * random (an independent numpy selection)
    alpha = method.state.updates[0]["alpha"]
    seen = iter(GradTimesRandom.seen)
    checked = 0
    for name, mask in first["before"][0].items():
        k = min(round(alpha * int(mask.sum())), mask.numel() - int(mask.sum()))
        if k == 0:
            assert torch.equal(first["after"][0][name], mask)
            continue
        seen_mask, magnitude, scores = next(seen)
        assert torch.equal(seen_mask, mask)
        expected = brute_force_update(mask, magnitude, scores, k)
        assert np.array_equal(first["after"][0][name].numpy(), expected), name
        checked += 1
    assert checked >= 2
    # the whole pipeline accepts the new name: config validation, run directory, result
    result = run(config(variant, options={"update_every": 4}), tmp_path, progress=False)
    assert result["method"] == variant and result["mask_updates"] > 0
