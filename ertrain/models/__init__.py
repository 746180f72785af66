"""The paper's models, a registry by name: ``mlp``, ``vgg16``, ``vgg19``, ``resnet20``, ``resnet110``,
``resnet18``, ``resnet50``, ``gcn`` and the small CNN of the CPU study, ``smallcnn``.
Add a model with ``@register_model("name")``.
"""

from ertrain.models import gcn, mlp, resnet, smallcnn, vgg
from ertrain.models._meta import shapes_only
from ertrain.models._registry import MASKABLE_TYPES, MODELS, build_model, layer_weight, maskable_layers, register_model

__all__ = [
    "MASKABLE_TYPES",
    "MODELS",
    "build_model",
    "layer_weight",
    "maskable_layers",
    "register_model",
    "shapes_only",
    "gcn",
    "mlp",
    "resnet",
    "smallcnn",
    "vgg",
]
