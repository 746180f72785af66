"""Masking models ertrain was not written for: per-parameter rules, ties, refusals, the one mask plan.

The true density is measured here from ``model.named_parameters()`` alone (every tensor with two or
more dimensions that is not an ``nn.Embedding`` weight), independently of ertrain's own accounting.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ertrain.cli import main
from ertrain.masks import Masking, plan_masks
from ertrain.models import ParamRule, UnmaskableParameterError, mask_scope, register_param_rule, unregister_param_rule
from ertrain.sparse import fold_masks

VOCAB = 97


class TransformerLM(nn.Module):
    """``nn.TransformerEncoder`` (4 layers, d_model 256) between a token embedding and a linear head."""

    def __init__(self, d_model: int = 256, layers: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d_model)
        layer = nn.TransformerEncoderLayer(d_model, 4, dim_feedforward=512, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, VOCAB)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(x)))


class LSTMLM(nn.Module):
    """A 2-layer ``nn.LSTM`` (hidden 512) language model with a linear head."""

    def __init__(self, hidden: int = 512) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 128)
        self.lstm = nn.LSTM(128, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, VOCAB)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(x))[0])


class Conv1D(nn.Module):
    """A linear layer storing its weight as ``(in, out)``, as GPT-2 code does (same name, same ``nf``)."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], self.nf)


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = Conv1D(3 * d, d), Conv1D(d, d)
        self.c_fc, self.mlp_proj = Conv1D(4 * d, d), Conv1D(d, 4 * d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp_proj(nn.functional.gelu(self.c_fc(self.ln_2(x))))


class TinyGPT(nn.Module):
    """GPT-2 style: token and position embeddings, ``Conv1D`` blocks, a head tied to the token embedding."""

    def __init__(self, d: int = 256, layers: int = 4, context: int = 32) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, d), nn.Embedding(context, d)
        self.h = nn.ModuleList(Block(d, 4) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.wte(x) + self.wpe(torch.arange(x.shape[1]))
        for block in self.h:
            h = block(h)
        return self.lm_head(self.ln_f(h))


class WithPositions(nn.Module):
    """A model with a raw ``nn.Parameter`` that no rule knows."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(16, 32))
        self.fc = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x + self.pos[: x.shape[1]].sum(0))


def unknown_param_model() -> nn.Module:
    """Factory for ``ertrain densities --model test_any_model:unknown_param_model``."""
    return WithPositions()


MODELS = {"transformer": TransformerLM, "lstm": LSTMLM, "gpt": TinyGPT}


def true_density(model: nn.Module) -> float:
    """Nonzero fraction over every >= 2-D parameter that is not an embedding weight (each tensor once)."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    nnz = total = 0
    for p in model.parameters():  # each tensor once (tied ones too)
        if p.dim() >= 2 and id(p) not in embeddings:
            nnz += int(p.count_nonzero())
            total += p.numel()
    return nnz / total


def train_steps(model: nn.Module, masking: Masking, steps: int = 1) -> None:
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    for _ in range(steps):
        x = torch.randint(0, VOCAB, (2, 12))
        loss = nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), x.roll(-1, 1).reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        masking.apply_()


@pytest.mark.parametrize("scheme", ["uniform", "erk"])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_true_density_after_a_step(kind: str, scheme: str) -> None:
    torch.manual_seed(1)
    model = MODELS[kind]()
    masking = Masking.from_scheme(model, scheme, 0.1, torch.Generator().manual_seed(2))
    train_steps(model, masking)
    assert abs(true_density(model) - 0.1) <= 1e-3
    assert abs(masking.overall_density() - 0.1) <= 1e-3
    # the whole model is accounted for: masked + unmasked = every parameter, tied ones once
    report = masking.plan.report() if masking.plan is not None else {}
    assert report["total_params"] == sum(p.numel() for p in model.parameters())
    assert report["masked_params"] + report["unmasked_params"] == report["total_params"]


def test_rules_cover_attention_recurrent_and_transposed_layers() -> None:
    names = {t.full_name: t for t in mask_scope(TransformerLM()).targets}
    attn = names["encoder.layers.0.self_attn.in_proj_weight"]
    assert attn.rule == "multihead_attention" and attn.shape == (768, 256) and (attn.fan_in, attn.fan_out) == (256, 768)
    assert len(names) == 4 * 4 + 1  # in_proj, out_proj, linear1, linear2 per layer, and the head
    lstm = {t.full_name: t for t in mask_scope(LSTMLM()).targets}
    assert sorted(lstm) == sorted(["head.weight", *(f"lstm.weight_{a}_l{i}" for a in ("ih", "hh") for i in (0, 1))])
    assert lstm["lstm.weight_hh_l1"].shape == (2048, 512)
    gpt = {t.full_name: t for t in mask_scope(TinyGPT()).targets}
    c_attn = gpt["h.0.c_attn.weight"]
    assert c_attn.rule == "gpt2_conv1d" and c_attn.shape == (256, 768) and c_attn.canonical_shape == (768, 256)
    assert (c_attn.fan_in, c_attn.fan_out) == (256, 768)
    assert "lm_head.weight" not in gpt and "wte.weight" not in gpt


