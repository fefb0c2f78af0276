"""Numerical stabilization: compositions that overflow, underflow or divide 0 by 0 at extreme
inputs become the stable ops that compute the same function (and whose derivatives are the
stable ones too)."""

from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp

from .. import ops
from ..ops.elementwise import beyond_float64, build, index_of, parts, sigmoid, softplus, sym
from ..ops.shapes import is_float
from .fuse import denominators, expression_node, group_expression
from .manager import ELEMENTWISE, Rewriter, rewrite
from .match import (
    NEG,
    PRODUCT,
    QUOTIENT,
    X0,
    X1,
    arguments_first,
    fit,
    full,
    piecewise_in_condition,
    reach,
    unary,
    uniform,
    view,
)


# ---- log of something that over- or underflows ----------------------------------------
@rewrite("log_softmax", "stabilize", "log")
def log_softmax(rw: Rewriter, n: int):
    """log(softmax(x)) -> log_softmax(x)."""
    (s,) = rw.args(n)
    if rw.op(s) != "softmax":
        return None
    return fit(rw, ops.log_softmax(rw.t(rw.args(s)[0]), rw.attrs(s)["axis"]), n)


@rewrite("logsumexp", "stabilize", "log")
def logsumexp(rw: Rewriter, n: int):
    """log(sum(exp(x), axes)) -> logsumexp(x, axes); log(mean(exp(x))) -> that less log(count)
    where the count is known."""
    (s,) = rw.args(n)
    if rw.op(s) not in ("sum", "mean"):
        return None
    x = unary(rw, rw.args(s)[0], sp.exp)
    if x is None:
        return None
    attrs = rw.attrs(s)
    lse = ops.logsumexp(rw.t(x), attrs["axis"], attrs["keepdims"])
    if rw.op(s) == "sum":
        return fit(rw, lse, n)
    axes = range(len(rw.shape(x))) if attrs["axis"] is None else attrs["axis"]
    reduced = [rw.shape(x)[a] for a in axes]
    if any(isinstance(d, str) for d in reduced):
        return None
    return fit(rw, lse - float(np.log(math.prod(reduced))), n)


@rewrite("softplus", "stabilize", "log")
def softplus_(rw: Rewriter, n: int):
    """log(1 + exp(x)) -> softplus(x)."""
    e, leaves = view(rw, rw.args(n)[0], 1)
    if e != 1 + sp.exp(X0):
        return None
    return fit(rw, ops.softplus(rw.t(leaves[0])), n)


@rewrite("log_sigmoid", "stabilize", "log")
def log_sigmoid(rw: Rewriter, n: int):
    """log(sigmoid(x)) -> -softplus(-x), for a float x of the log's dtype."""
    x = unary(rw, rw.args(n)[0], sigmoid)
    if x is None or rw.dtype(x) != rw.dtype(n):  # -x of an unsigned int wraps around
        return None
    return fit(rw, ops.neg(ops.softplus(ops.neg(rw.t(x)))), n)


@rewrite("log1m_sigmoid", "stabilize", "log")
def log1m_sigmoid(rw: Rewriter, n: int):
    """log(1 - sigmoid(x)) -> -softplus(x)."""
    e, leaves = view(rw, rw.args(n)[0], 1)
    if e != 1 - sigmoid(X0):
        return None
    return fit(rw, ops.neg(ops.softplus(rw.t(leaves[0]))), n)


@rewrite("log_exp", "stabilize", "log")
def log_exp(rw: Rewriter, n: int):
    """log(exp(x)) -> x."""
    x = unary(rw, rw.args(n)[0], sp.exp)
    return None if x is None else fit(rw, x, n)


@rewrite("logaddexp", "stabilize", "log")
def logaddexp(rw: Rewriter, n: int):
    """log(exp(a) + exp(b)) -> logaddexp(a, b), for float a and b of the log's dtype."""
    e, leaves = view(rw, rw.args(n)[0], 1)
    if e != sp.exp(X0) + sp.exp(X1) or any(rw.dtype(x) != rw.dtype(n) for x in leaves):
        return None
    return fit(rw, ops.logaddexp(*map(rw.t, leaves)), n)


