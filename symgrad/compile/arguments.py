"""Checking call arguments against the declared inputs and binding symbolic dims."""

from __future__ import annotations

import numpy as np

from ..errors import InputError, format_shape
from ..graph import Graph
from ..ops.shapes import resolve


def check_argument(
    graph: Graph, node: int, value, dims: dict, where, bound_by: dict | None = None
) -> np.ndarray:
    """``value`` as an array of the input's dtype and shape; binds its symbolic dims in ``dims``
    (and records in ``bound_by`` which input bound each, for the error message).

    Raises InputError naming the input, the expected and the given shape/dtype and ``where``
    (a string, or a function giving it: it is only needed when something is wrong).
    """
    data = graph.nx.nodes[node]
    shape, dtype = data["shape"], data["dtype"]
    arr = value
    if type(value) is not np.ndarray:  # the common case skips the conversion entirely
        try:
            arr = np.asarray(value)
        except Exception as e:
            _fail(graph, node, where, f"cannot make an array of {type(value).__name__}: {e}")
        # Python numbers and lists take the declared dtype when that loses nothing of their kind
        if arr.dtype != dtype and np.can_cast(arr.dtype, dtype, "same_kind"):
            arr = arr.astype(dtype)
    if arr.dtype != dtype:
        _fail(
            graph,
            node,
            where,
            f"expected dtype {dtype}, got {arr.dtype} (shape {format_shape(arr.shape)}); "
            "cast it first",
        )
    if arr.shape == shape:
        return arr
    if arr.ndim != len(shape):
        _fail(
            graph,
            node,
            where,
            f"expected shape {format_shape(shape)}, got {format_shape(arr.shape)}",
        )
    bound_by = {} if bound_by is None else bound_by
    for i, (want, got) in enumerate(zip(shape, arr.shape)):
        if isinstance(want, str):
            bound = dims.setdefault(want, got)
            first = bound_by.setdefault(want, f"input {data.get('name', node)!r}")
            if bound != got:
                _fail(
                    graph,
                    node,
                    where,
                    f"dim {i} ({want!r}) is {got} but {first} set {want!r} to {bound}; "
                    f"got shape {format_shape(arr.shape)}",
                )
        elif want != got:
            _fail(
                graph,
                node,
                where,
                f"expected shape {format_shape(shape)}, got {format_shape(arr.shape)} "
                f"(dim {i} is {got}, expected {want})",
            )
    return arr


def _fail(graph: Graph, node: int, where, message: str):
    data = graph.nx.nodes[node]
    site = where() if callable(where) else where
    label = f"input {data.get('name', node)!r} ({graph.describe(node)})"
    raise InputError(f"{label}: {message}; at {site}") from None


def run_failure(graph: Graph, node: int, dims: dict, error: Exception, where: str) -> InputError:
    """The InputError for NumPy failing on ``node`` at run time: arguments whose sizes fit the
    declared shapes but not each other (a symbolic dim bound to a size an op cannot take), or
    data such as an index out of range."""
    args = "; ".join(
        f"{graph.describe(a)} is {format_shape(resolve(graph.nx.nodes[a]['shape'], dims))}"
        for a in graph.args(node)
    )
    bound = ", ".join(f"{k}={v}" for k, v in dims.items()) or "none"
    return InputError(
        f"{graph.describe(node)} failed on these arguments: {type(error).__name__}: {error}\n"
        f"  its arguments: {args or 'none'} (symbolic dims: {bound}); at {where}"
    )
