"""The named elementwise ops, each one SymPy expression (derivatives come from SymPy)."""

from __future__ import annotations

import numbers

import sympy as sp

from ..errors import GraphError, user_site
from ..graph import Tensor
from .elementwise import apply_elementwise, define
from .elementwise import logaddexp as _logaddexp
from .elementwise import sigmoid as _sigmoid
from .elementwise import softplus as _softplus
from .registry import OPS
from .sympy_numpy import relu_zero

P = sp.Piecewise

# name -> (builder over x0, x1, ... [, attrs], faster NumPy source or None)
RULES = {
    "add": (lambda a, b: a + b, None),
    "sub": (lambda a, b: a - b, None),
    "mul": (lambda a, b: a * b, None),
    "div": (lambda a, b: a / b, None),
    "neg": (lambda a: -a, None),
    "pow": (lambda a, b: a**b, None),
    "exp": (sp.exp, None),
    "log": (sp.log, None),
    "sqrt": (sp.sqrt, None),
    "square": (lambda a: a**2, "np.square({0})"),
    "abs": (sp.Abs, None),
    "sin": (sp.sin, None),
    "cos": (sp.cos, None),
    "tanh": (sp.tanh, None),
    "sigmoid": (_sigmoid, None),
    "softplus": (_softplus, None),
    "logaddexp": (_logaddexp, None),
    "relu": (lambda a: P((a, a > 0), (0, True)), "np.maximum({0}, 0)"),
    "leaky_relu": (lambda a, alpha: P((a, a > 0), (alpha * a, True)), None),
    "prelu": (lambda a, alpha: P((a, a > 0), (alpha * a, True)), None),
    "hard_tanh": (lambda a: P((-1, a < -1), (1, a > 1), (a, True)), "np.clip({0}, -1, 1)"),
    "maximum": (lambda a, b: P((a, a >= b), (b, True)), "np.maximum({0}, {1})"),
    "minimum": (lambda a, b: P((a, a <= b), (b, True)), "np.minimum({0}, {1})"),
}
# leaky_relu's slope is a static attribute; prelu's is a tensor argument
_NARGS = {"leaky_relu": 1}

for _name, (_builder, _template) in RULES.items():
    define(_name, _builder, nargs=_NARGS.get(_name), template=_template)

# name -> the ufunc computing it into an existing array (the compiler's buffer reuse)
UFUNCS = {
    "add": "np.add({0}, {1}",
    "sub": "np.subtract({0}, {1}",
    "mul": "np.multiply({0}, {1}",
    "div": "np.true_divide({0}, {1}",
    "neg": "np.negative({0}",
    "pow": "np.power({0}, {1}",
    "exp": "np.exp({0}",
    "log": "np.log({0}",
    "sqrt": "np.sqrt({0}",
    "square": "np.square({0}",
    "abs": "np.absolute({0}",
    "sin": "np.sin({0}",
    "cos": "np.cos({0}",
    "tanh": "np.tanh({0}",
    "relu": "np.maximum({0}, 0",
    "maximum": "np.maximum({0}, {1}",
    "minimum": "np.minimum({0}, {1}",
    "logaddexp": "np.logaddexp({0}, {1}",
}


def _into(call: str):
    return lambda ctx, out, args, attrs: (call + ", out={out})").format(*args, out=out)


for _name, _call in UFUNCS.items():
    OPS[_name].emit_into = _into(_call)


def _relu_into(ctx, out: str, args: list[str], attrs: dict) -> str:
    return f"np.maximum({args[0]}, {relu_zero(ctx)}, out={out})"


OPS["relu"].emit_into = _relu_into


def _unary(name):
    def op(x) -> Tensor:
        return apply_elementwise(name, x)

    op.__name__ = name
    op.__doc__ = f"Elementwise {name}: {RULES[name][0](sp.Symbol('x'))}"
    return op


def _binary(name):
    def op(a, b) -> Tensor:
        return apply_elementwise(name, a, b)

    op.__name__ = name
    op.__doc__ = f"Elementwise {name} with NumPy broadcasting."
    return op


add, sub, mul, div, pow, maximum, minimum, logaddexp = (  # noqa: A001
    _binary(n) for n in ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "logaddexp")
)
logaddexp.__doc__ = "log(exp(a) + exp(b)) elementwise, with NumPy broadcasting; stable at any a, b."
neg, exp, log, sqrt, square, abs, sin, cos, tanh, sigmoid, softplus, relu, hard_tanh = (  # noqa: A001
    _unary(n)
    for n in ("neg exp log sqrt square abs sin cos tanh sigmoid softplus relu hard_tanh".split())
)


def leaky_relu(x, alpha: float = 0.01) -> Tensor:
    """x where x > 0, else alpha * x (alpha a fixed number; ``prelu`` takes a tensor)."""
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool):
        raise GraphError(
            f"leaky_relu: alpha must be a number, got {type(alpha).__name__}; "
            f"prelu(x, alpha) takes a tensor ({user_site()})"
        )
    try:
        alpha = float(alpha)
    except OverflowError:  # an int beyond float64: the attribute check names it
        pass
    return apply_elementwise("leaky_relu", x, alpha=alpha)


def prelu(x, alpha) -> Tensor:
    """x where x > 0, else alpha * x, with alpha a (learnable, broadcast) tensor."""
    return apply_elementwise("prelu", x, alpha)
