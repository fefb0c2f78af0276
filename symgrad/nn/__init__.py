"""Training toolkit: Dense layers and ``mlp``, initializers, losses, optimizers written as
graph updates (one compiled call per training step), ``fit``, and small datasets.

    net = sg.nn.mlp([64, 128, 10], "relu", seed=0)
    history = sg.nn.fit(net, X, y, optimizer=sg.nn.Adam(1e-3), epochs=20, validation=(Xv, yv))
"""

from .datasets import digits, two_spirals, xor
from .fit import History, fit, predict, supervised_problem
from .flat import split_flat
from .init import (
    INITIALIZERS,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    zeros,
)
from .layers import ACTIVATIONS, MLP, Dense, mlp
from .losses import LOSSES, Loss, accuracy, cross_entropy, mse, sigmoid_cross_entropy
from .optim import OPTIMIZERS, SGD, Adam, CompiledStep, Momentum, Nesterov, Optimizer
from .problem import Problem, Step

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "LOSSES",
    "OPTIMIZERS",
    "MLP",
    "SGD",
    "Adam",
    "CompiledStep",
    "Dense",
    "History",
    "Loss",
    "Momentum",
    "Nesterov",
    "Optimizer",
    "Problem",
    "Step",
    "accuracy",
    "split_flat",
    "cross_entropy",
    "digits",
    "fit",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "mlp",
    "mse",
    "predict",
    "sigmoid_cross_entropy",
    "supervised_problem",
    "two_spirals",
    "xor",
    "zeros",
]