def test_flow_repair_works_on_the_out_in_view_of_transposed_layers() -> None:
    # at density 0.002 most rows/columns of every mask are empty before repair
    model = TinyGPT(d=64, layers=1)
    plan = plan_masks(model, "uniform", 0.002, torch.Generator().manual_seed(0), "random_add")
    for target, mask in zip(plan.targets, plan.masks, strict=True):
        out_in = target.canonical(mask).reshape(target.canonical_shape[0], target.canonical_shape[1], -1).any(2)
        assert bool(out_in.any(1).all()) and bool(out_in.any(0).all()), target.name
    assert sum(plan.edges_added) > 0


def test_tied_head_keeps_the_embedding_dense_and_says_so() -> None:
    model = TinyGPT(d=64, layers=1)
    masking = Masking.from_scheme(model, "erk", 0.1, torch.Generator().manual_seed(0))
    train_steps(model, masking)
    assert bool((model.wte.weight != 0).all())
    ties = masking.plan.report()["ties"] if masking.plan is not None else []
    assert len(ties) == 1 and sorted(ties[0]["names"]) == ["lm_head.weight", "wte.weight"]
    assert ties[0]["masked_as"] is None and "kept dense" in ties[0]["resolution"]
    # asked for: the tied weight is masked once, under the head's name
    model = TinyGPT(d=64, layers=1)
    masking = Masking.from_scheme(model, "uniform", 0.1, torch.Generator().manual_seed(0), tied="mask")
    assert "lm_head" in masking.targets and masking.plan is not None
    assert masking.plan.report()["ties"][0]["masked_as"] == "lm_head.weight"
    assert abs(int(model.wte.weight.count_nonzero()) / model.wte.weight.numel() - 0.1) < 0.03


def test_unknown_parameter_is_refused_by_name_then_included_or_excluded() -> None:
    with pytest.raises(UnmaskableParameterError, match=r"'pos' \(16, 32\) of WithPositions.*include.*exclude"):
        Masking.from_scheme(WithPositions(), "uniform", 0.5, torch.Generator().manual_seed(0))
    excluded = Masking.from_scheme(WithPositions(), "uniform", 0.5, torch.Generator().manual_seed(0), exclude=["pos"])
    assert list(excluded.targets) == ["fc"]
    assert excluded.plan is not None and excluded.plan.report()["excluded"][0]["name"] == "pos"
    included = Masking.from_scheme(WithPositions(), "uniform", 0.5, torch.Generator().manual_seed(0), include=["pos"])
    assert list(included.targets) == ["pos", "fc"] and included.targets["pos"].rule == "included by name"


