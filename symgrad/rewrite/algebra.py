"""Algebraic simplification: identities, canonical signs and divisions, and structural ops
that cancel or collapse. Each rule matches elementwise nodes by their expression, so a named
``mul`` and an anonymous ``expr`` node computing x0*x1 meet the same rules."""

from __future__ import annotations

import numpy as np

from .. import ops
from ..ops.reductions import count
from ..ops.shapes import broadcast_shapes, reduced_shape
from .manager import ELEMENTWISE, Rewriter, rewrite
from .match import DIFFERENCE, NEG, QUOTIENT, RECIPROCAL, X0, X1, fit, full, is_value

# ---- identities: one argument is a known constant ----------------------------------------
# name -> (op matched, argument positions that may hold the constant, its value, result, doc)
IDENTITIES = {
    "mul_one": ("mul", (0, 1), 1, "other", "x * 1 -> x"),
    "mul_zero": ("mul", (0, 1), 0, "zeros", "x * 0 -> zeros of the product's shape"),
    "mul_minus_one": ("mul", (0, 1), -1, "neg", "x * -1 -> -x"),
    "add_zero": ("add", (0, 1), 0, "other", "x + 0 -> x"),
    "sub_zero": ("sub", (1,), 0, "other", "x - 0 -> x"),
    "zero_sub": ("sub", (0,), 0, "neg", "0 - x -> -x"),
    "div_one": ("div", (1,), 1, "other", "x / 1 -> x"),
    "pow_one": ("pow", (1,), 1, "other", "x ** 1 -> x"),
    "pow_zero": ("pow", (1,), 0, "ones", "x ** 0 -> ones"),
    "pow_two": ("pow", (1,), 2, "square", "x ** 2 -> square(x), one multiply in place"),
}


def _identity(positions, value, result, doc):
    def rule(rw: Rewriter, n: int):
        args = rw.args(n)
        for i in positions:
            if is_value(rw, args[i], value):
                if result == "zeros":  # x * 0 is 0 for every finite x: keep it symbolic
                    return full(rw, 0, rw.shape(n), rw.dtype(n))
                if result == "ones":
                    return full(rw, 1, rw.shape(n), rw.dtype(n))
                other = fit(rw, args[1 - i], n)
                if other is None:
                    return None
                return {"neg": ops.neg, "square": ops.square}.get(result, lambda t: t)(other)
        return None

    rule.__doc__ = doc + " (the constant may be any array of that one value)."
    return rule


for _name, (_op, _positions, _value, _result, _doc) in IDENTITIES.items():
    rewrite(_name, "canonicalize", _op)(_identity(_positions, _value, _result, _doc))


# ---- signs: negations move outward, where they cancel or fold into add and sub ------------
def unary_neg(rw: Rewriter, n: int) -> int | None:
    """x when node ``n`` is -x of floats (an integer's negation wraps around, -uint8(1) is
    255: moved past a promotion to float, it would change the value)."""
    e = rw.expr(n)
    if e is None or e != NEG or np.dtype(rw.dtype(n)).kind != "f":
        return None
    return rw.args(n)[0]


def recip_arg(rw: Rewriter, n: int) -> int | None:
    """x when node ``n`` is 1/x (``expr`` 1/x0, or div(1, x) of x's shape)."""
    e = rw.expr(n)
    if e is None:
        return None
    if e == RECIPROCAL:
        return rw.args(n)[0]
    if e == QUOTIENT:
        one, x = rw.args(n)
        if is_value(rw, one, 1) and rw.shape(x) == rw.shape(n):
            return x
    return None


@rewrite("neg_neg", "canonicalize", "neg")
def neg_neg(rw: Rewriter, n: int):
    """--x -> x."""
    inner = unary_neg(rw, rw.args(n)[0])
    return None if inner is None else fit(rw, inner, n)


@rewrite("neg_sub", "canonicalize", "neg")
def neg_sub(rw: Rewriter, n: int):
    """-(a - b) -> b - a."""
    (s,) = rw.args(n)
    if rw.expr(s) != DIFFERENCE:
        return None
    a, b = rw.args(s)
    return fit(rw, ops.sub(rw.t(b), rw.t(a)), n)


@rewrite("sub_neg", "canonicalize", "sub")
def sub_neg(rw: Rewriter, n: int):
    """a - (-b) -> a + b."""
    a, b = rw.args(n)
    inner = unary_neg(rw, b)
    return None if inner is None else fit(rw, ops.add(rw.t(a), rw.t(inner)), n)


@rewrite("add_neg", "canonicalize", "add")
def add_neg(rw: Rewriter, n: int):
    """a + (-b) -> a - b and (-a) + b -> b - a."""
    a, b = rw.args(n)
    nb, na = unary_neg(rw, b), unary_neg(rw, a)
    if nb is not None:
        return fit(rw, ops.sub(rw.t(a), rw.t(nb)), n)
    if na is not None:
        return fit(rw, ops.sub(rw.t(b), rw.t(na)), n)
    return None