@rewrite("log_scaled", "stabilize", "log")
def log_scaled(rw: Rewriter, n: int):
    """log(c * u) -> log(c) + log(u), for a number c > 0 and u a softmax, sum or mean, whose
    logs the rules above stabilize."""
    e, leaves = view(rw, rw.args(n)[0], 1)
    if len(leaves) != 1 or rw.op(leaves[0]) not in ("softmax", "sum", "mean"):
        return None
    c = e / X0
    if not c.is_Number or c <= 0 or c == 1:
        return None
    return fit(rw, ops.log(rw.t(leaves[0])) + float(sp.log(c)), n)


@rewrite("exp_log", "stabilize", "exp")
def exp_log(rw: Rewriter, n: int):
    """exp(log(x)) -> x, where x is known to be >= 0 (elsewhere log gives nan)."""
    x = unary(rw, rw.args(n)[0], sp.log)
    if x is None or not nonnegative(rw, x):
        return None
    return fit(rw, x, n)


_NONNEGATIVE = (
    sp.exp(X0),
    sp.sqrt(X0),
    sp.Abs(X0),
    sigmoid(X0),
    softplus(X0),
    X0**2,
    sp.Piecewise((X0, X0 > 0), (0, True)),
)


def nonnegative(rw: Rewriter, x: int) -> bool:
    """Whether every value of node ``x`` is known to be >= 0 (or nan)."""
    if _nonnegative_leaf(rw, x):
        return True
    if rw.expr(x) is None:
        return False
    e, leaves = view(rw, x, 2)
    signs = {
        sym(i): sp.Dummy(nonnegative=True) if _nonnegative_leaf(rw, a) else sp.Dummy(real=True)
        for i, a in enumerate(leaves)
    }
    return bool(e.xreplace(signs).is_nonnegative)


def _nonnegative_leaf(rw: Rewriter, x: int) -> bool:
    e = rw.expr(x)
    if e is not None:
        return e in _NONNEGATIVE or (e == PRODUCT and len(set(rw.args(x))) == 1)  # x * x
    if rw.op(x) == "softmax":
        return True
    u = uniform(rw, x)
    return u is not None and bool(u >= 0)


# ---- quotients that are 0/0 or inf/inf at the extremes -----------------------------------
@rewrite("softmax", "stabilize", "div", "mul")
def softmax_(rw: Rewriter, n: int):
    """exp(x) / sum(exp(x), axes, keepdims=True) -> softmax(x, axes) (other factors kept)."""
    sums = [a for a in reach(rw, n, 2) if rw.op(a) == "sum" and rw.attrs(a)["keepdims"]]
    if not sums:
        return None
    e, leaves = view(rw, n, 1)
    factors = sp.Mul.make_args(e)
    for s in sums:
        x = unary(rw, rw.args(s)[0], sp.exp)
        if x is None or s not in leaves:
            continue
        denominator = sym(leaves.index(s)) ** -1
        if denominator not in factors:
            continue
        exps = [sp.exp(sym(leaves.index(x)))] if x in leaves else []
        exps += [sym(leaves.index(rw.args(s)[0]))] if rw.args(s)[0] in leaves else []
        numerator = next((f for f in exps if f in factors), None)
        if numerator is None:
            continue
        rest = e / (numerator * denominator)
        if beyond_float64(rest) is not None:
            return None
        rest = build(rest, [rw.t(a) for a in leaves], rw.t(n))
        probabilities = ops.softmax(rw.t(x), rw.attrs(s)["axis"])
        return fit(rw, probabilities if rest == 1.0 else probabilities * rest, n)
    return None


