"""pai: SNIP / SynFlow masks at initialisation reach the exact density, equal an independent top-k, stay fixed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ertrain.config import TrainConfig
from ertrain.data import DataBundle, load_dataset
from ertrain.methods import METHODS, get_method
from ertrain.methods.pai import PruneAtInit
from ertrain.trainer import Trainer


@pytest.fixture(scope="module")
def digits() -> DataBundle:
    return load_dataset("digits", None)


def make_trainer(data: DataBundle, options: dict[str, object], **kw: object) -> Trainer:
    base: dict[str, object] = dict(model="mlp", dataset="digits", epochs=2, lr=0.1, weight_decay=1e-4,
                                   model_options={"hidden": [16]}, method="pai", method_options=options)
    base.update(kw)
    cfg = TrainConfig(**base)  # type: ignore[arg-type]
    return Trainer.from_config(cfg, device="cpu", data=data, progress=False)


def layer_weights(trainer: Trainer) -> list[torch.Tensor]:
    model = trainer.model
    return [model.hidden[0].weight.detach().clone(), model.classifier.weight.detach().clone()]  # type: ignore[index,union-attr]


def topk_by_numpy(scores: list[np.ndarray], keep: int) -> list[np.ndarray]:
    """Independent global top-k: the ``keep`` largest entries of all layers together (no ties here)."""
    flat = np.concatenate([s.ravel() for s in scores])
    chosen = np.zeros(flat.size, dtype=bool)
    chosen[np.argsort(-flat, kind="stable")[:keep]] = True
    out, start = [], 0
    for s in scores:
        out.append(chosen[start : start + s.size].reshape(s.shape))
        start += s.size
    return out


def test_registered() -> None:
    assert get_method("pai") is PruneAtInit and METHODS["pai"].name == "pai"


def test_snip_mask_is_topk_of_independent_saliency(digits: DataBundle) -> None:
    # batch_size above the number of training examples: SNIP scores the whole training set
    trainer = make_trainer(digits, {"saliency": "snip", "final_density": 0.2}, batch_size=4096)
    w1, w2 = layer_weights(trainer)
    b1 = trainer.model.hidden[0].bias.detach()  # type: ignore[index,union-attr]
    b2 = trainer.model.classifier.bias.detach()  # type: ignore[union-attr]
    x = digits.x_train.reshape(digits.x_train.shape[0], -1)
    # the gradient of the mean cross-entropy, by hand (softmax - onehot, back through the ReLU)
    h_pre = x @ w1.T + b1
    h = h_pre.clamp_min(0)
    p = torch.softmax(h @ w2.T + b2, dim=1)
    delta2 = (p - torch.nn.functional.one_hot(digits.y_train, 10).float()) / x.shape[0]
    g2 = delta2.T @ h
    g1 = ((delta2 @ w2) * (h_pre > 0).float()).T @ x
    scores = [(w1 * g1).abs().double().numpy(), (w2 * g2).abs().double().numpy()]
    total = w1.numel() + w2.numel()
    expected = topk_by_numpy(scores, round(0.2 * total))
    masks = PruneAtInit(PruneAtInit.Options(saliency="snip", final_density=0.2)).prune(trainer)
    assert [m.shape for m in masks] == [w1.shape, w2.shape]
    agree = sum(int((m.numpy() == e).sum()) for m, e in zip(masks, expected, strict=True))
    assert agree >= total - 2  # float32 against float64 order: at most one swapped pair at the threshold


def test_synflow_one_round_is_topk_of_closed_form(digits: DataBundle) -> None:
    trainer = make_trainer(digits, {"saliency": "synflow", "final_density": 0.1, "synflow_iterations": 1})
    w1, w2 = (w.abs().double().numpy() for w in layer_weights(trainer))
    b1 = trainer.model.hidden[0].bias.detach().abs().double().numpy()  # type: ignore[index,union-attr]
    # R = 1^T |W2| (|W1| 1 + |b1|) + sum |b2| on the all-ones input (everything positive: ReLU is the identity)
    s1 = w1 * w2.sum(axis=0)[:, None] * np.ones((1, w1.shape[1]))
    s2 = w2 * (w1.sum(axis=1) + b1)[None, :]
    total = w1.size + w2.size
    expected = topk_by_numpy([s1, s2], round(0.1 * total))
    masks = PruneAtInit(PruneAtInit.Options(saliency="synflow", final_density=0.1, synflow_iterations=1)).prune(trainer)
    agree = sum(int((m.numpy() == e).sum()) for m, e in zip(masks, expected, strict=True))
    assert agree >= total - 2


@pytest.mark.parametrize("saliency", ["snip", "synflow"])
def test_exact_density_pruned_stay_zero_and_beats_chance(digits: DataBundle, saliency: str) -> None:
    trainer = make_trainer(digits, {"saliency": saliency, "final_density": 0.25, "synflow_iterations": 20},
                           epochs=8, model_options={"hidden": [64, 32]})
    method = PruneAtInit.from_config(trainer.config)
    result = method.run(trainer)
    assert trainer.masking is not None
    masks = list(trainer.masking.masks.values())
    total = sum(m.numel() for m in masks)
    assert sum(int(m.sum()) for m in masks) == round(0.25 * total)
    assert result["final_density"] == pytest.approx(round(0.25 * total) / total)
    assert result["start_density"] == 1.0
    modules = dict(trainer.model.named_modules())
    for name, m in trainer.masking.masks.items():
        weight = modules[name].weight  # type: ignore[union-attr]
        assert torch.count_nonzero(weight.detach()[~m.bool()]) == 0
    assert trainer.evaluate("test")["accuracy"] > 0.5  # 10 classes: chance is 0.1


def test_er_start_prunes_inside_its_mask(digits: DataBundle) -> None:
    trainer = make_trainer(digits, {"saliency": "snip", "final_density": 0.1}, density_scheme="uniform", density=0.5)
    assert trainer.masking is not None
    start = [m.clone() for m in trainer.masking.masks.values()]
    masks = PruneAtInit.from_config(trainer.config).prune(trainer)
    total = sum(m.numel() for m in start)
    assert sum(int(m.sum()) for m in masks) == round(0.1 * total)
    assert all(not (m & ~s).any() for m, s in zip(masks, start, strict=True))


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="saliency"):
        PruneAtInit(PruneAtInit.Options(saliency="grasp"))
    with pytest.raises(ValueError, match="final_density"):
        PruneAtInit(PruneAtInit.Options(final_density=1.5))
    with pytest.raises(ValueError, match="synflow_iterations"):
        PruneAtInit(PruneAtInit.Options(synflow_iterations=0))
