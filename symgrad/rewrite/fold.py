"""Constant folding: a node computed from constants alone becomes a constant when the result is
small, and a value that is one number everywhere stays one number broadcast (a view), so
symbolic zeros and ones are never materialized. Variables are state and are never folded."""

from __future__ import annotations

import numpy as np

from ..graph import LEAF_OPS
from ..ops import OPS
from ..ops.shapes import numel
from .manager import ANY, Rewriter, rewrite
from .match import canonical_uniform, full, uniform

FOLD_LIMIT = 4096  # elements: a larger result is computed at run time, not stored


@rewrite("fold_uniform", "canonicalize", ANY)
def fold_uniform(rw: Rewriter, n: int):
    """op(values that are one number everywhere) -> that op on scalars, broadcast."""
    op = rw.op(n)
    if op in LEAF_OPS or canonical_uniform(rw, n):
        return None
    value = _uniform_result(rw, n, op, rw.args(n))
    if value is None:
        return None
    value = np.asarray(value)
    if value.dtype.kind != np.dtype(rw.dtype(n)).kind:
        return None
    return full(rw, value, rw.shape(n), rw.dtype(n))


def _uniform_result(rw: Rewriter, n: int, op: str, args: list[int]):
    spec = OPS[op]
    if spec.extra.get("elementwise"):
        values = [uniform(rw, a) for a in args]
        if any(v is None for v in values):
            return None
        with np.errstate(all="ignore"):
            return spec.impl(values, rw.attrs(n))
    if op in ("broadcast_to", "reshape", "transpose", "stop_gradient", "cast"):
        return uniform(rw, args[0])
    if op in ("sum", "mean", "max", "min"):
        v = uniform(rw, args[0])
        axes = rw.attrs(n)["axis"]
        count = numel(tuple(rw.shape(args[0])[a] for a in axes))
        if v is None or count is None or count == 0:
            return None
        # in the sum's own dtype (uint8 sums are uint64): v * count of the element's dtype
        # would wrap around (uint8) or raise (int8 and a Python int out of its range)
        return np.asarray(v, dtype=rw.dtype(n)) * count if op == "sum" else v
    if op == "matmul" and any(uniform(rw, a) == 0 for a in args if uniform(rw, a) is not None):
        return 0
    if op == "where":
        a, b = (uniform(rw, x) for x in args[1:])
        return a if a is not None and b is not None and a == b else None
    return None


@rewrite("fold_constant", "canonicalize", ANY)
def fold_constant(rw: Rewriter, n: int):
    """op(constants) -> a constant holding its value (results up to FOLD_LIMIT elements)."""
    op = rw.op(n)
    args = rw.args(n)
    if op in LEAF_OPS or op == "constant" or not args:
        return None
    if any(rw.op(a) != "constant" for a in args):
        return None
    size = numel(rw.shape(n))
    spec = OPS[op]
    attrs = rw.attrs(n)
    if size is None or size > FOLD_LIMIT:
        return None
    if any(isinstance(d, str) for k in spec.shape_attrs for d in attrs[k]):
        return None
    try:
        with np.errstate(all="ignore"):
            value = np.asarray(spec.impl([rw.attrs(a)["value"] for a in args], attrs))
    except (ValueError, IndexError, TypeError, ArithmeticError):
        return None  # it fails on these values at run time too; leave it there
    if value.shape != rw.shape(n) or value.dtype != rw.dtype(n):
        return None
    return rw.graph.constant(value)