@rewrite("div_cancel", "stabilize", "mul", "div")
def div_cancel(rw: Rewriter, n: int):
    """A quotient whose divisor also multiplies it: (a / b) * b -> a, (a * b) / b -> a,
    b / b -> 1, (g / s) * s * (1 - s) -> g * (1 - s). The quotient is never formed, so it is
    not 0/0 or inf/inf where the divisor is 0 or inf (the gradients of log(softmax),
    log(sigmoid), exp(log x) ...)."""
    if not _may_cancel(rw, n):
        return None
    written, leaves = view(rw, n, 2, evaluate=False)
    simplified, _ = view(rw, n, 2)
    if not _divisors(simplified) < _divisors(written) or beyond_float64(simplified) is not None:
        return None  # (x / (x - x) reads zoo once simplified: NumPy computes it as written)
    value = build(simplified, [rw.t(a) for a in leaves], rw.t(n))
    if isinstance(value, float):
        return full(rw, value, rw.shape(n), rw.dtype(n))
    return fit(rw, value, n)


def _may_cancel(rw: Rewriter, n: int) -> bool:
    """Cheap test: some node is read through two arguments of ``n`` and one divides."""
    args = rw.args(n)
    if len(set(args)) < len(args):
        return rw.expr(n) == QUOTIENT
    reaches = [reach(rw, a, 2) for a in args]  # what view(n, 2) reads below each argument
    if not reaches[0] & reaches[1]:
        return False
    return rw.expr(n) == QUOTIENT or any(
        _divides(rw.expr(m)) for r in reaches for m in r if rw.expr(m) is not None
    )


def _divisors(expr: sp.Expr) -> set:
    """The symbols that appear in a divisor of ``expr``."""
    return {s for p in parts(expr, sp.Pow) if p.exp.is_negative for s in p.base.free_symbols}


@rewrite("sigmoid", "stabilize", "mul", "div")
def sigmoid_(rw: Rewriter, n: int):
    """exp(x)**k / (1 + exp(x))**m -> sigmoid(x)**k * sigmoid(-x)**(m - k), for 0 < k <= m:
    exp(x)/(1 + exp(x)) and its derivatives written by hand (and softplus's gradient)."""
    if not any(_one_plus_exp_node(rw, a) for a in reach(rw, n, 3)):
        return None  # cheap: the view and SymPy's together below cost milliseconds
    e, leaves = view(rw, n, 3)
    factors = list(sp.Mul.make_args(sp.together(e)))  # a sum of quotients as one quotient
    for f in factors:
        u = _one_plus_exp(f)
        if u is None or not u.free_symbols:
            continue  # exp(2) / (1 + exp(2)) is a number, which folding computes
        m = -f.exp
        for g in factors:
            k = g.args[0] / u if isinstance(g, sp.exp) else None
            if k is not None and k.is_Integer and 0 < k <= m:
                rest = [h for h in factors if h is not f and h is not g]
                value = sp.Mul(*rest) * sigmoid(u) ** k * sigmoid(-u) ** (m - k)
                if beyond_float64(value) is not None:
                    return None
                return fit(rw, build(value, [rw.t(a) for a in leaves], rw.t(n)), n)
    return None


def _one_plus_exp_node(rw: Rewriter, a: int) -> bool:
    """Whether node ``a`` is a sum with an exp in it (its own, or an exp node it reads) that
    reads 1 + exp(u) when opened one level."""
    e = rw.expr(a)
    if e is None or not e.is_Add:
        return False
    if not e.has(sp.exp) and not any(isinstance(rw.expr(x), sp.exp) for x in rw.args(a)):
        return False
    return _one_plus_exp(1 / view(rw, a, 1)[0]) is not None


def _one_plus_exp(f: sp.Expr):
    """u when ``f`` is (1 + exp(u))**-m for a whole m > 0."""
    if not (f.is_Pow and f.exp.is_Integer and f.exp < 0 and f.base.is_Add):
        return None
    terms = f.base.args
    if len(terms) == 2 and 1 in terms:
        other = terms[0] if terms[1] == 1 else terms[1]
        if isinstance(other, sp.exp):
            return other.args[0]
    return None


