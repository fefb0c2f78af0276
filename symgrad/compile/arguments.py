"""Checking call arguments against the declared inputs and binding symbolic dims."""

from __future__ import annotations

import numpy as np

from ..errors import InputError, format_shape
from ..graph import Graph


def check_argument(graph: Graph, node: int, value, dims: dict, where: str) -> np.ndarray:
    """``value`` as an array of the input's dtype and shape; binds its symbolic dims in ``dims``.

    Raises InputError naming the input, the expected and the given shape/dtype and ``where``.
    """
    data = graph.nx.nodes[node]
    shape, dtype = data["shape"], data["dtype"]
    label = f"input {data.get('name', node)!r} ({graph.describe(node)})"
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as e:
            raise InputError(
                f"{label}: cannot make an array of {type(value).__name__}: {e}; at {where}"
            ) from None
        # Python numbers and lists take the declared dtype when that loses nothing of their kind
        if arr.dtype != dtype and np.can_cast(arr.dtype, dtype, "same_kind"):
            arr = arr.astype(dtype)
    if arr.dtype != dtype:
        raise InputError(
            f"{label}: expected dtype {dtype}, got {arr.dtype} "
            f"(shape {format_shape(arr.shape)}); cast it first; at {where}"
        )
    if arr.ndim != len(shape):
        raise InputError(
            f"{label}: expected shape {format_shape(shape)}, "
            f"got {format_shape(arr.shape)}; at {where}"
        )
    for i, (want, got) in enumerate(zip(shape, arr.shape)):
        if isinstance(want, str):
            bound = dims.setdefault(want, got)
            if bound != got:
                raise InputError(
                    f"{label}: dim {i} ({want!r}) is {got} but {want!r} is {bound} in an earlier "
                    f"argument; got shape {format_shape(arr.shape)}; at {where}"
                )
        elif want != got:
            raise InputError(
                f"{label}: expected shape {format_shape(shape)}, got {format_shape(arr.shape)} "
                f"(dim {i} is {got}, expected {want}); at {where}"
            )
    return arr
