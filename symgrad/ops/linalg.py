"""Matrix multiplication (NumPy ``@`` semantics: 1-D operands promoted, batch dims broadcast)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError, format_shape
from ..graph import Tensor
from .elementwise import lift
from .registry import Op, defjvp, defvjp, register
from .shapes import broadcast_shapes, same_dim
from .structural import expand_tangent, reshape, transpose


def _infer_matmul(types, attrs):
    a, b = types
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ShapeError("the matmul node takes operands of 2 or more dims")
    if not same_dim(a.shape[-1], b.shape[-2]):
        raise ShapeError(
            f"matmul {format_shape(a.shape)} @ {format_shape(b.shape)}: "
            f"inner dims {a.shape[-1]!r} and {b.shape[-2]!r} differ"
        )
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    dtype = np.result_type(np.dtype(a.dtype), np.dtype(b.dtype)).name
    return batch + (a.shape[-2], b.shape[-1]), dtype


def _matmul_into(ctx, out: str, a: list[str]) -> str:
    if ctx.arg_ndims == [2, 2]:
        # the same BLAS call as np.matmul with about 0.4 us less overhead; out, a workspace
        # buffer, is C-contiguous and of the result's dtype, as np.dot requires
        right = _narrow_transposed(ctx, a[1])
        if right is not None:
            copy = ctx.scratch(right.shape, right.dtype, "narrow")
            return f"np.copyto({copy}, {a[1]}); np.dot({a[0]}, {copy}, {out})"
        return f"np.dot({a[0]}, {a[1]}, {out})"
    flat = _stacked_rows(ctx, out, a)
    return flat if flat is not None else f"np.matmul({a[0]}, {a[1]}, out={out})"


# BLAS multiplies by a transposed right operand of few rows (dz @ W^T with W of 10 columns)
# 1.3-1.6x slower than by a contiguous one: such an operand of up to NARROW_ROWS rows is copied
# first when the product has between OUT_MIN and OUT_MAX elements; for smaller products the copy
# costs more, for bigger ones BLAS packs the operand itself
NARROW_ROWS = 32
OUT_MIN, OUT_MAX = 1 << 12, 1 << 16


def _narrow_transposed(ctx, name: str):
    """The kept F-ordered right operand ``name`` of a 2-D product worth copying C-ordered."""
    right, shape = ctx.kept(name), ctx.node_shape
    if right is None or shape is None or right.flags.c_contiguous or not right.flags.f_contiguous:
        return None
    if right.shape[0] > NARROW_ROWS or not OUT_MIN <= shape[0] * shape[1] <= OUT_MAX:
        return None
    return right


def _stacked_rows(ctx, out: str, a: list[str]) -> str | None:
    """A batch of matrices times one matrix as one 2-D product of the batch's stacked rows:
    one BLAS call where np.matmul loops over the batch (2 to 4 times faster on small ones)."""
    shapes, out_array, left = ctx.arg_shapes, ctx.contiguous(out), ctx.contiguous(a[0])
    if not shapes or len(shapes[0]) < 3 or len(shapes[1]) != 2:
        return None
    if out_array is None or left is None:
        return None  # written or read through 2-D views made once; else a copy every call
    k, n = shapes[1]
    m = math.prod(shapes[0][:-1])  # (not -1: a reshape cannot infer it beside a 0-size dim)
    rows, stacked = ctx.const(out_array.reshape(m, n), "s"), ctx.const(left.reshape(m, k), "s")
    return f"np.dot({stacked}, {a[1]}, {rows})"


register(
    Op(
        "matmul",
        attrs={},
        infer=_infer_matmul,
        impl=lambda a, at: np.matmul(a[0], a[1]),
        emit=lambda ctx, a, at: f"({a[0]} @ {a[1]})",
        emit_into=lambda ctx, out, a, at: _matmul_into(ctx, out, a),
        arity=(2, 2),
    )
)


def mT(x: Tensor) -> Tensor:  # noqa: N802  (NumPy's name)
    """Swap the last two axes."""
    axes = list(range(x.ndim))
    axes[-2:] = axes[-1], axes[-2]
    return transpose(x, axes)


def matmul(a, b) -> Tensor:
    """a @ b with NumPy semantics: 1-D operands are promoted to matrices and squeezed back."""
    a, b = lift(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(
            f"matmul of a 0-d operand: {format_shape(a.shape)} @ {format_shape(b.shape)}; use *"
        )
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    out = a.graph.apply("matmul", [a2, b2])
    if a.ndim == 1 and b.ndim == 1:
        return reshape(out, ())
    if a.ndim == 1:
        return reshape(out, out.shape[:-2] + out.shape[-1:])
    if b.ndim == 1:
        return reshape(out, out.shape[:-1])
    return out


defvjp(
    "matmul",
    lambda g, ans, a, b: matmul(g, mT(b)),
    lambda g, ans, a, b: matmul(mT(a), g),
)
# a batched tangent gets unit axes for the other operand's extra batch dims to broadcast into
defjvp(
    "matmul",
    lambda t, ans, a, b: matmul(expand_tangent(t, a, ans), b),
    lambda t, ans, a, b: matmul(a, expand_tangent(t, b, ans)),
)
