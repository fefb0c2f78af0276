"""Shape rules shared by the ops: broadcasting, axes, reductions (symbolic dims allowed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError, format_shape, show

Shape = tuple


def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy broadcasting of shapes whose dims may be symbolic names."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(ndim):
        dim = 1
        for s in shapes:
            j = i - (ndim - len(s))
            if j < 0:
                continue
            d = s[j]
            if d == 1 or d == dim:
                continue
            if dim == 1 or (isinstance(dim, str) and isinstance(d, int)):
                dim = d  # a symbolic dim meeting a concrete one must have that size at run time
            elif isinstance(d, str) and isinstance(dim, int):
                continue
            else:
                shown = ", ".join(format_shape(s) for s in shapes)
                raise ShapeError(f"shapes {shown} do not broadcast: dim {dim!r} vs {d!r}")
        out.append(dim)
    return tuple(out)


def normalize_axes(axis, ndim: int) -> tuple[int, ...]:
    """axis None | int | sequence -> sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axes = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        raise ShapeError(f"axis must be an int, a tuple of ints or None, got {show(axis)}")
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool) or not -ndim <= a < ndim:
            raise ShapeError(f"axis {show(a)} out of range for {ndim}-d input")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"repeated axis in {show(axis)}")
    return tuple(sorted(out))


def flag(value, what: str) -> bool:
    """A True/False argument; anything else is refused (the string "no" is true in Python)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ShapeError(f"{what} must be True or False, got {show(value)}")
    return bool(value)


def reduced_shape(shape: Shape, axes: Sequence[int], keepdims: bool) -> Shape:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def numel(shape: Shape) -> int | None:
    """Number of elements, or None when a dim is symbolic."""
    if any(isinstance(d, str) for d in shape):
        return None
    return int(np.prod(shape, dtype=np.int64))


def resolve(shape: Shape, dims: dict) -> tuple[int, ...]:
    """Replace symbolic dims by their bound sizes."""
    try:
        return tuple(dims[d] if isinstance(d, str) else d for d in shape)
    except KeyError as e:
        raise ShapeError(f"symbolic dim {e.args[0]!r} is not bound by any input") from None


def result_dtype(*dtypes: str) -> str:
    return np.result_type(*[np.dtype(d) for d in dtypes]).name


def is_float(dtype: str) -> bool:
    return np.issubdtype(np.dtype(dtype), np.floating)


def compatible(a: Shape, b: Shape) -> bool:
    """Same rank and equal dims wherever both are concrete."""
    return len(a) == len(b) and all(
        x == y or isinstance(x, str) or isinstance(y, str) for x, y in zip(a, b)
    )


def same_dim(a, b) -> bool:
    """Dims that can be equal at run time (a symbolic dim matches any size)."""
    return a == b or isinstance(a, str) or isinstance(b, str)
