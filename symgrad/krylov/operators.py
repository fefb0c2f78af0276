"""Curvature products as ``scipy.sparse.linalg.LinearOperator``s over one flat parameter
vector, so that scipy's ``eigsh``, ``cg`` and ``minres`` (and the methods of this package)
run on compiled Hessian- and Gauss-Newton-vector products.

The product graph is built and compiled once per (function, parameters, fed inputs) and
reused. An operator fixes the point and the data; the compiled product is then specialized
to them (``Function.specialize``), so the forward pass and the gradient are computed once
and each product does only the work that depends on v.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ..autodiff.derived import hvp
from ..autodiff.forward import jvp
from ..autodiff.reverse import vjp
from ..autodiff.sweep import ancestors
from ..compile.function import Function, compile
from ..errors import GraphError, InputError, user_site
from ..graph import Tensor
from ..nn.problem import fresh_name
from ..ops import concatenate, reshape
from .arguments import number, operator, refuse
from .flat import sizes, unflatten


class CurvatureOperator(LinearOperator):
    """A symmetric n x n curvature matrix (n = number of parameter entries) seen only
    through products. ``n_products`` counts them; ``passes`` is 2 per product (the cost of
    a product in gradient evaluations)."""

    def __init__(self, product: Callable[[np.ndarray], np.ndarray], params, dtype, kind: str):
        n = sum(sizes(params))
        super().__init__(dtype=np.dtype(dtype), shape=(n, n))
        self._product = product
        self.params = list(params)
        self.kind = kind
        self.n_products = 0

    def _matvec(self, v):
        self.n_products += 1
        return self._product(np.ascontiguousarray(np.ravel(v), dtype=self.dtype))

    def _rmatvec(self, v):
        return self._matvec(v)

    def _adjoint(self):
        return self

    @property
    def passes(self) -> int:
        return 2 * self.n_products

    def unflatten(self, vector: np.ndarray) -> list[np.ndarray]:
        """A flat vector as one array per parameter."""
        return unflatten(vector, self.params)

    def damped(self, damping: float) -> LinearOperator:
        """This operator plus ``damping`` times the identity (Levenberg-Marquardt / Tikhonov)."""
        return damped(self, damping)

    def __repr__(self) -> str:
        return f"<{self.shape[0]}x{self.shape[1]} {self.kind} operator, {self.n_products} products>"


def damped(op: LinearOperator, damping: float) -> LinearOperator:
    """``op + damping * I`` as a LinearOperator (``op`` may be a matrix)."""
    op = operator("damped", op)
    damping = number("damped", "damping", damping)

    def matvec(v):
        v = np.ravel(v)
        return op.matvec(v) + damping * v

    return LinearOperator(op.shape, matvec=matvec, rmatvec=matvec, dtype=op.dtype)


# ---- the product graphs -------------------------------------------------------------------
def _hessian_products(mode: str):
    def build(f, wrt, vs, outputs):
        return hvp(f, wrt, vs, mode=mode)

    return build


def _gauss_newton_products(f, wrt, vs, outputs):
    """G v = J^T H_L J v, J = d outputs / d params, H_L = Hessian of f in the outputs."""
    if outputs is None:
        raise GraphError(
            f"Gauss-Newton products need the model's outputs (outputs=...) ({user_site()})"
        )
    Jv = jvp(outputs, wrt, vs)
    return vjp(outputs, wrt, hvp(f, outputs, Jv))


PRODUCTS: dict[str, Callable] = {
    "hessian": _hessian_products("fwd-rev"),
    "hessian-rev-rev": _hessian_products("rev-rev"),
    "gauss-newton": _gauss_newton_products,
}


def product_function(
    kind: str, f: Tensor, wrt: Sequence[Tensor], fixed: Sequence[Tensor], outputs=None
) -> Function:
    """The compiled ``(*fixed, v) -> product(v)`` over flat v, built once per graph and key."""
    graph = f.graph
    key = (kind, f.node, tuple(w.node for w in wrt), tuple(x.node for x in fixed))
    key += (None if outputs is None else outputs.node,)
    # kept on the graph (a cycle the collector frees), not in a global table that pins it
    cache = vars(graph).setdefault("_krylov_products", {})
    if key not in cache:
        dtype = np.result_type(*[w.dtype for w in wrt]).name
        v = graph.input(fresh_name(graph, "krylov.v"), (sum(sizes(wrt)),), dtype)
        pieces, offset = [], 0
        for w, k in zip(wrt, sizes(wrt)):
            pieces.append(reshape(v[offset : offset + k], w.shape))
            offset += k
        products = PRODUCTS[kind](f, list(wrt), pieces, outputs)
        flat = concatenate([reshape(p, (k,)) for p, k in zip(products, sizes(wrt))])
        cache[key] = compile(flat, [*fixed, v])
    return cache[key]


def _staged(fn: Function, fixed: dict) -> Callable[[np.ndarray], np.ndarray]:
    """``v -> fn(..., v)`` with everything but v fixed to the values in ``fixed``
    ({input or variable: array}); all that does not depend on v (the forward pass, the
    gradient) is computed once, here."""
    return fn.specialize(fixed)


def _operator(caller: str, kind: str, f: Tensor, wrt, feed, outputs=None) -> CurvatureOperator:
    if not isinstance(f, Tensor):
        refuse(caller, f"f must be a scalar Tensor, got {type(f).__name__}")
    graph = f.graph
    wrt = [wrt] if isinstance(wrt, Tensor) else wrt
    if not isinstance(wrt, Iterable) or isinstance(wrt, (str, np.ndarray)):
        refuse(caller, f"wrt must be a Tensor or a list of them, got {type(wrt).__name__}")
    wrt = list(wrt)
    for w in wrt:
        if not _on(graph, w):
            refuse(caller, f"wrt must hold Tensors of f's graph, got {_foreign(w)}")
    if feed is not None and not isinstance(feed, Mapping):
        refuse(caller, f"feed must be a dict {{input or name: array}}, got {type(feed).__name__}")
    for key in feed or {}:
        if not (isinstance(key, str) or _on(graph, key)):
            refuse(caller, f"feed's keys must be names or inputs of f's graph, got {_foreign(key)}")
    if outputs is not None and not _on(graph, outputs):
        refuse(caller, f"outputs must be a Tensor of f's graph, got {_foreign(outputs)}")
    if f.ndim != 0:
        raise GraphError(f"curvature of a non-scalar {graph.describe(f.node)} ({user_site()})")
    fed = {(graph[k] if isinstance(k, str) else k): v for k, v in (feed or {}).items()}
    for w in wrt:
        if w.op == "input" and w not in fed:
            raise InputError(
                f"the point: feed a value for {graph.describe(w.node)} ({user_site()})"
            )
        if w.op not in ("input", "variable"):
            raise GraphError(
                f"differentiate with respect to inputs or variables, not {w!r} ({user_site()})"
            )
    if not wrt:
        raise GraphError(
            f"a curvature operator needs at least one parameter in wrt ({user_site()})"
        )
    inputs = sorted(fed, key=lambda t: t.node)
    fixed = {}
    for x in inputs:
        try:
            fixed[x] = np.array(fed[x], dtype=x.dtype, copy=True)
        except (TypeError, ValueError):
            got = type(fed[x]).__name__
            refuse(caller, f"feed: {graph.describe(x.node)} needs {x.dtype} values, got {got}")
    # the point: every variable f reads, parameters or not, at its value now
    variables = [graph.tensor(n) for n in ancestors(graph, [f.node])]
    fixed.update({v: v.value.copy() for v in variables if v.op == "variable"})
    with graph.transaction():  # a bad feed found when staging leaves no nodes behind
        fn = product_function(kind, f, wrt, inputs, outputs)
        dtype = np.result_type(*[w.dtype for w in wrt])
        return CurvatureOperator(_staged(fn, fixed), wrt, dtype, kind)


def _on(graph, t) -> bool:
    return isinstance(t, Tensor) and t.graph is graph


def _foreign(t) -> str:
    return f"{t!r} of another graph" if isinstance(t, Tensor) else type(t).__name__


def hvp_operator(
    f: Tensor, wrt: Tensor | Sequence[Tensor], feed: dict | None = None, mode: str = "fwd-rev"
) -> CurvatureOperator:
    """The Hessian of the scalar ``f`` in the parameters ``wrt``, flattened in their order.

    ``feed`` gives {input: array} (or {name: array}) for the data inputs and for parameters
    that are inputs; the values are copied, so the point and the batch are fixed. Parameters
    that are variables are taken at their values when the operator is made; at a new point
    make a new operator (cheap: the compiled product is reused). ``mode``: "fwd-rev"
    (forward-over-reverse) or "rev-rev".
    """
    kinds = {"fwd-rev": "hessian", "rev-rev": "hessian-rev-rev"}
    if mode not in kinds:
        raise GraphError(f"hvp mode must be 'fwd-rev' or 'rev-rev', got {mode!r} ({user_site()})")
    return _operator("hvp_operator", kinds[mode], f, wrt, feed)


def gnvp_operator(
    f: Tensor, wrt: Tensor | Sequence[Tensor], feed: dict | None = None, *, outputs: Tensor
) -> CurvatureOperator:
    """The Gauss-Newton matrix G = J^T H_L J of ``f`` = L(outputs(params)).

    J is the Jacobian of ``outputs`` (e.g. the logits) in ``wrt`` and H_L the Hessian of
    ``f`` in ``outputs``; G is positive semidefinite whenever L is convex in the outputs
    (softmax cross-entropy, squared error), unlike the Hessian. Terms of ``f`` that do not go
    through ``outputs`` are left out. ``feed`` as for ``hvp_operator``.
    """
    return _operator("gnvp_operator", "gauss-newton", f, wrt, feed, outputs)
