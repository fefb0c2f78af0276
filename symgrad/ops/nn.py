"""Numerically stable neural-network ops: softmax, log_softmax, logsumexp, cross-entropy,
plus mse and maxout built from other ops."""

from __future__ import annotations

import functools

import numpy as np

from .. import runtime
from ..errors import ShapeError, format_shape
from ..graph import Tensor, numeric_dtype
from .elementwise import apply_elementwise, lift
from .reductions import expand, max, mean, sum
from .registry import OPS, Op, register
from .shapes import compatible, flag, normalize_axes, reduced_shape
from .structural import _nb, reshape


@functools.cache
def exp_dtype(dtype: str) -> str:
    """The dtype these ops give on ``dtype``: NumPy's for exp (integers and bools become floats)."""
    return np.exp(np.ones((1,), dtype=dtype)).dtype.name


def _same(types, attrs):
    return types[0].shape, exp_dtype(types[0].dtype)


def _softmax_into(ctx, out: str, args: list[str], attrs: dict) -> str:
    shape = ctx.node_shape
    work = None if shape is None else runtime.softmax_workspace(shape, attrs["axis"])
    kept = "" if work is None else ", " + ctx.scratch(work, ctx.node_dtype, "softmax")
    return f"rt.softmax({args[0]}, {attrs['axis']!r}, {out}{kept})"


register(
    Op(
        "softmax",
        attrs={"axis": "ints"},
        infer=_same,
        impl=lambda a, at: runtime.softmax(a[0], at["axis"]),
        emit=lambda ctx, a, at: f"rt.softmax({a[0]}, {at['axis']!r})",
        emit_into=_softmax_into,
    )
)
register(
    Op(
        "log_softmax",
        attrs={"axis": "ints"},
        infer=_same,
        impl=lambda a, at: runtime.log_softmax(a[0], at["axis"]),
        emit=lambda ctx, a, at: f"rt.log_softmax({a[0]}, {at['axis']!r})",
    )
)
register(
    Op(
        "logsumexp",
        attrs={"axis": "ints", "keepdims": "bool"},
        infer=lambda types, at: (
            reduced_shape(types[0].shape, at["axis"], at["keepdims"]),
            exp_dtype(types[0].dtype),
        ),
        impl=lambda a, at: np.asarray(runtime.logsumexp(a[0], at["axis"], at["keepdims"])),
        emit=lambda ctx, a, at: f"rt.logsumexp({a[0]}, {at['axis']!r}, {at['keepdims']!r})",
        emit_into=lambda ctx, out, a, at: (
            f"rt.logsumexp({a[0]}, {at['axis']!r}, {at['keepdims']!r}, {out})"
        ),
    )
)


