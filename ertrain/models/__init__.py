"""The paper's models, a registry by name: ``mlp``, ``vgg16``, ``vgg19``, ``resnet20``, ``resnet110``,
``resnet18``, ``resnet50``, ``gcn``, the grokking toy model ``grokking`` and the small CNN of the CPU study,
``smallcnn``.
Add a model with ``@register_model("name")``; what is masked in any model: ``mask_scope`` (per-parameter rules).
"""

from ertrain.models import gcn, grokking, mlp, resnet, smallcnn, vgg
from ertrain.models._maskable import (
    PARAM_RULES,
    TIED_MODES,
    MaskScope,
    MaskTarget,
    ParamRule,
    UnmaskableParameterError,
    mask_scope,
    register_param_rule,
    unregister_param_rule,
)
from ertrain.models._meta import shapes_only
from ertrain.models._registry import (
    MASKABLE_TYPES,
    MODELS,
    build_model,
    layer_weight,
    mask_targets,
    maskable_layers,
    register_model,
)

__all__ = [
    "MASKABLE_TYPES",
    "MODELS",
    "PARAM_RULES",
    "TIED_MODES",
    "MaskScope",
    "MaskTarget",
    "ParamRule",
    "UnmaskableParameterError",
    "build_model",
    "layer_weight",
    "mask_scope",
    "mask_targets",
    "maskable_layers",
    "register_model",
    "register_param_rule",
    "unregister_param_rule",
    "shapes_only",
    "gcn",
    "grokking",
    "mlp",
    "resnet",
    "smallcnn",
    "vgg",
]
