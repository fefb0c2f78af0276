"""What the rewrite rules read off a node, and the few values they build."""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from ..errors import ShapeError
from ..graph import Tensor
from ..ops import broadcast_to
from ..ops.elementwise import sym
from ..ops.shapes import broadcast_shapes
from ..ops.sympy_numpy import index_of, parts
from .manager import Rewriter

X0, X1 = sym(0), sym(1)
# the expressions of the basic named ops, for rules that match them on any node
NEG, PRODUCT, QUOTIENT, RECIPROCAL = -X0, X0 * X1, X0 / X1, 1 / X0
DIFFERENCE = X0 - X1

# where a uniform value can be read through: views that copy it around unchanged
_THROUGH = ("broadcast_to", "reshape", "transpose", "stop_gradient")
UNIFORM_CHECK_LIMIT = 1 << 16  # larger constants are not scanned for being uniform


def uniform(rw: Rewriter, n: int):
    """The one value every element of node ``n`` has (a 0-d array), or None if unknown."""
    try:
        return rw.uniforms[n]
    except KeyError:
        u = rw.uniforms[n] = _uniform(rw, n)
        return u


def _uniform(rw: Rewriter, n: int):
    op = rw.op(n)
    if op == "constant":
        v = rw.attrs(n)["value"]
        if v.size == 0 or v.size > UNIFORM_CHECK_LIMIT:
            return None
        first = v.reshape(-1)[0]
        return np.asarray(first) if np.all(v == first) else None
    if op in _THROUGH:
        return uniform(rw, rw.args(n)[0])
    return None


def is_value(rw: Rewriter, n: int, value) -> bool:
    """Whether every element of ``n`` is known to equal ``value``."""
    u = uniform(rw, n)
    return u is not None and bool(u == value)


def canonical_uniform(rw: Rewriter, n: int) -> bool:
    """A constant, or a constant scalar broadcast: what a uniform value is rewritten to."""
    op = rw.op(n)
    if op == "constant":
        return True
    return (
        op == "broadcast_to" and rw.op(rw.args(n)[0]) == "constant" and not rw.shape(rw.args(n)[0])
    )


def full(rw: Rewriter, value, shape: tuple, dtype: str) -> Tensor:
    """``value`` everywhere, never materialized: a scalar constant broadcast to ``shape``."""
    c = rw.graph.constant(np.asarray(value, dtype=dtype))
    return broadcast_to(c, shape) if shape else c


def fit(rw: Rewriter, t: Tensor | int, n: int) -> Tensor | None:
    """``t`` standing in for node ``n``: broadcast to its shape; None if it cannot stand in
    (another dtype, or a shape that does not broadcast to n's)."""
    if not isinstance(t, Tensor):
        t = rw.t(t)
    if t.dtype != rw.dtype(n):
        return None
    shape = rw.shape(n)
    if t.shape == shape:
        return t
    try:
        if broadcast_shapes(t.shape, shape) != shape:
            return None
    except ShapeError:
        return None
    return broadcast_to(t, shape)


def unary(rw: Rewriter, n: int, head) -> int | None:
    """The argument of ``n`` when n is exactly ``head(x0)`` (named op or ``expr`` node)."""
    e = rw.expr(n)
    if e is not None and isinstance(e, head) and e.args == (X0,):
        return rw.args(n)[0]
    return None


def arguments_first(rw: Rewriter, n: int, opened) -> list[int]:
    """The ``opened`` nodes below ``n`` (and n), each after its arguments. (Ranks are no such
    order once a node was replaced by an existing newer one.)"""
    order: list[int] = []
    seen = {n}

    def visit(m: int) -> None:
        for a in rw.args(m):
            if a in opened and a not in seen:
                seen.add(a)
                visit(a)
        order.append(m)

    visit(n)
    return order


def view(rw: Rewriter, n: int, depth: int = 1, evaluate: bool = True) -> tuple[sp.Expr, list[int]]:
    """``n``'s expression with the elementwise nodes up to ``depth`` levels below it opened and
    scalar constants put in as numbers. Returns (expression over x0..xk, the node of each xk).

    A node read twice is one symbol (or one opened expression), so ``mul(a, a)`` reads
    ``x0**2``. With ``evaluate=False`` the pieces are put together without SymPy simplifying.
    """
    if rw.expr(n) is None:
        return sym(0), [n]
    dtype = rw.dtype(n)
    opened, frontier = {n}, [n]
    for _ in range(depth):
        frontier = [
            a
            for m in frontier
            for a in rw.args(m)
            if a not in opened and rw.is_elementwise(a) and rw.dtype(a) == dtype
        ]
        opened.update(frontier)
    order = arguments_first(rw, n, opened)
    if piecewise_in_condition(rw, order):
        opened, order = {n}, [n]
    leaves: list[int] = []
    done: dict[int, sp.Expr] = {}
    with sp.evaluate(evaluate):
        for m in order:
            subs = {}
            for i, a in enumerate(rw.args(m)):
                u = uniform(rw, a) if rw.dtype(a) == rw.dtype(m) else None
                if a in done:
                    subs[sym(i)] = done[a]
                elif u is not None and np.isfinite(u):
                    subs[sym(i)] = (
                        sp.Integer(int(u)) if float(u).is_integer() else sp.Float(float(u))
                    )
                else:
                    if a not in leaves:
                        leaves.append(a)
                    subs[sym(i)] = sym(leaves.index(a))
            done[m] = rw.expr(m).xreplace(subs)
    return done[n], leaves


def piecewise_in_condition(rw: Rewriter, members: list[int]) -> bool:
    """Whether, among ``members`` (arguments first), a value computed by a piecewise one
    (relu) is read inside a condition (of another relu): no one expression can hold that."""
    valued: set[int] = set()  # members whose value a piecewise expression computed
    for m in members:
        if piecewise(rw.expr(m)) or any(a in valued for a in rw.args(m)):
            valued.add(m)
        if any(a in valued and in_condition(rw, m, a) for a in rw.args(m)):
            return True
    return False


def in_condition(rw: Rewriter, c: int, n: int) -> bool:
    """Whether elementwise node c reads n inside a condition (a comparison)."""
    slots = _condition_slots(rw.expr(c))
    return any(a == n and i in slots for i, a in enumerate(rw.args(c)))


@functools.lru_cache(maxsize=4096)
def _condition_slots(expr: sp.Expr) -> frozenset[int]:
    """The argument positions ``expr`` reads inside comparisons."""
    found = [r.free_symbols for r in parts(expr, sp.core.relational.Relational)]
    return frozenset(index_of(s) for s in set().union(*found))


@functools.lru_cache(maxsize=4096)
def piecewise(expr: sp.Expr) -> bool:
    """Whether ``expr`` picks between pieces (relu, abs, leaky_relu ...)."""
    return expr.has(sp.Piecewise)


def reach(rw: Rewriter, n: int, depth: int) -> set[int]:
    """``n`` and the nodes ``view(n, depth)`` may open or read."""
    out, frontier = {n}, [n]
    for _ in range(depth):
        below = []
        for m in frontier:
            if rw.is_elementwise(m):
                below += rw.args(m)
        out.update(below)
        frontier = below
    return out