def softmax(x: Tensor, axis=-1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, computed without overflow."""
    return x.graph.apply("softmax", [x], {"axis": normalize_axes(axis, x.ndim)})


def log_softmax(x: Tensor, axis=-1) -> Tensor:
    """x - logsumexp(x) along ``axis``: finite for any finite logits."""
    return x.graph.apply("log_softmax", [x], {"axis": normalize_axes(axis, x.ndim)})


def logsumexp(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``axis``, computed without overflow."""
    axes = normalize_axes(axis, x.ndim)
    return x.graph.apply("logsumexp", [x], {"axis": axes, "keepdims": flag(keepdims, "keepdims")})


def _shift(node, t):
    return tuple(a + _nb(t, node.args[0]) for a in node.attrs["axis"])


def _softmax_vjp(node, g, needed):
    gs = g * node
    return [gs - node * sum(gs, _shift(node, g), keepdims=True)]


def _softmax_jvp(node, tangents):
    (t,) = tangents
    return None if t is None else node * (t - sum(node * t, _shift(node, t), keepdims=True))


def _log_softmax_vjp(node, g, needed):
    (x,) = node.args
    axes = node.attrs["axis"]
    return [g - softmax(x, axes) * sum(g, _shift(node, g), keepdims=True)]


def _log_softmax_jvp(node, tangents):
    (t,) = tangents
    if t is None:
        return None
    s = softmax(node.args[0], node.attrs["axis"])
    return t - sum(s * t, _shift(node, t), keepdims=True)


def _logsumexp_vjp(node, g, needed):
    (x,) = node.args
    axes = node.attrs["axis"]
    nb = g.ndim - node.ndim
    return [expand(g, x, axes, node.attrs["keepdims"], nb) * softmax(x, axes)]


def _logsumexp_jvp(node, tangents):
    (t,) = tangents
    if t is None:
        return None
    s = softmax(node.args[0], node.attrs["axis"])
    return sum(s * t, _shift(node, t), node.attrs["keepdims"])


OPS["softmax"].vjp, OPS["softmax"].jvp = _softmax_vjp, _softmax_jvp
OPS["log_softmax"].vjp, OPS["log_softmax"].jvp = _log_softmax_vjp, _log_softmax_jvp
OPS["logsumexp"].vjp, OPS["logsumexp"].jvp = _logsumexp_vjp, _logsumexp_jvp


# ---- cross-entropy with integer labels ---------------------------------------------------------
def _infer_xent(types, attrs):
    z, y = types
    if len(z.shape) < 1 or not compatible(y.shape, z.shape[:-1]):
        raise ShapeError(
            f"cross_entropy: labels {format_shape(y.shape)} must have the logits' shape "
            f"{format_shape(z.shape)} without its last (class) axis"
        )
    if not np.issubdtype(np.dtype(y.dtype), np.integer):
        raise ShapeError(f"cross_entropy: labels must be integers, got {y.dtype}")
    return z.shape[:-1], exp_dtype(z.dtype)


register(
    Op(
        "cross_entropy",
        attrs={},
        infer=_infer_xent,
        impl=lambda a, at: np.asarray(runtime.cross_entropy(a[0], a[1])),
        emit=lambda ctx, a, at: f"rt.cross_entropy({a[0]}, {a[1]})",
        arity=(2, 2),
    )
)


def residual_parts(args, attrs) -> tuple:
    """(logits, labels, logsumexp or None, scale or None) of a softmax_minus_one_hot node's
    arguments (node ids, types or arrays): the scale comes last when ``attrs["scaled"]``."""
    z, y, *rest = args
    scale = rest.pop() if attrs.get("scaled") else None
    return z, y, (rest[0] if rest else None), scale


def _infer_one_hot_residual(types, attrs):
    z, y, lse, scale = residual_parts(types, attrs)
    if not compatible(y.shape, z.shape[:-1]) or not np.issubdtype(np.dtype(y.dtype), np.integer):
        raise ShapeError(
            f"labels {format_shape(y.shape)} {y.dtype} do not fit logits {format_shape(z.shape)}"
        )
    if lse is not None and (not compatible(lse.shape, z.shape[:-1]) or lse.dtype != z.dtype):
        raise ShapeError(f"logsumexp {format_shape(lse.shape)} does not fit the logits")
    if scale is not None:
        per_row = not scale.shape or compatible(scale.shape, tuple(z.shape[:-1]) + (1,))
        if not per_row or scale.dtype != z.dtype:
            raise ShapeError(f"scale {format_shape(scale.shape)} is not one value or one per row")
    return z.shape, z.dtype


def _infer_one_hot(types, attrs):
    (y,) = types
    return tuple(y.shape) + (attrs["depth"],), attrs["dtype"]


register(
    Op(
        "one_hot",
        attrs={"depth": "int", "dtype": "dtype"},
        infer=_infer_one_hot,
        impl=lambda a, at: runtime.one_hot(a[0], at["depth"], at["dtype"]),
        emit=lambda ctx, a, at: f"rt.one_hot({a[0]}, {at['depth']!r}, {ctx.literal(at['dtype'])})",
        differentiable=False,
    )
)


def one_hot(labels: Tensor, depth: int, dtype: str = "float64") -> Tensor:
    """Rows of ``depth`` zeros with a one at each integer label."""
    if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
        raise ShapeError(f"one_hot depth must be a positive int, got {depth!r}")
    if not np.issubdtype(np.dtype(labels.dtype), np.integer):
        raise ShapeError(f"one_hot labels must be integers, got {labels.dtype}")
    dtype = numeric_dtype(dtype, "one_hot")
    return labels.graph.apply("one_hot", [labels], {"depth": int(depth), "dtype": dtype})


def _xent_residual(node) -> Tensor:
    """softmax(z) - one_hot(y): d loss / d logits per example."""
    z, y = node.args
    return softmax(z, -1) - one_hot(y, z.shape[-1], z.dtype)


def _xent_vjp(node, g, needed):
    return [reshape(g, g.shape + (1,)) * _xent_residual(node), None]


def _xent_jvp(node, tangents):
    t, _ = tangents
    return None if t is None else sum(_xent_residual(node) * t, -1)


OPS["cross_entropy"].vjp, OPS["cross_entropy"].jvp = _xent_vjp, _xent_jvp


def _residual_op(name: str, impl, arity: tuple[int, int]) -> None:
    """Register an op over (logits or x, labels, [logsumexp], [scale]) that writes itself by
    the runtime function of its name (made by rewrites of compiled graphs, after
    differentiation, so with no derivatives of its own)."""

    def call(args, attrs, out=None) -> str:
        z, y, lse, scale = residual_parts(args, attrs)
        extra = {"lse": lse, "scale": scale, "out": out}
        keywords = "".join(f", {k}={v}" for k, v in extra.items() if v is not None)
        return f"rt.{name}({z}, {y}{keywords})"

    register(
        Op(
            name,
            attrs={"scaled": "bool"},
            infer=_infer_one_hot_residual,
            impl=impl,
            emit=lambda ctx, a, at: call(a, at),
            emit_into=lambda ctx, out, a, at: call(a, at, out),
            arity=arity,
            differentiable=False,
        )
    )


def _minus_parts(args, attrs) -> tuple:
    x, y, _, scale = residual_parts(args, attrs)
    return x, y, scale


# softmax(z) - one_hot(y) in one pass: what the cross-entropy gradient computes (optional
# arguments: the logits' logsumexp, when the forward pass has it, and a scale, the cotangent
# of the losses, when ``scaled``)
_residual_op(
    "softmax_minus_one_hot",
    lambda a, at: runtime.softmax_minus_one_hot(*residual_parts(a, at)),
    (2, 4),
)
# scale * (x - one_hot(y)) over x's last axis, with no one-hot matrix, where the softmax is
# needed anyway (else softmax_minus_one_hot); an optional scale as there
_residual_op("minus_one_hot", lambda a, at: runtime.minus_one_hot(*_minus_parts(a, at)), (2, 3))


def minus_one_hot(x: Tensor, labels: Tensor, scale: Tensor | None = None) -> Tensor:
    """scale * (x - one_hot(labels, x.shape[-1], x.dtype)), without the one-hot matrix;
    ``scale`` one value or one per row (shape (..., 1))."""
    args, attrs = ([x, labels], {}) if scale is None else ([x, labels, scale], {"scaled": True})
    return x.graph.apply("minus_one_hot", args, attrs)


# the cross-entropy from a logsumexp computed once for it and for its gradient
register(
    Op(
        "cross_entropy_from_lse",
        attrs={},
        infer=lambda types, at: (_infer_one_hot_residual(types, at)[0][:-1], types[0].dtype),
        impl=lambda a, at: np.asarray(runtime.cross_entropy_from_lse(*a)),
        emit=lambda ctx, a, at: f"rt.cross_entropy_from_lse({', '.join(a)})",
        emit_into=lambda ctx, out, a, at: f"rt.cross_entropy_from_lse({', '.join(a)}, {out})",
        arity=(3, 3),
        differentiable=False,
    )
)


def softmax_minus_one_hot(
    logits: Tensor, labels: Tensor, lse: Tensor | None = None, scale: Tensor | None = None
) -> Tensor:
    """scale * (softmax(logits) - one_hot(labels)) in one op; ``lse`` is the logits'
    logsumexp if known, ``scale`` one value or one per row (shape (..., 1))."""
    args = [logits, labels] + [t for t in (lse, scale) if t is not None]
    attrs = {"scaled": True} if scale is not None else {}
    return logits.graph.apply("softmax_minus_one_hot", args, attrs)


def cross_entropy_from_lse(logits: Tensor, labels: Tensor, lse: Tensor) -> Tensor:
    return logits.graph.apply("cross_entropy_from_lse", [logits, labels, lse])


def cross_entropy(logits: Tensor, labels) -> Tensor:
    """Per-example softmax cross-entropy of ``logits`` (..., classes) against integer labels.

    Returns the logits' shape without the class axis (PyTorch's ``reduction="none"``).
    """
    (logits, labels) = lift(logits, labels)
    if logits.ndim and isinstance(logits.shape[-1], str):
        raise ShapeError("cross_entropy needs a concrete number of classes")
    return logits.graph.apply("cross_entropy", [logits, labels])


def mse(pred, target) -> Tensor:
    """Mean squared error over all elements (a scalar)."""
    d = apply_elementwise("sub", pred, target)
    return mean(apply_elementwise("square", d))


def maxout(x: Tensor, pieces: int) -> Tensor:
    """Max over groups of ``pieces`` consecutive units of the last axis: (..., n*k) -> (..., n)."""
    last = x.shape[-1]
    if not isinstance(pieces, (int, np.integer)) or pieces < 1:
        raise ShapeError(f"maxout pieces must be a positive int, got {pieces!r}")
    if isinstance(last, str) or last % pieces:
        raise ShapeError(f"maxout: last dim {last!r} is not a multiple of {pieces}")
    return max(reshape(x, x.shape[:-1] + (last // pieces, pieces)), -1)


def head_call(args: list[str], attrs: dict, losses: str, grad: str, work: str | None) -> str:
    """Source of the fused cross-entropy head (``symgrad/compile/head.py``): given the
    arguments of its softmax_minus_one_hot node, writes the losses and the gradient (``work``
    a kept array of ``runtime.head_workspace`` for it, if any)."""
    z, y, _, scale = residual_parts(args, attrs)
    extra = ("" if scale is None else f", {scale}") + ("" if work is None else f", work={work}")
    return f"rt.softmax_cross_entropy({z}, {y}, {losses}, {grad}{extra})"
