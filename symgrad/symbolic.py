"""A graph as SymPy expressions: ``to_sympy`` evaluates it on arrays of SymPy objects.

Every input element becomes a SymPy symbol (``x_0``, ``x_1``, ... for input ``x``), so the
result is exact and ``sympy.diff`` gives an oracle for derivatives that shares no code with
symgrad's differentiator. Meant for small graphs.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from .autodiff.sweep import ancestors
from .compile.evaluate import resolve_attrs
from .errors import GraphError
from .graph import Tensor
from .ops import OPS, get_op
from .ops.elementwise import _frozen, _named_expression, sym
from .ops.structural import _python_index


def _elementwise(op):
    def run(args, attrs):
        expr = _named_expression(op, len(args), _frozen(attrs))
        subs = np.vectorize(
            lambda *xs: expr.xreplace({sym(i): x for i, x in enumerate(xs)}), otypes=[object]
        )
        return subs(*args)

    return run


def _reduce(fn):
    def run(args, attrs):
        (x,) = args
        out = x
        for axis in sorted(attrs["axis"], reverse=True):
            out = np.apply_along_axis(lambda v: fn(*v), axis, out)
            if attrs["keepdims"]:
                out = np.expand_dims(out, axis)
        return np.asarray(out, dtype=object)

    return run


def _logsumexp(x, axes, keepdims):
    return _reduce(lambda *v: sp.log(sum(sp.exp(e) for e in v)))(
        [x], {"axis": axes, "keepdims": keepdims}
    )


def _softmax(x, axes):
    return np.vectorize(sp.exp, otypes=[object])(x - _logsumexp(x, axes, True))


def _compare(fn):
    return lambda args, attrs: np.vectorize(fn, otypes=[object])(*args)


def _where(args, attrs):
    return np.vectorize(lambda c, a, b: sp.Piecewise((a, c), (b, True)), otypes=[object])(*args)


def _cross_entropy(args, attrs):
    z, y = args
    lse = _logsumexp(z, (z.ndim - 1,), False)
    picked = np.take_along_axis(z, y[..., None].astype(np.intp), axis=-1)[..., 0]
    return lse - picked


# op -> rule on object arrays; every other op runs its own NumPy impl, which works on them
RULES = {
    "sum": _reduce(lambda *v: sp.Add(*v)),
    "mean": _reduce(lambda *v: sp.Add(*v) / len(v)),
    "max": _reduce(sp.Max),
    "min": _reduce(sp.Min),
    "logsumexp": lambda a, at: _logsumexp(a[0], at["axis"], at["keepdims"]),
    "softmax": lambda a, at: _softmax(a[0], at["axis"]),
    "log_softmax": lambda a, at: a[0] - _logsumexp(a[0], at["axis"], True),
    "cross_entropy": _cross_entropy,
    "where": _where,
    "cast": lambda a, at: a[0],
    "less": _compare(lambda a, b: a < b),
    "less_equal": _compare(lambda a, b: a <= b),
    "greater": _compare(lambda a, b: a > b),
    "greater_equal": _compare(lambda a, b: a >= b),
    "index_add": lambda a, at: _index_add(a, at),
}


def _index_add(args, attrs):
    out = np.full(attrs["shape"], sp.S.Zero, dtype=object)
    np.add.at(out, _python_index(attrs["index"], args[1:]), args[0])
    return out


def input_symbols(x: Tensor) -> np.ndarray:
    """The SymPy symbols standing for the elements of input ``x`` (real-valued)."""
    name = x.name or f"n{x.node}"
    flat = [sp.Symbol(f"{name}_{i}", real=True) for i in range(int(np.prod(x.shape, dtype=int)))]
    return np.array(flat, dtype=object).reshape(x.shape)


def to_sympy(outputs, values: dict | None = None):
    """Exact values of ``outputs`` as object arrays of SymPy expressions.

    Inputs not in ``values`` become symbols (see ``input_symbols``); ``values`` may give
    numbers or SymPy expressions for some of them (integer labels, for instance).
    """
    single = isinstance(outputs, Tensor)
    outs = [outputs] if single else list(outputs)
    graph = outs[0].graph
    given = {k.node: v for k, v in (values or {}).items()}
    vals: dict[int, np.ndarray] = {}
    for n in ancestors(graph, [o.node for o in outs]):
        data = graph.nx.nodes[n]
        op, t = data["op"], Tensor(graph, n)
        if any(isinstance(d, str) for d in data["shape"]):
            raise GraphError(f"to_sympy needs concrete shapes: {graph.describe(n)}")
        if n in given:
            v = np.asarray(given[n])
            vals[n] = v if v.dtype.kind in "iub" else np.asarray(v, dtype=object)
        elif op in ("input", "variable"):
            vals[n] = input_symbols(t)
        elif op == "constant":
            v = data["attrs"]["value"]
            vals[n] = (
                v
                if v.dtype.kind in "iub"
                else np.vectorize(lambda e: sp.Float(float(e)), otypes=[object])(v)
            )
        else:
            args = [vals[a] for a in graph.args(n)]
            spec = get_op(op)
            attrs = resolve_attrs(spec, data["attrs"], {})
            if OPS[op].extra.get("elementwise"):
                rule = _elementwise(op)
            else:
                rule = RULES.get(op, spec.impl)
            vals[n] = np.asarray(rule(args, attrs), dtype=object)
    result = [vals[o.node] for o in outs]
    return result[0] if single else result