# ---- softmax cross-entropy -------------------------------------------------------------------
def _class_sum(rw: Rewriter, n: int) -> tuple[int, int] | None:
    """(a, b) when ``n`` is sum(a * b) over the last axis, keepdims or not."""
    (m,) = rw.args(n)
    if rw.expr(m) != PRODUCT or rw.attrs(n)["axis"] != (len(rw.shape(m)) - 1,):
        return None
    a, b = rw.args(m)
    return a, b


@rewrite("softmax_cross_entropy", "stabilize", "sum")
def softmax_cross_entropy(rw: Rewriter, n: int):
    """sum(one_hot(y) * log_softmax(z), last axis) -> -cross_entropy(z, y): the fused op whose
    gradient is softmax(z) - one_hot(y)."""
    pair = _class_sum(rw, n)
    if pair is None or rw.attrs(n)["keepdims"]:
        return None
    for h, ls in (pair, pair[::-1]):
        if rw.op(h) != "one_hot" or rw.op(ls) != "log_softmax":
            continue
        (z,) = rw.args(ls)
        if rw.attrs(ls)["axis"] != (len(rw.shape(z)) - 1,) or rw.shape(h) != rw.shape(z):
            continue
        return fit(rw, ops.neg(ops.cross_entropy(rw.t(z), rw.t(rw.args(h)[0]))), n)
    return None


def _minus_one_hot_parts(rw: Rewriter, n: int) -> tuple | None:
    """(x, y, scale or None) of n = x - one_hot(y) over x's last axis, or of n already a
    minus_one_hot op; else None."""
    if rw.op(n) == "minus_one_hot":
        x, y, _, scale = ops.nn.residual_parts(rw.args(n), rw.attrs(n))
        return x, y, scale
    if rw.op(n) != "sub":
        return None
    x, h = rw.args(n)
    if rw.op(h) != "one_hot" or rw.expr(n) != X0 - sym(1) or rw.shape(h) != rw.shape(x):
        return None
    if not rw.dtype(x) == rw.attrs(h)["dtype"] == rw.dtype(n):
        return None
    return x, rw.args(h)[0], None


@rewrite("minus_one_hot", "simplify", "sub")
def minus_one_hot(rw: Rewriter, n: int):
    """x - one_hot(y) over x's last axis -> x with 1 taken off at each label (no one-hot
    matrix, no pass over it)."""
    parts = _minus_one_hot_parts(rw, n)
    if parts is None:
        return None
    x, y, _ = parts
    return fit(rw, ops.nn.minus_one_hot(rw.t(x), rw.t(y)), n)


@rewrite("softmax_minus_one_hot", "simplify", "sub", "minus_one_hot")
def softmax_minus_one_hot(rw: Rewriter, n: int):
    """softmax(z) - one_hot(y) over z's last axis (scaled or not) -> one fused op (the
    cross-entropy gradient, one pass instead of a softmax and a copy of it)."""
    parts = _minus_one_hot_parts(rw, n)
    if parts is None or rw.op(parts[0]) != "softmax" or rw.uses(parts[0]) != 1:
        return None  # (a softmax read elsewhere too is needed anyway)
    a, y, scale = parts
    (z,) = rw.args(a)
    if rw.attrs(a)["axis"] != (len(rw.shape(z)) - 1,) or rw.dtype(z) != rw.dtype(a):
        return None
    scale = None if scale is None else rw.t(scale)
    return fit(rw, ops.nn.softmax_minus_one_hot(rw.t(z), rw.t(y), None, scale), n)


def _sibling(rw: Rewriter, z: int, y: int, *ops_: str) -> int | None:
    """A node ``op(z, y, ...)`` reading the same logits and labels, if there is one."""
    for c in rw.graph.nx._succ[z]:
        if rw.op(c) in ops_ and rw.args(c)[:2] == [z, y]:
            return c
    return None