def test_unknown_parameter_cli_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["densities", "--model", "test_any_model:unknown_param_model", "--sparsity", "0.5"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'pos'" in err[0]
    assert main([*argv, "--exclude", "pos", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [layer["name"] for layer in out["layers"]] == ["fc"] and out["unmasked_params"] == 16 * 32 + 4


def test_custom_rule_registered_in_one_place() -> None:
    class Dense(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kernel = nn.Parameter(torch.randn(12, 5))  # (in, out)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x @ self.kernel

    with pytest.raises(UnmaskableParameterError, match="kernel"):
        mask_scope(Dense())
    register_param_rule(ParamRule("dense_kernel", ("kernel",), (Dense,), transposed=True))
    try:
        (target,) = mask_scope(Dense()).targets
        assert target.name == "kernel" and (target.fan_in, target.fan_out) == (12, 5)
    finally:
        unregister_param_rule("dense_kernel")


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_mask_train_export(kind: str, tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = MODELS[kind](256, 2) if kind != "lstm" else LSTMLM(128)
    masking = Masking.from_scheme(model, "erk", 0.2, torch.Generator().manual_seed(4), "random_add")
    train_steps(model, masking, steps=3)
    masks = {t.full_name: m.clone() for t, m in zip(masking.targets.values(), masking.masks.values(), strict=True)}
    plain = fold_masks(model).eval()
    assert not any(name.endswith("_mask") for name, _ in plain.named_buffers())
    torch.save(plain.state_dict(), tmp_path / "model.pt")
    fresh = (MODELS[kind](256, 2) if kind != "lstm" else LSTMLM(128)).eval()
    fresh.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    params = dict(fresh.named_parameters())
    for name, mask in masks.items():
        assert bool((params[name][~mask] == 0).all()), name
    x = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model.eval()(x))


def test_trained_run_masks_equal_what_densities_predicts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ertrain.runner import load_run

    flags = ["--density-scheme", "erk", "--sparsity", "0.95", "--seed", "3", "--flow-repair", "random_add"]
    train = ["train", "--model", "mlp", "--dataset", "digits", "--epochs", "1"]
    assert main([*train, *flags, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    (run_dir,) = [p.parent for p in tmp_path.rglob("result.json")]
    config, model, masking, _ = load_run(run_dir)
    assert masking is not None
    first = next(iter(masking.targets.values()))
    kwargs = ["--num-classes", "10", "--in-features", str(first.shape[1])]
    options = ["--model-options", json.dumps(dict(config.model_options)), "--width", str(config.width)]
    assert main(["densities", "--model", "mlp", *kwargs, *options, *flags, "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    stored = masking.masks
    assert [layer["name"] for layer in predicted["layers"]] == list(stored)
    for layer in predicted["layers"]:
        mask = stored[layer["name"]]
        assert layer["realised_density"] == int(mask.count_nonzero()) / mask.numel()
    assert predicted["edges_added"] == sum(masking.edges_added.values()) or masking.edges_added == {}
    assert predicted["realised_density"] == masking.overall_density()
    # the same plan, mask by mask, on a fresh model of the run's shapes
    plan = plan_masks(model, "erk", 0.05, torch.Generator().manual_seed(3), "random_add")
    for target, mask in zip(plan.targets, plan.masks, strict=True):
        assert torch.equal(mask, stored[target.name].cpu())
    assert math.isclose(predicted["overall_density"], float(plan.planned_density), rel_tol=0, abs_tol=1e-12)


def test_config_mask_options_choose_what_training_masks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ertrain.runner import load_run

    argv = ["train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--density-scheme", "uniform",
            "--sparsity", "0.9", "--out", str(tmp_path)]
    assert main([*argv, "--mask-options", '{"exclude": ["hidden.*"], "nosuch": 1}']) == 2
    assert "nosuch" in capsys.readouterr().err and not any(tmp_path.iterdir())
    assert main([*argv, "--mask-options", '{"exclude": ["classifier.*"]}']) == 0
    (run_dir,) = [p.parent for p in tmp_path.rglob("result.json")]
    _, model, masking, _ = load_run(run_dir)
    assert masking is not None and list(masking.targets) == ["hidden.0", "hidden.1"]
    assert bool((model.classifier.weight != 0).all())


class SeqNet(nn.Module):
    """An 8x8 digit read as 8 steps of 8 features: attention, then an LSTM, then a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(8, 16)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
        self.lstm = nn.LSTM(16, 16, batch_first=True)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x.reshape(x.shape[0], 8, 8))
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(self.lstm(h)[0][:, -1])


@pytest.mark.parametrize(("method", "scheme", "density", "options"), [
    ("rigl", "erk", 0.3, {"update_every": 3}),
    ("set", "erk", 0.3, {"update_every": 3}),
    ("imp", "dense", 1.0, {"cycles": 1}),
    ("str", "uniform", 0.5, {"s_init": -5.0}),
    ("edgepopup", "dense", 1.0, {"final_density": 0.3, "levels": 2}),
])
def test_methods_train_attention_and_recurrent_weights(method: str, scheme: str, density: float,
                                                       options: dict) -> None:
    from ertrain.config import TrainConfig
    from ertrain.data import load_dataset
    from ertrain.methods import METHODS
    from ertrain.trainer import Trainer

    data = load_dataset("digits", None)
    cfg = TrainConfig(model="mlp", dataset="digits", epochs=1, lr=0.05, weight_decay=1e-4, method=method,
                      density_scheme=scheme, density=density, method_options=options, device="cpu")
    torch.manual_seed(0)
    model = SeqNet()
    gen = torch.Generator().manual_seed(0)
    masking = None if scheme == "dense" else Masking.from_scheme(model, scheme, density, gen)
    trainer = Trainer(cfg, model, data, masking=masking, device="cpu", generator=gen, progress=False)
    out = METHODS[method].from_config(cfg).run(trainer)
    assert trainer.masking is not None
    names = list(trainer.masking.targets)
    assert "attn.in_proj_weight" in names and "lstm.weight_hh_l0" in names
    assert set(out["layer_densities"]) == set(names)
    for name, target in trainer.masking.targets.items():  # pruned weights are zero in every masked parameter
        mask = trainer.masking.masks[name]
        assert bool((target.weight.detach()[~mask] == 0).all()), name
    final = out["layer_densities"]["attn.in_proj_weight"]
    assert 0 < final < 1, final


def test_hugging_face_gpt2_if_installed() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=VOCAB, n_positions=32)
    model = transformers.GPT2LMHeadModel(config)
    masking = Masking.from_scheme(model, "erk", 0.1, torch.Generator().manual_seed(0), exact=True)
    assert {t.rule for t in masking.targets.values()} == {"gpt2_conv1d"}
    assert abs(true_density(model) - 0.1) <= 1e-3
    assert bool((model.transformer.wte.weight != 0).all())


def test_torchvision_resnet_if_installed() -> None:
    models = pytest.importorskip("torchvision.models")
    model = models.resnet18(num_classes=10)
    masking = Masking.from_scheme(model, "erk", 0.1, torch.Generator().manual_seed(0))
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert list(masking.targets) == convs
    assert abs(true_density(model) - 0.1) <= 1e-3
