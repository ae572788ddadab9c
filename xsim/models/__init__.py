"""Model zoo: layer graphs of the networks xsim maps onto crossbars."""

from xsim.models.graph import Layer, Network
from xsim.models.spec import GraphBuilder, LayerSpecError, network_from_spec
from xsim.models.zoo import (
    ZOO,
    UnknownModelError,
    build_model,
    lenet5,
    mlp,
    mobilenetv2,
    resnet18,
    resnet20,
    resnet50,
    vgg16,
)

__all__ = [
    "ZOO",
    "GraphBuilder",
    "Layer",
    "LayerSpecError",
    "Network",
    "UnknownModelError",
    "build_model",
    "lenet5",
    "mlp",
    "mobilenetv2",
    "network_from_spec",
    "resnet18",
    "resnet20",
    "resnet50",
    "vgg16",
]