@rewrite("share_logsumexp", "simplify", "cross_entropy", "softmax_minus_one_hot")
def share_logsumexp(rw: Rewriter, n: int):
    """A cross-entropy and its gradient on the same logits: both from one logsumexp (the
    gradient is then exp(z - lse) - one_hot, with no second max and sum)."""
    z, y, lse, scale = ops.nn.residual_parts(rw.args(n), rw.attrs(n))
    if lse is not None or len(rw.shape(z)) < 1 or rw.dtype(z) != rw.dtype(n):
        return None  # (integer logits: their logsumexp is of another dtype)
    if rw.op(n) == "cross_entropy":
        # its gradient reads the softmax of the same logits (or already the fused residual)
        near = any(rw.op(c) == "softmax" for c in rw.graph.nx._succ[z])
        if not near and _sibling(rw, z, y, "softmax_minus_one_hot") is None:
            return None
        shared = ops.logsumexp(rw.t(z), -1)
        return fit(rw, ops.nn.cross_entropy_from_lse(rw.t(z), rw.t(y), shared), n)
    if _sibling(rw, z, y, "cross_entropy", "cross_entropy_from_lse") is None:
        return None
    shared = ops.logsumexp(rw.t(z), -1)
    scale = None if scale is None else rw.t(scale)
    return fit(rw, ops.nn.softmax_minus_one_hot(rw.t(z), rw.t(y), shared, scale), n)


@rewrite("scale_softmax_minus_one_hot", "simplify", "mul")
def scale_softmax_minus_one_hot(rw: Rewriter, n: int):
    """w * (softmax(z) - one_hot(y)) -> the fused op scaled by w, for w one value or one per
    row (the cross-entropy's cotangent, 1/batch for a mean loss): the scaling is done in the
    op's own pass over its result instead of a pass of its own. So too w * (x - one_hot(y))."""
    if rw.expr(n) != PRODUCT:
        return None
    a, b = rw.args(n)
    for r, w in ((a, b), (b, a)):
        if rw.op(r) not in _SCALABLE or rw.attrs(r).get("scaled") or rw.uses(r) != 1:
            continue
        scale = _row_scale(rw, w, rw.shape(r)) if rw.dtype(w) == rw.dtype(r) else None
        if scale is None:
            continue
        z, y, lse, _ = ops.nn.residual_parts(rw.args(r), rw.attrs(r))
        if rw.op(r) == "minus_one_hot":
            return fit(rw, ops.nn.minus_one_hot(rw.t(z), rw.t(y), scale), n)
        lse = None if lse is None else rw.t(lse)
        return fit(rw, ops.nn.softmax_minus_one_hot(rw.t(z), rw.t(y), lse, scale), n)
    return None


_SCALABLE = ("softmax_minus_one_hot", "minus_one_hot")


def _row_scale(rw: Rewriter, w: int, shape: tuple):
    """``w`` as one value (0-d) or one per row (shape[:-1] + (1,)), or None if it is neither."""
    value = uniform(rw, w)
    if value is not None:  # a constant: the one value as a scalar constant
        return full(rw, value, (), rw.dtype(w))
    one = _one_value(rw, w)
    if one is not None:
        return ops.reshape(rw.t(one), ()) if rw.shape(one) else rw.t(one)
    return rw.t(w) if rw.shape(w) == tuple(shape[:-1]) + (1,) else None


def _one_value(rw: Rewriter, n: int) -> int | None:
    """A node of one element that ``n`` copies everywhere (through broadcasts and reshapes)."""
    while any(d != 1 for d in rw.shape(n)):
        if rw.op(n) not in ("broadcast_to", "reshape"):
            return None
        n = rw.args(n)[0]
    return n


@rewrite("sum_one_hot", "simplify", "sum")
def sum_one_hot(rw: Rewriter, n: int):
    """sum(one_hot(y) * v, last axis) -> v, for v the same along that axis (one 1 per row)."""
    pair = _class_sum(rw, n)
    if pair is None:
        return None
    for h, v in (pair, pair[::-1]):
        shape = rw.shape(v)
        if rw.op(h) != "one_hot" or (shape and shape[-1] != 1):
            continue
        if rw.uses(h) == 1:  # the one_hot checks the labels' range: it must stay computed
            continue
        picked = ops.reshape(rw.t(v), shape[:-1]) if shape else rw.t(v)
        if rw.attrs(n)["keepdims"]:
            picked = ops.reshape(picked, picked.shape + (1,))
        return fit(rw, picked, n)
    return None


