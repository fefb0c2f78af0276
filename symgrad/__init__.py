"""symgrad: a symbolic-to-symbolic differentiation compiler for NumPy.

Build an expression graph with the Tensor API, differentiate it into more graph nodes
(gradients, HVPs, Jacobians, Hessians of any order), and compile it to plain NumPy source.
"""

from .autodiff.derived import hessian, hvp, jacobian
from .autodiff.forward import jvp
from .autodiff.reverse import grad, vjp
from .check import check_grads, numeric_grad
from .compile.evaluate import evaluate
from .compile.function import Function, compile
from .errors import (
    DifferentiationError,
    GradientCheckError,
    GraphError,
    InputError,
    RewriteError,
    ShapeError,
    SymgradError,
)
from .graph import Graph, Tensor
from .introspect import pprint, to_dot
from .ops import *  # noqa: F403
from .ops import __all__ as _ops_all

__version__ = "0.1.0"

from . import nn  # noqa: E402

__all__ = [
    "Graph",
    "Tensor",
    "Function",
    "compile",
    "evaluate",
    "grad",
    "vjp",
    "jvp",
    "hvp",
    "jacobian",
    "hessian",
    "check_grads",
    "numeric_grad",
    "pprint",
    "to_dot",
    "SymgradError",
    "ShapeError",
    "GraphError",
    "DifferentiationError",
    "InputError",
    "GradientCheckError",
    "RewriteError",
    *_ops_all,
]
