"""The layers, one module per kind, each with its forward and backward rule side by side."""

from __future__ import annotations

from symbolic.layers.activation import ACTIVATION_LAYERS, LeakyReLU, ReLU, Sigmoid, Tanh
from symbolic.layers.base import Context, Layer, Statement, obj, zeros
from symbolic.layers.conv import Conv2D
from symbolic.layers.dense import Dense
from symbolic.layers.flatten import Flatten
from symbolic.layers.loss import BCE, LOSS_LAYERS, MSE, Loss, SoftmaxCE
from symbolic.layers.pool import AvgPool, MaxPool

LAYERS: dict[str, type[Layer]] = {
    "conv2d": Conv2D,
    **ACTIVATION_LAYERS,
    "maxpool": MaxPool,
    "avgpool": AvgPool,
    "flatten": Flatten,
    "dense": Dense,
}

__all__ = [
    "BCE",
    "LAYERS",
    "LOSS_LAYERS",
    "MSE",
    "AvgPool",
    "Context",
    "Conv2D",
    "Dense",
    "Flatten",
    "Layer",
    "LeakyReLU",
    "Loss",
    "MaxPool",
    "ReLU",
    "Sigmoid",
    "SoftmaxCE",
    "Statement",
    "Tanh",
    "obj",
    "zeros",
]
