"""One flat vector for a list of parameters: the space Krylov methods work in."""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import GraphError, ShapeError, format_shape, user_site
from ..graph import Tensor


def sizes(params: Sequence[Tensor]) -> list[int]:
    """Number of entries of each parameter (their shapes must be concrete)."""
    out = []
    for p in params:
        if any(isinstance(d, str) for d in p.shape):
            raise ShapeError(
                f"{p.graph.describe(p.node)}: parameters need concrete shapes ({user_site()})"
            )
        out.append(int(np.prod(p.shape)))
    return out


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The arrays' entries, one after another, as one vector."""
    pieces = [np.ravel(a) for a in arrays]
    return np.concatenate(pieces) if pieces else np.zeros(0)


def unflatten(vector: np.ndarray, params: Sequence[Tensor]) -> list[np.ndarray]:
    """Pieces of ``vector`` shaped like ``params`` (views where possible)."""
    counts = sizes(params)
    if np.size(vector) != sum(counts):
        raise ShapeError(
            f"unflatten: a vector of shape {format_shape(np.shape(vector))} for parameters of "
            f"{sum(counts)} entries ({user_site()})"
        )
    vector, out, offset = np.ravel(vector), [], 0
    for p, k in zip(params, counts):
        out.append(np.reshape(vector[offset : offset + k], p.shape))
        offset += k
    return out


def _holders(params, what: str, ops: tuple[str, ...]) -> list[Tensor]:
    """``params`` as a list, each a Tensor whose op is one of ``ops`` (nodes that hold a
    value); a GraphError naming the first that is not, and the call site."""
    if isinstance(params, Tensor) or not isinstance(params, Iterable):
        raise GraphError(
            f"{what} needs a list of variables, got {type(params).__name__} "
            f"{reprlib.repr(params)}; pass [W] for one variable "
            f"({user_site()})"
        )
    params = list(params)
    for p in params:
        if not isinstance(p, Tensor):
            raise GraphError(
                f"{what}: parameters are variable Tensors, got {type(p).__name__} "
                f"{reprlib.repr(p)} ({user_site()})"
            )
        if p.op not in ops:
            why = "a constant cannot be set" if p.op == "constant" else "it holds no value"
            raise GraphError(
                f"{what}: {p.graph.describe(p.node)} is no variable: {why} ({user_site()})"
            )
    return params


def get_flat(params: Sequence[Tensor]) -> np.ndarray:
    """A copy of the variables' current values as one vector."""
    params = _holders(params, "get_flat", ("variable", "constant"))
    return flatten([p.value for p in params])


def set_flat(params: Sequence[Tensor], vector: np.ndarray) -> None:
    """Write ``vector`` into the variables in place (compiled functions see the new values)."""
    params = _holders(params, "set_flat", ("variable",))
    try:
        vector = np.asarray(vector)
    except (TypeError, ValueError) as e:
        raise ShapeError(f"set_flat: cannot make a vector of it ({e}) ({user_site()})") from None
    total = sum(sizes(params))
    complex_into_real = vector.dtype.kind == "c" and any(
        np.dtype(p.dtype).kind != "c" for p in params
    )
    if vector.size != total or vector.dtype.kind not in "biufc" or complex_into_real:
        raise ShapeError(
            f"set_flat: the parameters hold {total} numbers, got a {vector.dtype} array of "
            f"shape {format_shape(vector.shape)} ({user_site()})"
        )
    for p, piece in zip(params, unflatten(vector.reshape(-1), params)):
        p.value[...] = piece