def _product_signs(combine, symbol):
    def rule(rw: Rewriter, n: int):
        a, b = rw.args(n)
        na, nb = unary_neg(rw, a), unary_neg(rw, b)
        if na is not None and nb is not None:  # (-a) * (-b) -> a * b
            return fit(rw, combine(rw.t(na), rw.t(nb)), n)
        # (-a) * b -> -(a * b), where the negation is read only here
        if na is not None and rw.uses(a) == 1:
            return fit(rw, ops.neg(combine(rw.t(na), rw.t(b))), n)
        if nb is not None and rw.uses(b) == 1:
            return fit(rw, ops.neg(combine(rw.t(a), rw.t(nb))), n)
        return None

    rule.__doc__ = f"(-a) {symbol} (-b) -> a {symbol} b and (-a) {symbol} b -> -(a {symbol} b)."
    return rule


rewrite("mul_neg", "canonicalize", "mul")(_product_signs(ops.mul, "*"))
rewrite("div_neg", "canonicalize", "div")(_product_signs(ops.div, "/"))


@rewrite("div_recip", "canonicalize", "mul")
def div_recip(rw: Rewriter, n: int):
    """a * (1/b) -> a / b."""
    a, b = rw.args(n)
    for x, r in ((a, b), (b, a)):
        inner = recip_arg(rw, r)
        if inner is not None:
            return fit(rw, ops.div(rw.t(x), rw.t(inner)), n)
    return None


# ---- structural ops that cancel or collapse -----------------------------------------------
@rewrite("stop_gradient", "canonicalize", "stop_gradient")
def stop_gradient(rw: Rewriter, n: int):
    """stop_gradient(x) -> x: derivatives are all built before compiling, so it is x."""
    return rw.t(rw.args(n)[0])


@rewrite("view_noop", "canonicalize", "reshape", "broadcast_to", "transpose")
def view_noop(rw: Rewriter, n: int):
    """reshape/broadcast_to to the shape it has, transpose by the identity -> x."""
    (x,) = rw.args(n)
    if rw.op(n) == "transpose":
        axes = rw.attrs(n)["axes"]
        return rw.t(x) if tuple(axes) == tuple(range(len(axes))) else None
    return rw.t(x) if rw.shape(x) == rw.shape(n) else None


@rewrite("transpose_transpose", "canonicalize", "transpose")
def transpose_transpose(rw: Rewriter, n: int):
    """(x.T).T -> x; any two transposes -> one."""
    (t,) = rw.args(n)
    if rw.op(t) != "transpose":
        return None
    (x,) = rw.args(t)
    inner, outer = rw.attrs(t)["axes"], rw.attrs(n)["axes"]
    return ops.transpose(rw.t(x), tuple(inner[a] for a in outer))


@rewrite("reshape_reshape", "canonicalize", "reshape")
def reshape_reshape(rw: Rewriter, n: int):
    """reshape(reshape(x)) -> reshape(x)."""
    (r,) = rw.args(n)
    if rw.op(r) != "reshape":
        return None
    (x,) = rw.args(r)
    return ops.reshape(rw.t(x), rw.shape(n))


@rewrite("broadcast_broadcast", "canonicalize", "broadcast_to")
def broadcast_broadcast(rw: Rewriter, n: int):
    """broadcast_to(broadcast_to(x)) -> broadcast_to(x)."""
    (b,) = rw.args(n)
    if rw.op(b) != "broadcast_to":
        return None
    (x,) = rw.args(b)
    return ops.broadcast_to(rw.t(x), rw.shape(n))


@rewrite("reduce_keepdims", "canonicalize", "reshape")
def reduce_keepdims(rw: Rewriter, n: int):
    """reshape(sum(x, axes), keepdims shape) -> sum(x, axes, keepdims=True) (also mean/max/min)."""
    (s,) = rw.args(n)
    op = rw.op(s)
    if op not in ("sum", "mean", "max", "min") or rw.attrs(s)["keepdims"]:
        return None
    (x,) = rw.args(s)
    axes = rw.attrs(s)["axis"]
    if reduced_shape(rw.shape(x), axes, True) != rw.shape(n):
        return None
    return getattr(ops, op)(rw.t(x), axes, keepdims=True)


@rewrite("elementwise_broadcast", "canonicalize", ELEMENTWISE)
def elementwise_broadcast(rw: Rewriter, n: int):
    """f(broadcast_to(a), b) -> f(a, b) where NumPy's own broadcasting gives the same shape."""
    args = rw.args(n)
    if not any(rw.op(a) == "broadcast_to" for a in args):
        return None
    shape = rw.shape(n)
    new = list(args)
    changed = False
    for i, a in enumerate(args):
        if rw.op(a) != "broadcast_to":
            continue
        trial = new[:i] + [rw.args(a)[0]] + new[i + 1 :]
        if broadcast_shapes(*[rw.shape(x) for x in trial]) == shape:
            new, changed = trial, True
    if not changed:
        return None
    return rw.graph.apply(rw.op(n), [rw.t(a) for a in new], rw.attrs(n))


