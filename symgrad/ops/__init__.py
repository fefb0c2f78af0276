"""Every op of symgrad, as functions on Tensors."""

from types import ModuleType as _ModuleType

from ..graph import atomic as _atomic
from .elementwise import user_elementwise as elementwise
from .linalg import matmul
from .math import (
    abs,
    add,
    cos,
    div,
    exp,
    hard_tanh,
    leaky_relu,
    log,
    logaddexp,
    maximum,
    minimum,
    mul,
    neg,
    pow,
    prelu,
    relu,
    sigmoid,
    sin,
    softplus,
    sqrt,
    square,
    sub,
    tanh,
)
from .nn import cross_entropy, log_softmax, logsumexp, maxout, mse, one_hot, softmax
from .reductions import max, mean, min, ones_like, sum, zeros_like
from .registry import OPS, Op, defjvp, defvjp, get_op, register
from .structural import (
    broadcast_to,
    cast,
    concatenate,
    equal,
    getitem,
    greater,
    greater_equal,
    less,
    less_equal,
    not_equal,
    reshape,
    stop_gradient,
    transpose,
    unbroadcast,
    where,
)

_REGISTRY_API = {"OPS", "Op", "defjvp", "defvjp", "get_op", "register", "elementwise"}
__all__ = [
    name
    for name, value in globals().items()
    if not name.startswith("_") and not isinstance(value, _ModuleType)
]

# public op functions are all-or-nothing: a failing call leaves the graph as it was
for _name in __all__:
    if _name not in _REGISTRY_API and callable(globals()[_name]):
        globals()[_name] = _atomic(globals()[_name])
