"""Tests of ertrain.models: published parameter counts, forward shapes, masked-layer selection."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ertrain.models import MODELS, build_model, layer_weight, maskable_layers
from ertrain.models.vgg import VGG


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def built(name: str, **kw: object) -> nn.Module:
    return build_model(name, **kw)  # type: ignore[arg-type]


def conv_bn(c_in: int, c_out: int, k: int, bias: bool = False) -> int:
    """Parameters of a k x k conv followed by batch norm (weight + bias)."""
    return c_in * c_out * k * k + (c_out if bias else 0) + 2 * c_out


def cifar_resnet_by_hand(n: int, classes: int = 10) -> int:
    """He et al. (2016), Sec. 4.2: stem 3x3x16, 3 stages of n basic blocks (16, 32, 64), option A shortcuts."""
    total = conv_bn(3, 16, 3)
    c_in = 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += conv_bn(c_in, c, 3) + conv_bn(c, c, 3)
            c_in = c
    return total + 64 * classes + classes


def vgg_by_hand(cfg: list[int], classes: int = 10) -> int:
    total, c_in = 0, 3
    for c in cfg:
        total += conv_bn(c_in, c, 3, bias=True)
        c_in = c
    return total + 512 * classes + classes


@pytest.mark.parametrize(
    ("name", "kw", "expected", "reference"),
    [
        # He et al. 2016, Table 6: ResNet20 0.27M, ResNet110 1.7M parameters (option A shortcuts).
        ("resnet20", {"num_classes": 10}, cifar_resnet_by_hand(3), 0.27e6),
        ("resnet110", {"num_classes": 10}, cifar_resnet_by_hand(18), 1.7e6),
        # torchvision resnet18 / resnet50 (ImageNet, 1000 classes): 11,689,512 / 25,557,032.
        ("resnet18", {"num_classes": 1000, "input_size": 224}, 11_689_512, None),
        ("resnet50", {"num_classes": 1000, "input_size": 224}, 25_557_032, None),
        # CIFAR-stem ResNet18 (kuangliu/pytorch-cifar), 10 classes: 11,173,962.
        ("resnet18", {"num_classes": 10}, 11_173_962, None),
        # VGG16-bn / VGG19-bn CIFAR variant (one 512 -> classes linear), 10 classes: 14,728,266 / 20,040,522.
        ("vgg16", {"num_classes": 10}, 14_728_266, None),
        ("vgg19", {"num_classes": 10}, 20_040_522, None),
        # LeNet-300-100 on 28x28 inputs: 784*300+300 + 300*100+100 + 100*10+10.
        ("mlp", {"num_classes": 10, "in_features": 784}, 266_610, None),
        # Kipf & Welling GCN on Cora: 1433 features, 16 hidden, 7 classes.
        ("gcn", {"num_classes": 7, "in_features": 1433}, 1433 * 16 + 16 + 16 * 7 + 7, None),
    ],
)
def test_parameter_counts(name: str, kw: dict, expected: int, reference: float | None) -> None:
    count = n_params(built(name, **kw))
    assert count == expected
    if reference is not None:
        assert count == pytest.approx(reference, rel=0.02)


def test_vgg_counts_match_configuration_by_hand() -> None:
    vgg16 = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    vgg19 = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
    assert n_params(built("vgg16", num_classes=10)) == vgg_by_hand(vgg16)
    assert n_params(built("vgg19", num_classes=100)) == vgg_by_hand(vgg19, 100)


def test_option_b_shortcuts_add_two_projections() -> None:
    extra = conv_bn(16, 32, 1) + conv_bn(32, 64, 1)
    assert n_params(built("resnet20", num_classes=10, shortcut="B")) == cifar_resnet_by_hand(3) + extra


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"gcn"}))
def test_forward_shapes_and_forward_order(name: str) -> None:
    torch.set_num_threads(1)
    kw: dict = {"num_classes": 7, "width": 0.125}
    if name == "mlp":
        kw["in_features"] = 3 * 32 * 32
    model = build_model(name, **kw).eval()
    layers = maskable_layers(model)
    called: list[str] = []
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: called.append(n)) for n, m in layers]
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    for h in handles:
        h.remove()
    assert out.shape == (2, 7)
    # maskable_layers lists layers in the order of their first call (grokking's shared embedding runs twice)
    assert list(dict.fromkeys(called)) == [n for n, _ in layers]


def test_gcn_dense_and_sparse_adjacency_agree() -> None:
    model = build_model("gcn", num_classes=3, in_features=5).eval()
    adj = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.5, 0.25, 0.25, 0.0], [0.0, 0.25, 0.5, 0.25], [0.0, 0.0, 0.5, 0.5]])
    x = torch.randn(4, 5)
    torch.testing.assert_close(model(x, adj), model(x, adj.to_sparse()))


def test_maskable_layers_default_and_options() -> None:
    model = built("resnet18", num_classes=10)
    names = [n for n, _ in maskable_layers(model)]
    # conv1 + 16 block convs + 3 projection shortcuts + classifier; no batch-norm layers
    assert len(names) == 21 and names[0] == "conv1" and names[-1] == "classifier"
    assert sum(".shortcut." in n for n in names) == 3
    assert [n for n, _ in maskable_layers(model, exclude_first=True, exclude_last=True)] == names[1:-1]
    assert [n for n, _ in maskable_layers(model, include=["classifier", "conv1"])] == ["conv1", "classifier"]
    with pytest.raises(ValueError, match="not maskable"):
        maskable_layers(model, include=["bn1"])


def test_width_multiplies_hidden_channels() -> None:
    layers = maskable_layers(built("vgg16", num_classes=10, width=0.5))
    assert tuple(layer_weight(layers[0][1]).shape) == (32, 3, 3, 3)
    assert tuple(layer_weight(layers[-1][1]).shape) == (10, 256)
    mlp = maskable_layers(built("mlp", num_classes=10, in_features=20, hidden=(8, 4), width=2.0))
    assert [tuple(layer_weight(m).shape) for _, m in mlp] == [(16, 20), (8, 16), (10, 8)]


def test_bad_names_and_options() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet9000'; valid names: gcn, grokking, mlp, resnet110"):
        build_model("resnet9000", num_classes=10)
    with pytest.raises(ValueError, match="unknown option"):
        build_model("vgg16", num_classes=10, depth=3)
    with pytest.raises(ValueError, match="stem"):
        build_model("resnet18", num_classes=10, stem="tiny")
    with pytest.raises(ValueError, match="in_features"):
        build_model("gcn", num_classes=7)
    with pytest.raises(ValueError, match="width"):
        build_model("mlp", num_classes=10, width=0)


# ---------------------------------------------------------------------------------------------- paper-code VGG

# The layer lists of the paper's code (ER_DST/models/vgg.py, ``defaultcfg``): four 'M' (max-pools), the
# last block unpooled; convs 3x3 without bias, each followed by BatchNorm2d (affine); Linear(512, classes).
PAPER_CODE_CFG: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


def paper_code_vgg_by_hand(cfg: list[int | str], classes: int) -> int:
    total, c_in = 0, 3
    for v in cfg:
        if v == "M":
            continue
        assert isinstance(v, int)
        total += c_in * v * 9 + 2 * v  # conv weight (no bias) + batch-norm weight and bias
        c_in = v
    return total + c_in * classes + classes


@pytest.mark.parametrize(("name", "classes"), [("vgg16", 10), ("vgg19", 100), ("vgg16", 200)])
def test_paper_code_vgg_parameters_by_hand(name: str, classes: int) -> None:
    model = built(name, num_classes=classes, variant="paper-code")
    assert n_params(model) == paper_code_vgg_by_hand(PAPER_CODE_CFG[name], classes)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4
    exact = built(name, num_classes=classes)
    assert sum(isinstance(m, nn.MaxPool2d) for m in exact.modules()) == 5
    assert n_params(exact) - n_params(model) == sum(c.out_channels for c in convs)  # the conv biases


def test_paper_code_vgg_forward_on_cifar_and_tiny_imagenet_sizes() -> None:
    torch.set_num_threads(1)
    model = built("vgg16", num_classes=7, width=0.125, variant="paper-code").eval()
    assert isinstance(model, VGG)
    with torch.no_grad():
        for size in (32, 64):  # the code's AvgPool2d(2) / AvgPool2d(4) see a 2x2 / 4x4 map: a global pool
            features = model.features(torch.randn(2, 3, size, size))
            assert features.shape[-1] == size // 16
            assert model(torch.randn(2, 3, size, size)).shape == (2, 7)
    with pytest.raises(ValueError, match="input_size >= 16"):
        built("vgg16", num_classes=10, input_size=8, variant="paper-code")


def test_paper_code_vgg_initialisation() -> None:
    """Kaiming-normal fan-out convs (std sqrt(2 / (c_out k^2))), N(0, 0.01^2) classifier, zero biases."""
    torch.manual_seed(0)
    model = built("vgg16", num_classes=10, variant="paper-code")
    assert isinstance(model, VGG)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    first, last = convs[0], convs[-1]
    # first conv (64, 3, 3, 3): fan_out = 64 * 9 = 576, fan_in = 27 -- the two modes differ by a factor 4.6
    assert float(first.weight.detach().std()) == pytest.approx((2 / 576) ** 0.5, rel=0.1)
    assert float(last.weight.detach().std()) == pytest.approx((2 / (512 * 9)) ** 0.5, rel=0.01)
    assert float(model.classifier.weight.detach().std()) == pytest.approx(0.01, rel=0.1)
    assert float(model.classifier.bias.detach().abs().max()) == 0.0
    with pytest.raises(ValueError, match="unknown vgg16 variant 'paper'; valid: exact, paper-code"):
        built("vgg16", num_classes=10, variant="paper")


def test_resnet20_with_1x1_shortcuts_parameters_by_hand() -> None:
    """ER_DST/models/cifar_resnet.py:25-29: 1x1 conv + BN where the shape changes -> 272,474 for CIFAR-10."""

    def conv(c_in: int, c_out: int, k: int) -> int:
        return c_in * c_out * k * k

    def bn(c: int) -> int:
        return 2 * c

    count = conv(3, 16, 3) + bn(16)
    c_in = 16
    for planes in (16, 32, 64):
        for _ in range(3):
            count += conv(c_in, planes, 3) + bn(planes) + conv(planes, planes, 3) + bn(planes)
            if c_in != planes:
                count += conv(c_in, planes, 1) + bn(planes)
            c_in = planes
    count += 64 * 10 + 10
    assert count == 272_474
    model = build_model("resnet20", num_classes=10, shortcut="B", init="fan_in")
    assert sum(p.numel() for p in model.parameters()) == count
    names = [n for n, _ in maskable_layers(model)]
    assert "stages.1.0.shortcut.0" in names and "stages.2.0.shortcut.0" in names


def test_fan_in_init_of_resnets() -> None:
    """Kaiming-normal fan-in (ReLU gain) for every conv and the linear layer (ER_DST/models/initializers.py:16)."""
    torch.manual_seed(0)
    model = build_model("resnet110", num_classes=100, init="fan_in")
    big = model.stages[2][5].conv1.weight.detach()  # 64 x 64 x 3 x 3: fan_in 576
    assert abs(float(big.std()) - (2 / 576) ** 0.5) < 0.02 * (2 / 576) ** 0.5
    first = model.stages[1][0].conv1.weight.detach()  # 32 x 16 x 3 x 3: fan_in 144, fan_out 288
    assert abs(float(first.std()) - (2 / 144) ** 0.5) < 0.05 * (2 / 144) ** 0.5
    fc = model.classifier.weight.detach()  # 100 x 64: fan_in 64
    assert abs(float(fc.std()) - (2 / 64) ** 0.5) < 0.05 * (2 / 64) ** 0.5
    torch.manual_seed(0)
    default = build_model("resnet110", num_classes=100)  # fan_out: std sqrt(2 / 288) for that conv
    first_out = default.stages[1][0].conv1.weight.detach()
    assert abs(float(first_out.std()) - (2 / 288) ** 0.5) < 0.05 * (2 / 288) ** 0.5
    with pytest.raises(ValueError, match=r"init must be one of \['fan_out', 'fan_in'\], got 'fan'"):
        build_model("resnet20", num_classes=10, init="fan")
    with pytest.raises(ValueError, match=r"classifier must be one of \['linear', 'conv1x1'\], got 'conv'"):
        build_model("resnet18", num_classes=10, classifier="conv")


def test_str_resnet18_classifier_is_a_bias_free_1x1_conv() -> None:
    """STR/models/resnet18.py:126: 512 x 10 weights, no bias: 10 fewer parameters than the linear head."""
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=10, classifier="conv1x1", init="fan_in")
    linear = build_model("resnet18", num_classes=10)
    assert isinstance(model.classifier, nn.Conv2d) and model.classifier.bias is None
    assert tuple(model.classifier.weight.shape) == (10, 512, 1, 1)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in linear.parameters()) - 10
    x = torch.randn(3, 3, 32, 32)
    model.eval()
    feats = model.pool(model.stages(model.maxpool(torch.relu(model.bn1(model.conv1(x)))))).flatten(1)
    expected = feats @ model.classifier.weight.detach().reshape(10, 512).T
    torch.testing.assert_close(model(x), expected)
    assert "classifier" in [n for n, _ in maskable_layers(model)]
