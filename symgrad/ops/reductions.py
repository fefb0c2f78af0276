"""Reductions over axes: sum, mean, max, min (axis None | int | tuple, keepdims)."""

from __future__ import annotations

import functools

import numpy as np

from ..errors import ShapeError
from ..graph import Tensor
from .registry import OPS, Op, register
from .shapes import flag, normalize_axes, reduced_shape
from .structural import _nb, broadcast_to, equal, reshape, where

_NUMPY = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min}
# the ufunc reductions are the same computation as np.sum & co. with less call overhead
_REDUCER = {"sum": "np.add", "mean": "np.add", "max": "np.maximum", "min": "np.minimum"}
_FLOATS = ("float32", "float64")  # the dtypes BLAS and einsum's fast loops take


def _infer_for(name):
    fn = _NUMPY[name]

    def infer(types, attrs):
        (x,) = types
        axes = attrs["axis"]
        if normalize_axes(axes, len(x.shape)) != tuple(axes):  # graphs imported from networkx
            raise ShapeError(f"{name}: axis {axes} is not a sorted tuple of axes of {x.shape}")
        if attrs.get("nonempty") and any(x.shape[a] == 0 for a in axes):
            raise ShapeError(f"max/min over an empty axis {axes} of shape {x.shape}")
        return reduced_shape(x.shape, axes, attrs["keepdims"]), _result_dtype(fn, x.dtype)

    return infer


@functools.cache
def _result_dtype(fn, dtype: str) -> str:
    # NumPy's own promotion: the sum of bools or int32s is int64, the mean of ints float64
    return np.asarray(fn(np.ones((1,), dtype=dtype))).dtype.name


def _register(name):
    fn = _NUMPY[name]
    register(
        Op(
            name,
            attrs={"axis": "ints", "keepdims": "bool", "nonempty": "bool"},
            infer=_infer_for(name),
            impl=lambda a, at: np.asarray(fn(a[0], axis=at["axis"], keepdims=at["keepdims"])),
            emit=lambda ctx, a, at: _emit(name, ctx, a[0], at, None),
            emit_into=lambda ctx, out, a, at: _emit(name, ctx, a[0], at, out),
        )
    )

    def reduce(x: Tensor, axis=None, keepdims: bool = False) -> Tensor:
        axes = normalize_axes(axis, x.ndim)
        if not axes and name != "mean":
            return x
        attrs = {"axis": axes, "keepdims": flag(keepdims, "keepdims")}
        if name in ("max", "min"):
            attrs["nonempty"] = True
        return x.graph.apply(name, [x], attrs)

    reduce.__name__ = name
    reduce.__doc__ = f"{name} over ``axis`` (None = all), keeping reduced axes if ``keepdims``."
    return reduce


def _emit(name: str, ctx, x: str, attrs: dict, out: str | None) -> str:
    axes, keepdims = attrs["axis"], attrs["keepdims"]
    if name == "sum":
        faster = _sum_by_blas(ctx, x, axes, keepdims, out) or _middle_sum(ctx, x, axes, out)
        if faster is not None:
            return faster
    if name != "mean":
        return f"{_REDUCER[name]}.reduce({x}, {axes!r}, None, {out}, {keepdims!r})"
    # summed in the mean's own float dtype, as np.mean does (int64 sums would wrap around)
    dtype = ctx.const(np.dtype(ctx.node_dtype), "k") if ctx.node_dtype else None
    call = f"np.add.reduce({x}, {axes!r}, {dtype}, {out}, {keepdims!r})"
    # the mean divides by the number of reduced elements, read off the argument's shape
    count = " * ".join(f"{x}.shape[{a}]" for a in axes) or "1"
    if out is None:  # the operator: NumPy's scalar division when the sum is one number
        return f"{call} / ({count})" if len(axes) > 1 else f"{call} / {count}"
    return f"{call}; np.true_divide({out}, {count}, out={out})"


def _sum_by_blas(ctx, x: str, axes: tuple, keepdims: bool, out: str | None) -> str | None:
    """A matrix's column sums (a bias gradient) as a vector of ones times the matrix: BLAS
    gemv runs 1.5 to 8 times faster than NumPy's reduction across rows, and sums with more
    accumulators. None where that does not apply. (Row sums stay NumPy's pairwise sums: in a
    softmax's derivative they feed a difference that cancels.)"""
    shapes, dtype = ctx.arg_shapes, ctx.node_dtype
    if not shapes or len(shapes[0]) != 2 or axes != (0,) or 0 in shapes[0]:
        return None
    if dtype not in _FLOATS:
        return None
    target = ctx.contiguous(out)
    if out is not None and (target is None or target.dtype != dtype):
        return None  # np.dot writes only into a C-contiguous array of its own dtype
    ones = ctx.filled(1, (1, shapes[0][0]) if keepdims else (shapes[0][0],), dtype)
    return f"np.dot({ones}, {x}, {out})" if out is not None else f"np.dot({ones}, {x})"