@rewrite("sum_neg", "canonicalize", "sum")
def sum_neg(rw: Rewriter, n: int):
    """sum(-x) -> -sum(x), where the negation is read only here."""
    (x,) = rw.args(n)
    if rw.expr(x) != NEG or rw.uses(x) != 1 or not is_float(rw.dtype(n)):
        return None  # an integer sum wraps around differently from its negation
    attrs = rw.attrs(n)
    return fit(rw, ops.neg(ops.sum(rw.t(rw.args(x)[0]), attrs["axis"], attrs["keepdims"])), n)


# ---- divisions cancelled across nodes ------------------------------------------------------
CANCEL_DEPTH = 4  # levels of elementwise arguments written out into one expression
CANCEL_MEMBERS = 24  # nodes written out, at most


@rewrite("cancel_division", "stabilize", ELEMENTWISE)
def cancel_division(rw: Rewriter, n: int):
    """A float elementwise node whose expression, written out over the elementwise nodes it
    reads, divides by what it also multiplies by -> one node computing that expression with
    the divisions cancelled (see ``fuse.simplify``), when none is left. The gradient of
    y log s + (1 - y) log(1 - s) through s = sigmoid(z) is (y / s - (1 - y) / (1 - s)) times
    s (1 - s), nan where s or 1 - s underflows to 0: written out, it is s - y. The nodes read
    are computed again inside the new one where something else reads them too."""
    if np.dtype(rw.dtype(n)).kind != "f" or not any(rw.is_elementwise(a) for a in rw.args(n)):
        return None
    if not _near_division(rw, n, 2):
        return None
    members = _elementwise_cone(rw, n)
    if piecewise_in_condition(rw, members):
        return None
    expr, leaves = group_expression(rw, members)
    if denominators(expr):
        return None
    return expression_node(rw, n, expr, leaves)


def _near_division(rw: Rewriter, n: int, depth: int) -> bool:
    """Whether elementwise node n or one it reads, ``depth`` levels deep, divides by a value
    that is not one number throughout (x / 2 cancels nothing)."""
    args = rw.args(n)
    if any(uniform(rw, args[i]) is None for i in _divisor_args(rw.expr(n))):
        return True
    return depth > 0 and any(
        rw.is_elementwise(a) and _near_division(rw, a, depth - 1) for a in args
    )


@functools.lru_cache(maxsize=4096)
def _divisor_args(expr: sp.Expr) -> frozenset[int]:
    """The arguments x_i that ``expr`` divides by."""
    return frozenset(index_of(s) for s in _divisors(expr))


@functools.lru_cache(maxsize=4096)
def _divides(expr: sp.Expr) -> bool:
    return bool(denominators(expr))


def _elementwise_cone(rw: Rewriter, n: int) -> list[int]:
    """n and the float elementwise nodes of its dtype it reads, CANCEL_DEPTH levels deep (at
    most CANCEL_MEMBERS), that a cancellation needs: those that divide, what they divide by,
    those reading that, and those between them and n (the rest stay arguments, computed
    once); arguments before the nodes reading them."""
    depth = {n: 0}
    stack = [n]
    while stack:
        m = stack.pop()
        if depth[m] == CANCEL_DEPTH:
            continue
        for a in rw.args(m):
            if a in depth or len(depth) == CANCEL_MEMBERS:
                continue
            if rw.is_elementwise(a) and rw.dtype(a) == rw.dtype(n):
                depth[a] = depth[m] + 1
                stack.append(a)
    order = arguments_first(rw, n, depth)
    dividing = {m for m in order if _divides(rw.expr(m))}
    divisors = {a for m in dividing for a in rw.args(m) if a in depth}
    # the dividing nodes, those reading a divisor (its factors), and all between them and n
    kept = dividing | {m for m in order if any(a in divisors for a in rw.args(m))}
    for m in order:
        if any(a in kept for a in rw.args(m)):
            kept.add(m)
    return [m for m in order if m in kept or m in divisors or m == n]