@rewrite("reshape_elementwise", "canonicalize", "reshape")
def reshape_elementwise(rw: Rewriter, n: int):
    """reshape(f(a, b)) -> f(reshape(a), reshape(b)), for f elementwise on equal shapes (the
    reshape moves toward the leaves, where reshapes collapse and reductions keep their dims)."""
    (f,) = rw.args(n)
    if not rw.is_elementwise(f) or rw.uses(f) != 1:
        return None
    fshape = rw.shape(f)
    args = rw.args(f)
    if any(rw.shape(a) not in (fshape, ()) for a in args):
        return None
    if all(rw.shape(a) == () for a in args):
        return None
    shape = rw.shape(n)
    moved = [rw.t(a) if rw.shape(a) == () else ops.reshape(rw.t(a), shape) for a in args]
    return rw.graph.apply(rw.op(f), moved, rw.attrs(f))


@rewrite("reduce_broadcast", "simplify", "sum", "mean")
def reduce_broadcast(rw: Rewriter, n: int):
    """sum(broadcast_to(x), axes) -> sum over x's own axes, times the broadcast count; the
    reduction reads x instead of the broadcast array (mean: no count)."""
    (b,) = rw.args(n)
    if rw.op(b) != "broadcast_to":
        return None
    (x,) = rw.args(b)
    if rw.dtype(n) != rw.dtype(x):  # sums of ints and bools change dtype: leave them
        return None
    op, big, small = rw.op(n), rw.shape(b), rw.shape(x)
    axes, keepdims = rw.attrs(n)["axis"], rw.attrs(n)["keepdims"]
    lead = len(big) - len(small)
    spread = [a for a in axes if a < lead or (small[a - lead] == 1 and big[a] != 1)]
    own = [a - lead for a in axes if a not in spread]
    y = rw.t(x)
    if own:
        y = getattr(ops, op)(y, own, keepdims=True)
    if lead:
        y = ops.reshape(y, (1,) * lead + y.shape)
    y = ops.broadcast_to(y, tuple(1 if i in axes else d for i, d in enumerate(big)))
    if not keepdims:
        y = ops.reshape(y, reduced_shape(big, axes, False))
    if op == "sum" and spread:
        k = count(rw.t(b), tuple(spread))
        y = y * (rw.graph.constant(np.asarray(k, dtype=rw.dtype(n))) if isinstance(k, float) else k)
    return fit(rw, y, n)


# ---- scatters into neighbouring slices: one concatenate ---------------------------------
def _slab(rw: Rewriter, n: int):
    """(axis, start, stop) when node n is index_add(g) writing g into one slice of one axis
    (every other axis taken whole), else None."""
    if rw.op(n) != "index_add" or len(rw.args(n)) != 1:
        return None
    attrs = rw.attrs(n)
    shape, index = attrs["shape"], attrs["index"]
    if len(index) != len(shape) or any(item[0] != "slice" for item in index):
        return None
    cut = [k for k, item in enumerate(index) if item[1:] not in ((None, None, None),)]
    if len(cut) != 1:
        return None
    axis = cut[0]
    _, start, stop, step = index[axis]
    size = shape[axis]
    if step not in (None, 1) or isinstance(size, str):
        return None
    start, stop, _ = slice(start, stop).indices(size)
    return axis, start, stop


@rewrite("scatter_concat", "simplify", "add")
def scatter_concat(rw: Rewriter, n: int):
    """index_add(a, [i:j]) + index_add(b, [j:k]) -> index_add(concatenate(a, b), [i:k]), or
    just the concatenation when it fills the axis: one array instead of two of zeros."""
    if rw.expr(n) != X0 + X1:
        return None
    a, b = rw.args(n)
    sa, sb = _slab(rw, a), _slab(rw, b)
    if sa is None or sb is None or sa[0] != sb[0] or rw.attrs(a)["shape"] != rw.attrs(b)["shape"]:
        return None
    if sb[2] == sa[1]:  # b's slice comes first
        a, b, sa, sb = b, a, sb, sa
    if sa[2] != sb[1]:
        return None
    axis, shape = sa[0], rw.attrs(a)["shape"]
    (ga,), (gb,) = rw.args(a), rw.args(b)
    joined = ops.concatenate([rw.t(ga), rw.t(gb)], axis=axis)
    if (sa[1], sb[2]) == (0, shape[axis]):
        return fit(rw, joined, n)
    index = tuple(
        ("slice", sa[1], sb[2], None) if k == axis else ("slice", None, None, None)
        for k in range(len(shape))
    )
    return fit(rw, rw.graph.apply("index_add", [joined], {"shape": shape, "index": index}), n)