def _middle_sum(ctx, x: str, axes: tuple, out: str | None) -> str | None:
    """The sum over the middle axis of a 3-D float array as ``np.einsum``: the same additions
    in the same order as NumPy's reduction (equal to the last bit), 2 to 4 times faster."""
    shapes = ctx.arg_shapes
    if not shapes or len(shapes[0]) != 3 or axes != (1,) or ctx.node_dtype not in _FLOATS:
        return None
    if len(ctx.node_shape) != 2:  # keepdims: einsum writes no axis of length 1
        return None
    return f"np.einsum('ijk->ik', {x}" + (f", out={out})" if out is not None else ")")


sum = _register("sum")  # noqa: A001
mean = _register("mean")
max = _register("max")  # noqa: A001
min = _register("min")  # noqa: A001


def expand(g: Tensor, x: Tensor, axes, keepdims: bool, nb: int = 0) -> Tensor:
    """Broadcast a reduced value back to x's shape (keeping ``nb`` leading batch axes)."""
    batch = g.shape[:nb]
    if not keepdims:
        g = reshape(g, batch + reduced_shape(x.shape, axes, True))
    return broadcast_to(g, batch + x.shape)


# ---- numel: the (possibly symbolic) element count of some dims, for mean ----------------
register(
    Op(
        "numel",
        attrs={"dims": "shape", "dtype": "dtype"},
        infer=lambda types, at: ((), at["dtype"]),
        impl=lambda a, at: np.array(np.prod(at["dims"], dtype=np.int64), dtype=at["dtype"]),
        emit=lambda ctx, a, at: (
            f"np.asarray(np.prod({ctx.shape(at['dims'])}), dtype={ctx.literal(at['dtype'])})"
        ),
        arity=(0, 0),
        shape_attrs=("dims",),
    )
)


def count(x: Tensor, axes) -> float | Tensor:
    """Number of elements of x over ``axes``: a number, or a node when a dim is symbolic."""
    dims = tuple(x.shape[a] for a in axes)
    if not any(isinstance(d, str) for d in dims):
        return float(np.prod(dims, dtype=np.int64))
    return x.graph.apply("numel", [], {"dims": dims, "dtype": x.dtype})


# ---- derivatives ----------------------------------------------------------------------------
def _sum_vjp(node, g, needed):
    (x,) = node.args
    return [expand(g, x, node.attrs["axis"], node.attrs["keepdims"], _nb(g, node))]


def _mean_vjp(node, g, needed):
    (x,) = node.args
    n = count(x, node.attrs["axis"])
    return [expand(g / n, x, node.attrs["axis"], node.attrs["keepdims"], _nb(g, node))]


def _shifted(node, t):
    (x,) = node.args
    nb = _nb(t, x)
    return tuple(a + nb for a in node.attrs["axis"])


def _sum_jvp(node, tangents):
    (t,) = tangents
    return None if t is None else sum(t, _shifted(node, t), node.attrs["keepdims"])


def _mean_jvp(node, tangents):
    (t,) = tangents
    return None if t is None else mean(t, _shifted(node, t), node.attrs["keepdims"])


def _argmax_weights(node) -> Tensor:
    """Where x attains its max/min, 1/(number of ties); 0 elsewhere."""
    (x,) = node.args
    axes, keepdims = node.attrs["axis"], node.attrs["keepdims"]
    one, zero = (x.graph.constant(np.array(v, dtype=x.dtype)) for v in (1, 0))
    # selected by where, not cast from bool: piecewise constant, so higher orders see zero
    hit = where(equal(x, expand(node, x, axes, keepdims)), one, zero)
    return hit / expand(sum(hit, axes, keepdims=True), x, axes, True)


def _extreme_vjp(node, g, needed):
    (x,) = node.args
    nb = _nb(g, node)
    return [expand(g, x, node.attrs["axis"], node.attrs["keepdims"], nb) * _argmax_weights(node)]


def _extreme_jvp(node, tangents):
    (t,) = tangents
    if t is None:
        return None
    return sum(t * _argmax_weights(node), _shifted(node, t), node.attrs["keepdims"])


OPS["sum"].vjp, OPS["sum"].jvp = _sum_vjp, _sum_jvp
OPS["mean"].vjp, OPS["mean"].jvp = _mean_vjp, _mean_jvp
for _name in ("max", "min"):
    OPS[_name].vjp, OPS[_name].jvp = _extreme_vjp, _extreme_jvp


def zeros_like(x: Tensor) -> Tensor:
    """Zeros of x's shape and dtype: one constant broadcast, never a materialized array."""
    return broadcast_to(x.graph.constant(np.zeros((), dtype=x.dtype)), x.shape)


def ones_like(x: Tensor) -> Tensor:
    """Ones of x's shape and dtype: one constant broadcast, never a materialized array."""
    return broadcast_to(x.graph.constant(np.ones((), dtype=x.dtype)), x.shape)
